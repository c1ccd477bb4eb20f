// The training losses of the loss-trained calibrators (host/calibrators/trained/trained_fit.hpp):
// one row's loss term and its gradient in the log-probabilities, the per-row weights of mean
// losses and of class-wise loss scaling, and the loss at calibrated logits or at the ets
// mixture. Row sums in fixed chunks added in order: bit-reproducible for any thread count.
// Internal to host/calibrators/trained/.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "host/calibrators/trained/sctl.hpp"
#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench::detail {

/// Rows per chunk of the deterministic sums: chunk partials are added in chunk order.
inline constexpr std::int64_t k_chunk = 256;

/// Everything a loss evaluation needs besides the calibrated outputs.
struct loss_context {
  trained_loss kind = trained_loss::ce;
  std::int64_t n = 0, k = 0;
  const std::vector<std::int32_t>* labels = nullptr;
  double ls_alpha = 0.05, fl_gamma = 3.0, lsplus_weight = 0.5;
  bool focal_detached = false;
  std::vector<double> prior_true, prior_other;  // lsplus, per class
  std::vector<double> prior_entropy;            // lsplus: sum_j v_j log v_j of v^k, per class
  std::vector<std::int64_t> class_count;        // sctl
  std::vector<std::int64_t> present;            // sctl: classes with samples, ascending
  std::unique_ptr<sctl_scaler> scaler;          // sctl
  sctl_norm norm = sctl_norm::nd;               // sctl
  std::vector<double> frozen_scale;             // sctl: 1 + w_i held fixed (ets's SLSQP phase); empty: none
  std::int64_t evaluations = 0;                 // counted evaluations (closure calls)
};

/// One row's loss term v and its gradient G = dv/dl in the log-probabilities l (p = exp(l)).
double row_loss(const loss_context& c, const double* l, const double* p, std::int32_t y, double* g);

/// Sum of f(i) for i in [0, n) in chunks of k_chunk, chunk partials added in order.
template <class F>
double chunked_sum(std::int64_t n, F f) {
  const std::int64_t chunks = (n + k_chunk - 1) / k_chunk;
  std::vector<double> part(static_cast<std::size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    for (std::int64_t i = c * k_chunk; i < std::min(n, (c + 1) * k_chunk); ++i) s += f(i);
    part[static_cast<std::size_t>(c)] = s;
  }
  double total = 0;
  for (double s : part) total += s;
  return total;
}

/// Sum over rows of row_gradient(i, g) into a P-vector, in chunks added in order.
template <class F>
std::vector<double> chunked_gradient(std::int64_t n, std::size_t size, F row_gradient) {
  const std::int64_t chunks = (n + k_chunk - 1) / k_chunk;
  std::vector<double> part(static_cast<std::size_t>(chunks) * size, 0.0);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    double* g = part.data() + static_cast<std::size_t>(c) * size;
    for (std::int64_t i = c * k_chunk; i < std::min(n, (c + 1) * k_chunk); ++i) row_gradient(i, g);
  }
  std::vector<double> total(size, 0.0);
  for (std::int64_t c = 0; c < chunks; ++c)
    for (std::size_t j = 0; j < size; ++j) total[j] += part[static_cast<std::size_t>(c) * size + j];
  return total;
}

/// The per-row weights f_n of the loss sum_n f_n v_n from the row terms v, and the loss
/// (sctl: a counted evaluation of the scaler when `count`).
double row_factors(loss_context& c, const std::vector<double>& v, std::vector<double>& f, bool count);

/// The loss at calibrated logits q (N x K) and, when `dq` is given, dLoss/dq (N x K).
double loss_at_logits(loss_context& c, const std::vector<double>& q, std::vector<double>* dq, bool count);

/// The loss at the mixture p = w1 a + w2 b + w3 / K of ets (a = softmax(z / t), b = softmax(z)),
/// and its gradient in w (when `grad` is not null).
double loss_at_mixture(loss_context& c, const std::vector<double>& a, const std::vector<double>& b, const double* w,
                       double* grad, bool count);

/// softmax(z inv_t) of row-major N x K logits.
std::vector<double> softmax_rows(const std::vector<double>& z, std::int64_t n, std::int64_t k, double inv_t);

}  // namespace calibench::detail
