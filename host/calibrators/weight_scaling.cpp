// Weight scaling (ws; the weight-scaling paper, docs/calibrators.md): p = a softmax(z) + (1 - a)/K,
// the prediction kept, a by a grid search of validation adaECE on the sweep backend.
#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"

#include "host/calibrators/confidence_groups_code.hpp"
#include "host/calibrators/grid_search.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/metrics/families.hpp"

namespace calibench {
namespace {

class weight_map final : public calibration_map {
 public:
  explicit weight_map(double weight, bool code = false) : weight_(weight), code_(code) {}
  nlohmann::json params() const override {
    return code_ ? nlohmann::json{{"weight", weight_}, {"follow", "code"}} : nlohmann::json{{"weight", weight_}};
  }
  scored_split apply(const split_data& split) const override {
    return score_weighted(split, std::vector<double>(static_cast<std::size_t>(split.num_samples), weight_));
  }

 private:
  double weight_;
  bool code_;
};

/// `--follow code`: the authors' set_temperature5 (liorfrenkel1992/calibration @ 01ea29b,
/// temperature_scaling.py l.2074-2167; tests/reference/frenkel_code_ref.py ws_code): 13
/// equal-mass bins of the validation confidence (np.interp edges, bins (e_b, e_b+1], the
/// smallest confidence in none), per non-empty bin A (the float32 mean the code computes) and
/// C, then the least-squares weight sum (C - 1/K)(A - 1/K) / sum (C - 1/K)^2, unweighted by
/// the bin counts and not clipped.
fitted fit_ws_code(const fit_input& in) {
  constexpr std::int32_t k_code_bins = 13;
  const scored_split s = uncalibrated(in.val);
  const code_bins bins =
      code_equal_mass_bins(std::vector<double>(s.confidence.begin(), s.confidence.end()), s, k_code_bins);
  const auto& count = bins.count;
  if (std::all_of(count.begin(), count.end(), [](double c) { return c == 0; }))
    throw input_error(
        fmt::format("{}: /val: ws --follow code: no validation confidence lies above the smallest one "
                    "(N = {}, or every confidence tied), so every one of the code's bins is empty",
                    in.val.file, s.num_samples));
  const double u = 1.0 / static_cast<double>(s.num_classes);
  double num = 0, den = 0;
  for (std::int32_t b = 0; b < k_code_bins; ++b) {
    if (count[b] == 0) continue;
    const double a = code_mean_f32(bins.hits[b], count[b]);
    const double c = bins.sum_confidence[b] / count[b];
    num += (c - u) * (a - u);
    den += (c - u) * (c - u);
  }
  if (!(den > 0))
    throw input_error(
        fmt::format("{}: ws --follow code: every validation bin's mean confidence is 1/K, so the "
                    "code's least-squares weight is undefined",
                    in.val.file));
  return {std::make_shared<weight_map>(num / den, true), {}};
}

fitted fit_ws(const fit_input& in) {
  if (in.request.follow_code) return fit_ws_code(in);
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
  ws.options = {"grid", "objective_bins", "follow"};
  ws.on_backend = [](const fit_request& r) { return !r.follow_code; };
  ws.check = [](const fit_request& r) {
    if (r.follow_code && (r.was_given("grid") || r.was_given("objective_bins")))
      throw input_error(
          "ws --follow code: the code's weight is a closed form over 13 fixed bins; --grid and --objective-bins do "
          "not apply");
  };
  ws.fit = fit_ws;
  ws.load = [](const nlohmann::json& p, const std::string&) {
    return std::make_shared<weight_map>(p.at("weight").get<double>(), p.value("follow", "paper") == "code");
  };
  return {ws};
}

}  // namespace calibench
