// Weight scaling (ws; the weight-scaling paper, docs/calibrators.md): p = a softmax(z) + (1 - a)/K,
// the prediction kept, a by a grid search of validation adaECE on the sweep backend.
#include <memory>

#include "host/calibrators/grid_search.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

class weight_map final : public calibration_map {
 public:
  explicit weight_map(double weight) : weight_(weight) {}
  nlohmann::json params() const override { return {{"weight", weight_}}; }
  scored_split apply(const split_data& split) const override {
    return score_weighted(split, std::vector<double>(static_cast<std::size_t>(split.num_samples), weight_));
  }

 private:
  double weight_;
};

fitted fit_ws(const fit_input& in) {
  const resident_split split(in.val, *in.backend);
  const auto grid = grid_or(in.request, "0:1:0.001");
  const auto s = in.backend->weight(*split.data, grid, sweep_options_of(in.request, true));
  return {std::make_shared<weight_map>(grid[static_cast<std::size_t>(first_min(s.adaece))]),
          {"adaece", grid, s.adaece}};
}

}  // namespace

std::vector<method_info> weight_scaling_methods() {
  method_info ws;
  ws.name = "ws";
  ws.options = {"grid"};
  ws.on_backend = [](const fit_request&) { return true; };
  ws.fit = fit_ws;
  ws.load = [](const nlohmann::json& p, const std::string&) {
    return std::make_shared<weight_map>(p.at("weight").get<double>());
  };
  return {ws};
}

}  // namespace calibench
