// Temperature scaling (ts; Guo et al. 2017): softmax(z / T), T by the validation NLL (a 1-D
// convex problem, safeguarded Newton), by the Top-versus-All loss (Le Coz et al. 2024: the binary
// cross-entropy of the top-label confidence against correctness, --objective tva) or by a grid
// search of ECE / adaECE on the sweep backend.
// The NLL fit is shared with bts, ets and the segmentation ts (docs/calibrators.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/calibrators/calibrator.hpp"

namespace calibench {

/// argmin over T of the mean NLL of softmax(z / T) over `rows` of row-major logits `z` (entries
/// may be -inf: no mass), T in [1e-8, 1e8]; the bound when the NLL has no minimiser inside.
/// 1.0 for no rows. input_error naming `where` when a label has probability 0.
double fit_temperature_nll(const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                           std::int64_t num_classes, const std::vector<std::int64_t>& rows, const std::string& where);

/// argmin over T in [1e-8, 1e8] of the mean Top-versus-All loss softplus(u) - a u of softmax(z / T),
/// u the top-label log-odds, a = [argmax z == label] (docs/calibrators.md, docs/ports/tva.md):
/// every sign change (- to +) of dF/db on 641 log-spaced b = 1/T refined by Brent's method,
/// the bounds where F still falls there, the lowest F (the first on ties); 1.0 when F is constant.
/// input_error naming `where` for K < 2 or a row whose top-label log-odds is not finite.
double fit_temperature_tva(const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                           std::int64_t num_classes, const std::string& where);

/// ts's parameters: one temperature.
class temperature_map final : public calibration_map {
 public:
  explicit temperature_map(double temperature) : temperature_(temperature) {}
  double temperature() const { return temperature_; }
  nlohmann::json params() const override { return {{"temperature", temperature_}}; }
  scored_split apply(const split_data& split) const override;

 private:
  double temperature_;
};

}  // namespace calibench
