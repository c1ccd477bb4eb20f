// `--multiclass one-vs-rest` of the binary-score calibrators (platt, beta, hist, iso, cir;
// docs/calibrators.md): one 1-D map per class of that class's score against [label == j], as
// scikit-learn's CalibratedClassifierCV fits its sigmoid and isotonic calibrators: for K = 2 one
// map of class 1's score, P(class 0) = 1 - P(class 1); for K > 2 the K calibrated values divided
// by their sum (uniform 1/K where every one is 0). The prediction is the calibrated argmax.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/calibrators/calibrator.hpp"
#include "host/calibrators/registry.hpp"

namespace calibench {

/// The per-class score a method maps: the probability p_j, or its log-odds
/// log(p_j / (1 - p_j)) computed from the logits as z_j - logsumexp of the others.
enum class class_score { probability, log_odds };

/// A fitted 1-D map of one class's score.
class score_map {
 public:
  virtual ~score_map() = default;
  virtual double at(double score) const = 0;
  virtual nlohmann::json params() const = 0;
};

/// Fits one class's map on its validation scores and 0/1 targets; `where` names the class for
/// messages (input_error when the fit does not exist).
using score_fitter = std::function<std::shared_ptr<const score_map>(
    std::span<const double> scores, std::span<const std::uint8_t> hit, const std::string& where)>;
/// Reads one class's params() back.
using score_loader =
    std::function<std::shared_ptr<const score_map>(const nlohmann::json& params, const std::string& where)>;

/// The one-vs-rest fit of `method` on the validation split.
fitted fit_one_vs_rest(const fit_input& in, class_score kind, const score_fitter& fit, const std::string& method);

/// Whether saved params are a one-vs-rest calibrator's.
bool is_one_vs_rest(const nlohmann::json& params);

/// A saved one-vs-rest calibrator of `method`.
std::shared_ptr<const calibration_map> load_one_vs_rest(const nlohmann::json& params, const std::string& where,
                                                        const score_loader& load, const std::string& method);

}  // namespace calibench
