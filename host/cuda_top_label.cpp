// Host side of the top-label kernel: device buffers (host/cuda_buffer.hpp), checked copies, one launch.
#include "host/cuda_top_label.hpp"

#include "host/cuda_buffer.hpp"
#include "kernels/top_label.hpp"

namespace calibench {

top_label_rows top_label_cuda(std::span<const float> logits, std::span<const std::int32_t> labels,
                              std::int64_t num_classes, float inv_t) {
  const auto n = static_cast<std::int64_t>(labels.size());
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(logits.size()) == n * num_classes, "logits and labels disagree");
  device_buffer<float> d_logits(logits.size()), d_conf(labels.size()), d_logp(labels.size());
  device_buffer<std::int32_t> d_labels(labels.size()), d_pred(labels.size());
  d_logits.upload(logits.data());
  d_labels.upload(labels.data());
  kernels::launch_top_label(d_logits.get(), d_labels.get(), n, num_classes, inv_t, d_conf.get(), d_pred.get(),
                            d_logp.get());
  CALIBENCH_CUDA_TRY(cudaDeviceSynchronize());
  top_label_rows out;
  out.confidence.resize(labels.size());
  out.prediction.resize(labels.size());
  out.log_p_label.resize(labels.size());
  d_conf.download(out.confidence.data());
  d_pred.download(out.prediction.data());
  d_logp.download(out.log_p_label.data());
  return out;
}

}  // namespace calibench
