// Class-temperature search (the step of class-based TS) on the device: per-row state (max,
// sums, top two scaled logits) kept across commits with the CPU session's update rules, the
// per-row state with one class removed, and the O(1) candidate evaluation class_step_terms.
// Scaled logits are z_j * (1 / T_j) everywhere, as on the CPU, so classes sharing a
// temperature tie exactly. Mapping: one thread per row for the state kernels (the same loops,
// in the same order, as cpu_class_session, so ties and refresh decisions agree); one thread per
// (candidate, row), candidate-major, for the candidates.
#include "kernels/sweep_device.cuh"

namespace calibench::kernels {
namespace {

using detail::global_thread;
using detail::grid_threads;

__global__ void class_refresh_kernel(const float* __restrict__ logits, std::int64_t num_samples,
                                     std::int64_t num_classes, const double* __restrict__ inverse,
                                     class_row_state* __restrict__ rows) {
  for (std::int64_t i = global_thread(); i < num_samples; i += grid_threads()) {
    class_row_state r{};
    refresh_class_row(logits + i * num_classes, num_classes, inverse, r);
    rows[i] = r;
  }
}

__global__ void class_commit_kernel(const float* __restrict__ logits, std::int64_t num_samples,
                                    std::int64_t num_classes, const double* __restrict__ inverse, std::int32_t cls,
                                    double old_inv, double new_inv, class_row_state* __restrict__ rows) {
  for (std::int64_t i = global_thread(); i < num_samples; i += grid_threads()) {
    class_row_state r = rows[i];
    commit_class_row(logits + i * num_classes, num_classes, inverse, cls, old_inv, new_inv, r);
    rows[i] = r;
  }
}

__global__ void class_rest_state_kernel(const float* __restrict__ logits, const std::int32_t* __restrict__ labels,
                                        std::int64_t num_samples, std::int64_t num_classes,
                                        const double* __restrict__ inverse, const class_row_state* __restrict__ rows,
                                        std::int32_t cls, class_step_state<double>* __restrict__ state,
                                        double* __restrict__ class_logit) {
  for (std::int64_t i = global_thread(); i < num_samples; i += grid_threads()) {
    const float* z = logits + i * num_classes;
    state[i] = class_rest_state(z, num_classes, inverse, rows[i], cls, labels[i]);
    class_logit[i] = static_cast<double>(z[cls]);
  }
}

__global__ void class_candidate_kernel(const std::int32_t* __restrict__ labels, std::int64_t num_samples,
                                       const class_step_state<double>* __restrict__ state,
                                       const double* __restrict__ class_logit, std::int32_t cls,
                                       const double* __restrict__ inv, std::int64_t num_candidates, terms_view out) {
  const std::int64_t total = num_candidates * num_samples;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t g = t / num_samples, i = t % num_samples;
    const std::int32_t y = labels[i];
    std::int32_t pred = 0;
    // u itself, not u - max: ties are decided on the scaled logits (class_step_terms).
    const auto terms = class_step_terms(state[i], class_logit[i] * inv[g], cls, y, &pred);
    detail::store_terms(out, g, i, terms, pred == y);
  }
}

}  // namespace

void launch_class_refresh(const float* d_logits, std::int64_t num_samples, std::int64_t num_classes,
                          const double* d_inverse, class_row_state* d_rows) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 2, "bad shape");
  if (num_samples == 0) return;
  class_refresh_kernel<<<detail::grid_for(num_samples), detail::k_block>>>(d_logits, num_samples, num_classes,
                                                                           d_inverse, d_rows);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

void launch_class_commit(const float* d_logits, std::int64_t num_samples, std::int64_t num_classes,
                         const double* d_inverse, std::int32_t cls, double old_inv, double new_inv,
                         class_row_state* d_rows) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 2 && cls >= 0 && cls < num_classes, "bad class");
  if (num_samples == 0) return;
  class_commit_kernel<<<detail::grid_for(num_samples), detail::k_block>>>(d_logits, num_samples, num_classes, d_inverse,
                                                                          cls, old_inv, new_inv, d_rows);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

void launch_class_rest_state(const float* d_logits, const std::int32_t* d_labels, std::int64_t num_samples,
                             std::int64_t num_classes, const double* d_inverse, const class_row_state* d_rows,
                             std::int32_t cls, class_step_state<double>* d_state, double* d_class_logit) {
  CALIBENCH_EXPECTS(num_samples >= 0 && num_classes >= 2 && cls >= 0 && cls < num_classes, "bad class");
  if (num_samples == 0) return;
  class_rest_state_kernel<<<detail::grid_for(num_samples), detail::k_block>>>(
      d_logits, d_labels, num_samples, num_classes, d_inverse, d_rows, cls, d_state, d_class_logit);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

void launch_class_candidate_terms(const std::int32_t* d_labels, std::int64_t num_samples,
                                  const class_step_state<double>* d_state, const double* d_class_logit,
                                  std::int32_t cls, const double* d_inv_temperature, std::int64_t num_candidates,
                                  terms_view out) {
  CALIBENCH_EXPECTS(num_samples == out.num_samples && num_candidates >= 0, "bad shape");
  if (num_samples == 0 || num_candidates == 0) return;
  class_candidate_kernel<<<detail::grid_for(num_candidates * num_samples), detail::k_block>>>(
      d_labels, num_samples, d_state, d_class_logit, cls, d_inv_temperature, num_candidates, out);
  CALIBENCH_CUDA_TRY(cudaGetLastError());
}

}  // namespace calibench::kernels
