// Weight-scaling sweep: p_a = a softmax(z) + (1 - a) / K in closed form per sample
// (weight_terms of calib_math.hpp) from each sample's confidence, label probability and sum
// of squared probabilities, computed once per sweep by launch_sample_terms + launch_weight_base.
// Mapping: one thread per (candidate, sample), candidate-major; O(1) work per item.
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

__global__ void weight_base_kernel(terms_view base, double* __restrict__ p_label, double* __restrict__ p_sq) {
  for (std::int64_t i = global_thread(); i < base.num_samples; i += grid_threads()) {
    const double py = exp(base.log_p_label[i]);
    p_label[i] = py;
    // sum_j p_j^2 from the Brier identity, as the CPU backend recovers it.
    p_sq[i] = base.brier[i] + 2.0 * py - 1.0;
  }
}

__global__ void weight_terms_kernel(terms_view base, const double* __restrict__ p_label,
                                    const double* __restrict__ p_sq, double num_classes,
                                    const double* __restrict__ weights, std::int64_t num_candidates, terms_view out) {
  const std::int64_t n = base.num_samples;
  const std::int64_t total = num_candidates * n;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t g = t / n, i = t % n;
    detail::store_terms(out, g, i, weight_terms(weights[g], num_classes, base.confidence[i], p_label[i], p_sq[i]),
                        base.correct[i] != 0);
  }
}

}  // namespace

void launch_weight_base(terms_view base, double* d_p_label, double* d_p_sq) {
  if (base.num_samples == 0) return;
  weight_base_kernel<<<detail::grid_for(base.num_samples), detail::k_block>>>(base, d_p_label, d_p_sq);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

void launch_weight_terms(terms_view base, const double* d_p_label, const double* d_p_sq, double num_classes,
                         const double* d_weights, std::int64_t num_candidates, terms_view out) {
  CALIBENCH_EXPECTS(base.num_samples == out.num_samples && num_candidates >= 0, "bad shape");
  if (num_candidates == 0 || base.num_samples == 0) return;
  weight_terms_kernel<<<detail::grid_for(num_candidates * base.num_samples), detail::k_block>>>(
      base, d_p_label, d_p_sq, num_classes, d_weights, num_candidates, out);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
