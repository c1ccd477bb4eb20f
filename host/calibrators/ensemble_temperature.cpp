// Ensemble temperature scaling (ets; Zhang et al. 2020, docs/calibrators.md): p = w1
// softmax(z/T) + w2 softmax(z) + w3/K, T by the ts NLL fit, w on the simplex by the mixture's
// NLL or MSE (host/calibrators/ets_weights.hpp).
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/ets_weights.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/calibrators/temperature_scaling.hpp"

namespace calibench {
namespace {

class ensemble_map final : public calibration_map {
 public:
  ensemble_map(double temperature, std::array<double, 3> weights, std::string objective, double final_objective)
      : temperature_(temperature),
        weights_(weights),
        objective_(std::move(objective)),
        final_objective_(final_objective) {}

  nlohmann::json params() const override {
    return {{"temperature", temperature_},
            {"weights", weights_},
            {"objective", objective_},
            {"final_objective", final_objective_}};
  }

  /// The mixture keeps the argmax of z (each component does); ties go to the lowest index.
  scored_split apply(const split_data& split) const override {
    return score_split(
        derived(split, ets_probabilities(logits_of(split), split.num_classes, temperature_, weights_), true));
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    const double t = p.at("temperature").get<double>();
    const auto w = p.at("weights").get<std::vector<double>>();
    if (!(t > 0) || !std::isfinite(t) || w.size() != 3)
      throw input_error(fmt::format("{}: ets needs a temperature > 0 and 3 weights", where));
    return std::make_shared<ensemble_map>(t, std::array<double, 3>{w[0], w[1], w[2]},
                                          p.value("objective", std::string("nll")), p.value("final_objective", 0.0));
  }

 private:
  double temperature_;
  std::array<double, 3> weights_;
  std::string objective_;
  double final_objective_;
};

fitted fit_ets(const fit_input& in) {
  const split_data& val = in.val;
  const std::vector<double> z = logits_of(val);
  const std::int64_t k = val.num_classes;
  const std::string where = val.file + ": " + val.values_path();
  for (std::int64_t r = 0; r < val.num_samples; ++r) {
    if (z[static_cast<std::size_t>(r * k + val.labels[static_cast<std::size_t>(r)])] ==
        -std::numeric_limits<double>::infinity())
      throw input_error(
          fmt::format("{}: probability 0 on the label at index {}: the NLL of the temperature "
                      "that ets fits first is infinite for every temperature",
                      where, r));
  }
  std::vector<std::int64_t> rows(static_cast<std::size_t>(val.num_samples));
  std::iota(rows.begin(), rows.end(), std::int64_t{0});
  const double t = fit_temperature_nll(z, val.labels, k, rows, where);
  const bool mse = in.request.objective == fit_objective::mse;
  const auto w = fit_ets_weights(z, val.labels, k, t, mse ? ets_objective::mse : ets_objective::nll);
  return {std::make_shared<ensemble_map>(t, w.weights, mse ? "mse" : "nll", w.objective), {}};
}

}  // namespace

std::vector<method_info> ensemble_temperature_methods() {
  method_info m;
  m.name = "ets";
  m.options = {"objective"};
  m.objectives = {fit_objective::nll, fit_objective::mse};
  m.fit = fit_ets;
  m.load = ensemble_map::load;
  return {m};
}

}  // namespace calibench
