// Ensemble temperature scaling of `calibench fit --method ets` (Zhang et al. 2020; docs/calibrators.md):
// p = w1 softmax(z/T) + w2 softmax(z) + w3/K with w on the simplex. The temperature comes from
// the `ts` NLL fit; this file mixes the components and fits w exactly (a convex problem in
// three weights, solved face by face). Float64 on the host, serial sums: bit-reproducible.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace calibench {

/// What the weights minimise on the validation split: the mean NLL of the mixture, or its
/// mean over samples of the sum over classes of (p - onehot)^2 (Mix-n-Match's code).
enum class ets_objective { nll, mse };

/// Result of fit_ets_weights.
struct ets_weight_fit {
  std::array<double, 3> weights{1.0, 0.0, 0.0};  ///< w1 (softmax(z/T)), w2 (softmax(z)), w3 (uniform)
  double objective = 0;                          ///< the objective at `weights`
};

/// The mixture p (row-major N x K) of row-major N x K logits `z` (entries may be -inf: no mass).
std::vector<double> ets_probabilities(const std::vector<double>& z, std::int64_t num_classes, double temperature,
                                      const std::array<double, 3>& weights);

/// The weights on the simplex minimising `objective` for logits `z` and `labels` at `temperature`:
/// the best point of the three edges of the simplex (each a 1-D convex problem solved to
/// machine precision), replaced by the interior minimiser (damped Newton) only when the edge
/// point violates the optimality condition. Ties go to the first edge of (w1,w3), (w1,w2), (w2,w3).
ets_weight_fit fit_ets_weights(const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                               std::int64_t num_classes, double temperature, ets_objective objective);

}  // namespace calibench
