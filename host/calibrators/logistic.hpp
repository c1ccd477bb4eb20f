// The logistic function and its log-partition, shared by the binary-score calibrators (platt,
// beta, bbq, enir) and the Top-versus-All losses (ts --objective tva, vs_tva, ms_odir_tva): sigma(t) = 1 / (1 + e^-t)
// and softplus(t) = log(1 + e^t), both without overflow.
#pragma once

#include <algorithm>
#include <cmath>

namespace calibench {

inline double sigmoid(double t) { return t >= 0 ? 1.0 / (1.0 + std::exp(-t)) : std::exp(t) / (1.0 + std::exp(t)); }

/// log(1 + e^t) without overflow.
inline double softplus(double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::abs(t))); }

}  // namespace calibench
