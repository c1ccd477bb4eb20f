// Temperature sweep over an explicit candidate list: p = softmax((z - max) b_g), one exp per
// logit and candidate (the CPU backend's temperature family), optionally on a subset of rows
// (the moving rows of a bin-temperature sweep).
// Mapping: rows of at most 32 classes get one thread per (candidate, row), candidate-major so
// that writes coalesce; wider rows get one warp per (row, candidate), lanes striding over the
// classes and a butterfly warp sum for S and Q, with consecutive warps on the same row so that
// the row stays in L1. Everything in double, as on the CPU.
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

__global__ void temperature_thread_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                                          const double* __restrict__ max_logit,
                                          const std::int32_t* __restrict__ prediction, std::int64_t num_classes,
                                          const std::int64_t* __restrict__ rows, std::int64_t num_rows,
                                          const double* __restrict__ inv, std::int64_t num_candidates,
                                          terms_view out) {
  const std::int64_t total = num_candidates * num_rows;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t g = t / num_rows, r = t % num_rows;
    const std::int64_t i = rows != nullptr ? rows[r] : r;
    const float* z = logits + i * num_classes;
    const double b = inv[g], mx = max_logit[i];
    double s, q;
    detail::row_sums(z, num_classes, mx, b, s, q);
    detail::store_terms(out, g, i, detail::row_terms(z, labels[i], mx, b, s, q), prediction[i] == labels[i]);
  }
}

__global__ void temperature_warp_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                                        const double* __restrict__ max_logit,
                                        const std::int32_t* __restrict__ prediction, std::int64_t num_classes,
                                        const std::int64_t* __restrict__ rows, std::int64_t num_rows,
                                        const double* __restrict__ inv, std::int64_t num_candidates, terms_view out) {
  const int lane = detail::lane_id();
  const std::int64_t total = num_candidates * num_rows;
  // w is the same on every lane, so the whole warp runs each iteration (the shuffles need it).
  for (std::int64_t w = detail::global_warp(); w < total; w += detail::grid_warps()) {
    const std::int64_t r = w / num_candidates, g = w % num_candidates;
    const std::int64_t i = rows != nullptr ? rows[r] : r;
    const float* z = logits + i * num_classes;
    const double b = inv[g], mx = max_logit[i];
    double s, q;
    detail::warp_row_sums(z, num_classes, mx, b, lane, s, q);
    if (lane == 0)
      detail::store_terms(out, g, i, detail::row_terms(z, labels[i], mx, b, s, q), prediction[i] == labels[i]);
  }
}

}  // namespace

void launch_temperature_terms(const float* d_logits, const std::int32_t* d_labels, const double* d_max_logit,
                              const std::int32_t* d_prediction, std::int64_t num_samples, std::int64_t num_classes,
                              const std::int64_t* d_rows, std::int64_t num_rows, const double* d_inv_temperature,
                              std::int64_t num_candidates, terms_view out) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 1 && num_candidates >= 0, "bad shape");
  CALIBENCH_EXPECTS(num_rows >= 0 && num_rows <= num_samples && out.num_samples == num_samples,
                    "rows do not match the samples");
  if (num_rows == 0 || num_candidates == 0) return;
  const std::int64_t items = num_candidates * num_rows;
  if (num_classes <= detail::k_thread_per_row_classes) {
    temperature_thread_kernel<<<detail::grid_for(items), detail::k_block>>>(
        d_logits, d_labels, d_max_logit, d_prediction, num_classes, d_rows, num_rows, d_inv_temperature,
        num_candidates, out);
  } else {
    temperature_warp_kernel<<<detail::grid_for(items * detail::k_warp), detail::k_block>>>(
        d_logits, d_labels, d_max_logit, d_prediction, num_classes, d_rows, num_rows, d_inv_temperature,
        num_candidates, out);
  }
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
