// Per-element math of class-wise loss scaling (+sctl, docs/calibrators.md): the sigmoid weight
// of one class and its derivatives. Shared by the host fit (host/calibrators/trained/sctl.cpp) and any device
// sweep over (alpha, beta) candidates; no CUDA, Thrust or CUB includes, no containers.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/host_device.hpp"

namespace calibench {

namespace kernels {
/// The (alpha, beta) lattice of the loss-scaling grid: alpha_j = alpha_lo + (alpha_hi -
/// alpha_lo) j / (grid - 1), alpha_hi exactly at j = grid - 1; beta likewise.
struct sctl_lattice {
  double alpha_lo, alpha_hi, beta_lo, beta_hi;
  std::int64_t grid;
};

/// Point i of one lattice axis from lo to hi (hi exactly at i = grid - 1).
CALIBENCH_HD double sctl_lattice_axis(double lo, double hi, std::int64_t i, std::int64_t grid) {
  return i == grid - 1 ? hi : lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(grid - 1);
}
}  // namespace kernels

/// The logistic part t = 1 / (1 + exp(-normalised / alpha)) of the weight, in (0, 1]; alpha > 0.
/// exp overflowing to +inf gives t = 0, never NaN.
CALIBENCH_HD double sctl_sigmoid(double normalised, double alpha) {
#if defined(__CUDA_ARCH__)
  return 1.0 / (1.0 + exp(-normalised / alpha));
#else
  return 1.0 / (1.0 + std::exp(-normalised / alpha));
#endif
}

/// The class weight w = beta / (1 + exp(-normalised / alpha)) - beta / 2, in (-beta/2, beta/2),
/// written as the authors' code writes it; the loss scale of the class is 1 + w.
CALIBENCH_HD double sctl_weight(double normalised, double alpha, double beta) {
#if defined(__CUDA_ARCH__)
  return beta / (1.0 + exp(-normalised / alpha)) - beta / 2.0;
#else
  return beta / (1.0 + std::exp(-normalised / alpha)) - beta / 2.0;
#endif
}

/// One term of the (alpha, beta) objective: l0 - w (l1 - l0) - mean_l1, where w is the weight
/// of the class's normalised second loss.
CALIBENCH_HD double sctl_residual(double l0, double l1, double normalised1, double mean_l1, double alpha, double beta) {
  return l0 - sctl_weight(normalised1, alpha, beta) * (l1 - l0) - mean_l1;
}

/// dw/dalpha = -beta t (1 - t) normalised / alpha^2 with t = sctl_sigmoid(normalised, alpha).
CALIBENCH_HD double sctl_weight_dalpha(double normalised, double alpha, double beta) {
  const double t = sctl_sigmoid(normalised, alpha);
  return -beta * t * (1.0 - t) * normalised / (alpha * alpha);
}

/// dw/dbeta = t - 1/2.
CALIBENCH_HD double sctl_weight_dbeta(double normalised, double alpha) { return sctl_sigmoid(normalised, alpha) - 0.5; }

}  // namespace calibench
