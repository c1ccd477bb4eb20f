// The logistic function and its log-partition, shared by the binary-score calibrators (platt,
// beta): sigma(t) = 1 / (1 + e^-t) and softplus(t) = log(1 + e^t), both without overflow.
#pragma once

#include <algorithm>
#include <cmath>

namespace calibench {

inline double sigmoid(double t) { return t >= 0 ? 1.0 / (1.0 + std::exp(-t)) : std::exp(t) / (1.0 + std::exp(t)); }

/// log(1 + e^t) without overflow.
inline double softplus(double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::abs(t))); }

}  // namespace calibench
