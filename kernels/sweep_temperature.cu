// Temperature sweep over an explicit candidate list: p = softmax((z - max) b_g), one exp per
// logit and candidate (the CPU backend's temperature family), optionally on a subset of rows
// (the moving rows of a bin-temperature sweep).
// Mapping: rows of at most 32 classes get one thread per (candidate, row), candidate-major so
// that writes coalesce; wider rows get one warp per (row, block of 32 candidates), lanes
// striding over the classes and a butterfly warp sum for S and Q per candidate, each lane then
// finishing one candidate's terms; consecutive warps take the same row so that it stays in L1.
// Everything in double, as on the CPU.
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

__global__ void temperature_thread_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                                          const double* __restrict__ max_logit,
                                          const std::int32_t* __restrict__ prediction, std::int64_t num_classes,
                                          const std::int64_t* __restrict__ rows, std::int64_t num_rows,
                                          const double* __restrict__ inv, std::int64_t num_candidates, terms_view out) {
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
  const std::int64_t blocks = (num_candidates + detail::k_warp - 1) / detail::k_warp;
  const std::int64_t total = blocks * num_rows;
  // w is the same on every lane, so the whole warp runs each iteration (the shuffles need it).
  for (std::int64_t w = detail::global_warp(); w < total; w += detail::grid_warps()) {
    const std::int64_t r = w / blocks, g0 = (w % blocks) * detail::k_warp;
    const std::int64_t i = rows != nullptr ? rows[r] : r;
    const float* z = logits + i * num_classes;
    const double mx = max_logit[i];
    const std::int64_t left = num_candidates - g0;
    const int count = left < detail::k_warp ? static_cast<int>(left) : detail::k_warp;
    // Lane c keeps the sums of candidate g0 + c; the lanes then finish their candidates
    // together instead of lane 0 alone per candidate while 31 lanes wait.
    double my_s = 1, my_q = 1;
    for (int c = 0; c < count; ++c) {
      double s, q;
      detail::warp_row_sums(z, num_classes, mx, inv[g0 + c], lane, s, q);
      if (lane == c) {
        my_s = s;
        my_q = q;
      }
    }
    if (lane < count) {
      const double b = inv[g0 + lane];
      detail::store_terms(out, g0 + lane, i, detail::row_terms(z, labels[i], mx, b, my_s, my_q),
                          prediction[i] == labels[i]);
    }
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
    temperature_thread_kernel<<<detail::grid_for(items), detail::k_block>>>(d_logits, d_labels, d_max_logit,
                                                                            d_prediction, num_classes, d_rows, num_rows,
                                                                            d_inv_temperature, num_candidates, out);
  } else {
    const std::int64_t warps = (num_candidates + detail::k_warp - 1) / detail::k_warp * num_rows;
    temperature_warp_kernel<<<detail::grid_for(warps * detail::k_warp), detail::k_block>>>(
        d_logits, d_labels, d_max_logit, d_prediction, num_classes, d_rows, num_rows, d_inv_temperature, num_candidates,
        out);
  }
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
