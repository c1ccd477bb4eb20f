// Sweep over arbitrary candidates given as probability matrices (G x N x K float): the top-label
// terms of each (candidate, sample) with the CPU backend's rules (prediction = first maximum,
// confidence = its probability, log p_label in double, Brier summed in double).
// Mapping: rows of at most 32 classes get one thread per (candidate, row); wider rows a warp,
// lanes striding over the classes, with a (value, lowest index) argmax and a butterfly sum.
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

__global__ void probability_thread_kernel(const float* __restrict__ probs, const std::int32_t* __restrict__ labels,
                                          std::int64_t num_samples, std::int64_t num_classes,
                                          std::int64_t num_candidates, terms_view out) {
  const std::int64_t total = num_candidates * num_samples;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t i = t % num_samples;
    const float* p = probs + t * num_classes;  // t = g * N + i
    const std::int32_t y = labels[i];
    std::int32_t pred = 0;
    const auto terms = probability_row_terms(p, num_classes, y, &pred);
    detail::store_terms(out, t / num_samples, i, terms, pred == y);
  }
}

__global__ void probability_warp_kernel(const float* __restrict__ probs, const std::int32_t* __restrict__ labels,
                                        std::int64_t num_samples, std::int64_t num_classes, std::int64_t num_candidates,
                                        terms_view out) {
  const int lane = detail::lane_id();
  const std::int64_t total = num_candidates * num_samples;
  for (std::int64_t w = detail::global_warp(); w < total; w += detail::grid_warps()) {
    const std::int64_t i = w % num_samples;
    const float* p = probs + w * num_classes;
    const std::int32_t y = labels[i];
    // Lane-local first maximum (classes ascending), then the lowest index among equal maxima.
    float best = -INFINITY;
    std::int32_t best_j = static_cast<std::int32_t>(num_classes);
    double q = 0;
    for (std::int64_t j = lane; j < num_classes; j += detail::k_warp) {
      const float v = p[j];
      if (best_j == num_classes || v > best) {
        best = v;
        best_j = static_cast<std::int32_t>(j);
      }
      const double d = static_cast<double>(v) - (j == y ? 1.0 : 0.0);
      q += d * d;
    }
#pragma unroll
    for (int offset = detail::k_warp / 2; offset > 0; offset /= 2) {
      const float other = __shfl_xor_sync(detail::k_full_mask, best, offset);
      const std::int32_t other_j = __shfl_xor_sync(detail::k_full_mask, best_j, offset);
      const bool take =
          other_j < num_classes && (best_j == num_classes || other > best || (other == best && other_j < best_j));
      if (take) {
        best = other;
        best_j = other_j;
      }
    }
    q = detail::warp_sum(q);
    if (lane == 0) {
      const candidate_terms<double> terms{static_cast<double>(best), log(static_cast<double>(p[y])), q};
      detail::store_terms(out, w / num_samples, i, terms, best_j == y);
    }
  }
}

}  // namespace

void launch_probability_terms(const float* d_probs, const std::int32_t* d_labels, std::int64_t num_samples,
                              std::int64_t num_classes, std::int64_t num_candidates, terms_view out) {
  CALIBENCH_EXPECTS(num_samples == out.num_samples && num_classes >= 1 && num_candidates >= 0, "bad shape");
  if (num_samples == 0 || num_candidates == 0) return;
  const std::int64_t items = num_candidates * num_samples;
  if (num_classes <= detail::k_thread_per_row_classes) {
    probability_thread_kernel<<<detail::grid_for(items), detail::k_block>>>(d_probs, d_labels, num_samples, num_classes,
                                                                            num_candidates, out);
  } else {
    probability_warp_kernel<<<detail::grid_for(items * detail::k_warp), detail::k_block>>>(
        d_probs, d_labels, num_samples, num_classes, num_candidates, out);
  }
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
