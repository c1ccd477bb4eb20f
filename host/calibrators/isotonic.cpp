// Top-label isotonic regression (iso; Zadrozny and Elkan 2002, as scikit-learn's
// IsotonicRegression with out_of_bounds="clip" computes it, docs/calibrators.md): the
// top-label confidence is mapped through the pool-adjacent-violators fit of validation
// correctness, interpolated linearly between knots, the rest rescaled.
#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/isotonic_fit.hpp"
#include "host/calibrators/one_vs_rest.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

/// One class's isotonic map (--multiclass one-vs-rest).
class isotonic_score_map final : public score_map {
 public:
  explicit isotonic_score_map(isotonic_knots k) : k_(std::move(k)) {}
  double at(double x) const override { return isotonic_at(k_, x); }
  nlohmann::json params() const override { return {{"x", k_.x}, {"y", k_.y}}; }

 private:
  isotonic_knots k_;
};

class isotonic_map final : public calibration_map {
 public:
  isotonic_map(std::vector<double> x, std::vector<double> y) : knots_{std::move(x), std::move(y)} {}

  nlohmann::json params() const override { return {{"x", knots_.x}, {"y", knots_.y}}; }

  scored_split apply(const split_data& split) const override {
    scored_split base = uncalibrated(split);
    std::vector<double> top(static_cast<std::size_t>(split.num_samples));
    for (std::int64_t i = 0; i < split.num_samples; ++i) top[i] = isotonic_at(knots_, base.confidence[i]);
    return rescale_top_label(std::move(base), top);
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    if (is_one_vs_rest(p)) {
      return load_one_vs_rest(
          p, where,
          [](const nlohmann::json& c, const std::string& w) {
            isotonic_knots k{c.at("x").get<std::vector<double>>(), c.at("y").get<std::vector<double>>()};
            check_knots(k, w, "iso");
            return std::make_shared<isotonic_score_map>(std::move(k));
          },
          "iso");
    }
    isotonic_knots k{p.at("x").get<std::vector<double>>(), p.at("y").get<std::vector<double>>()};
    check_knots(k, where, "iso");
    return std::make_shared<isotonic_map>(std::move(k.x), std::move(k.y));
  }

 private:
  isotonic_knots knots_;
};

fitted fit_iso(const fit_input& in) {
  if (in.request.multiclass == multiclass_rule::one_vs_rest) {
    return fit_one_vs_rest(
        in, class_score::probability,
        [](std::span<const double> x, std::span<const std::uint8_t> hit, const std::string&) {
          return std::make_shared<isotonic_score_map>(fit_isotonic(x, hit));
        },
        "iso");
  }
  const scored_split base = uncalibrated(in.val);
  std::vector<std::uint8_t> hit(static_cast<std::size_t>(base.num_samples));
  for (std::int64_t i = 0; i < base.num_samples; ++i) hit[i] = base.prediction[i] == base.labels[i] ? 1 : 0;
  isotonic_knots k = fit_isotonic(base.confidence, hit);
  return {std::make_shared<isotonic_map>(std::move(k.x), std::move(k.y)), {}};
}

}  // namespace

std::vector<method_info> isotonic_methods() {
  method_info m;
  m.name = "iso";
  m.options = {"multiclass"};
  m.fit = fit_iso;
  m.load = isotonic_map::load;
  return {m};
}

}  // namespace calibench
