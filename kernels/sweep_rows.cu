// Per-row kernels of the sweeps: the row maximum and prediction computed once by prepare(),
// the terms of every sample at its own inverse temperature (weight-scaling base, bin-
// temperature background) and their broadcast to a chunk of candidates.
// Mapping: one thread per row, classes in order, exactly as the CPU backend loops, so ties and
// sums follow the same rules; these run once per sweep, not once per candidate.
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

__global__ void row_argmax_kernel(const float* __restrict__ logits, std::int64_t num_samples, std::int64_t num_classes,
                                  double* __restrict__ max_logit, std::int32_t* __restrict__ prediction) {
  for (std::int64_t i = global_thread(); i < num_samples; i += grid_threads()) {
    const float* row = logits + i * num_classes;
    std::int32_t best = 0;
    for (std::int64_t j = 1; j < num_classes; ++j) {
      if (row[j] > row[best]) best = static_cast<std::int32_t>(j);
    }
    prediction[i] = best;
    max_logit[i] = static_cast<double>(row[best]);
  }
}

__global__ void sample_terms_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                                    const double* __restrict__ max_logit, const std::int32_t* __restrict__ prediction,
                                    std::int64_t num_samples, std::int64_t num_classes,
                                    const double* __restrict__ inv_per_sample, double inv, terms_view out) {
  for (std::int64_t i = global_thread(); i < num_samples; i += grid_threads()) {
    const float* z = logits + i * num_classes;
    const double b = inv_per_sample != nullptr ? inv_per_sample[i] : inv;
    double s, q;
    detail::row_sums(z, num_classes, max_logit[i], b, s, q);
    detail::store_terms(out, 0, i, detail::row_terms(z, labels[i], max_logit[i], b, s, q), prediction[i] == labels[i]);
  }
}

__global__ void broadcast_terms_kernel(terms_view src, std::int64_t num_candidates, terms_view dst) {
  const std::int64_t n = dst.num_samples;
  const std::int64_t total = num_candidates * n;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t i = t % n;
    dst.confidence[t] = src.confidence[i];
    dst.correct[t] = src.correct[i];
    dst.log_p_label[t] = src.log_p_label[i];
    dst.brier[t] = src.brier[i];
  }
}

}  // namespace

void launch_row_argmax(const float* d_logits, std::int64_t num_samples, std::int64_t num_classes, double* d_max_logit,
                       std::int32_t* d_prediction) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 1, "bad shape");
  if (num_samples == 0) return;
  row_argmax_kernel<<<detail::grid_for(num_samples), detail::k_block>>>(d_logits, num_samples, num_classes, d_max_logit,
                                                                        d_prediction);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

void launch_sample_terms(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                         const std::int32_t* d_prediction, std::int64_t num_samples, std::int64_t num_classes,
                         const double* d_inv_per_sample, double inv, terms_view out) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 1 && out.num_samples == num_samples, "bad shape");
  if (num_samples == 0) return;
  sample_terms_kernel<<<detail::grid_for(num_samples), detail::k_block>>>(
      d_logits, d_labels, d_max_logit, d_prediction, num_samples, num_classes, d_inv_per_sample, inv, out);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

void launch_broadcast_terms(terms_view src, std::int64_t num_candidates, terms_view dst) {
  CALIBENCH_EXPECTS(src.num_samples == dst.num_samples && num_candidates >= 0, "bad shape");
  if (num_candidates == 0 || dst.num_samples == 0) return;
  broadcast_terms_kernel<<<detail::grid_for(num_candidates * dst.num_samples), detail::k_block>>>(src, num_candidates,
                                                                                                  dst);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
