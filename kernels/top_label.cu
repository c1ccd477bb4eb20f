// Top-label statistics kernel: one thread per row, grid-stride, 64-bit offsets. The math is
// softmax_top_label from calib_math.hpp, the same function the CPU backend calls.
#include "kernels/calib_math.hpp"
#include "kernels/cuda_check.hpp"
#include "kernels/top_label.hpp"

namespace calibench::kernels {
namespace {

__global__ void top_label_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                                 std::int64_t num_samples, std::int64_t num_classes, float inv_t,
                                 float* __restrict__ confidence, std::int32_t* __restrict__ prediction,
                                 float* __restrict__ log_p_label) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < num_samples;
       i += stride) {
    const auto t = softmax_top_label<float>(logits + i * num_classes, num_classes, labels[i], inv_t);
    confidence[i] = t.confidence;
    prediction[i] = t.pred;
    log_p_label[i] = t.log_p_label;
  }
}

}  // namespace

void launch_top_label(const float* d_logits, const std::int32_t* d_labels, std::int64_t num_samples,
                      std::int64_t num_classes, float inv_t, float* d_confidence, std::int32_t* d_prediction,
                      float* d_log_p_label) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 1, "bad shape");
  if (num_samples == 0) return;
  constexpr int block = 256;
  const std::int64_t wanted = (num_samples + block - 1) / block;
  const int grid = static_cast<int>(wanted < 65535 ? wanted : 65535);
  top_label_kernel<<<grid, block>>>(d_logits, d_labels, num_samples, num_classes, inv_t, d_confidence,
                                    d_prediction, d_log_p_label);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
