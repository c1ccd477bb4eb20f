// Top-label isotonic regression (iso; Zadrozny and Elkan 2002, as scikit-learn's
// IsotonicRegression with out_of_bounds="clip" computes it, docs/calibrators.md): the
// top-label confidence is mapped through the pool-adjacent-violators fit of validation
// correctness, interpolated linearly between knots, the rest rescaled. cir: the same with
// centered isotonic regression's knots (Oron and Flournoy 2017, as cir-model 0.2.0 fits them).
// Both take --multiclass one-vs-rest.
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

/// How a method fits its knots: fit_isotonic (iso) or fit_centered_isotonic (cir).
using knot_fitter = isotonic_knots (*)(std::span<const double>, std::span<const std::uint8_t>);

class isotonic_map final : public calibration_map {
 public:
  explicit isotonic_map(isotonic_knots k) : knots_(std::move(k)) {}

  nlohmann::json params() const override { return {{"x", knots_.x}, {"y", knots_.y}}; }

  scored_split apply(const split_data& split) const override {
    scored_split base = uncalibrated(split);
    std::vector<double> top(static_cast<std::size_t>(split.num_samples));
    for (std::int64_t i = 0; i < split.num_samples; ++i) top[i] = isotonic_at(knots_, base.confidence[i]);
    return rescale_top_label(std::move(base), top);
  }

  static std::shared_ptr<const calibration_map> load(const std::string& method, const nlohmann::json& p,
                                                     const std::string& where) {
    if (is_one_vs_rest(p)) {
      return load_one_vs_rest(
          p, where,
          [&method](const nlohmann::json& c, const std::string& w) {
            isotonic_knots k{c.at("x").get<std::vector<double>>(), c.at("y").get<std::vector<double>>()};
            check_knots(k, w, method.c_str());
            return std::make_shared<isotonic_score_map>(std::move(k));
          },
          method);
    }
    isotonic_knots k{p.at("x").get<std::vector<double>>(), p.at("y").get<std::vector<double>>()};
    check_knots(k, where, method.c_str());
    return std::make_shared<isotonic_map>(std::move(k));
  }

 private:
  isotonic_knots knots_;
};

fitted fit_knots(const fit_input& in, knot_fitter fit) {
  if (in.request.multiclass == multiclass_rule::one_vs_rest) {
    return fit_one_vs_rest(
        in, class_score::probability,
        [fit](std::span<const double> x, std::span<const std::uint8_t> hit, const std::string&) {
          return std::make_shared<isotonic_score_map>(fit(x, hit));
        },
        in.request.method);
  }
  const scored_split base = uncalibrated(in.val);
  std::vector<std::uint8_t> hit(static_cast<std::size_t>(base.num_samples));
  for (std::int64_t i = 0; i < base.num_samples; ++i) hit[i] = base.prediction[i] == base.labels[i] ? 1 : 0;
  return {std::make_shared<isotonic_map>(fit(base.confidence, hit)), {}};
}

method_info knot_method(const std::string& name, knot_fitter fit) {
  method_info m;
  m.name = name;
  m.options = {"multiclass"};
  m.fit = [fit](const fit_input& in) { return fit_knots(in, fit); };
  m.load = [name](const nlohmann::json& p, const std::string& where) { return isotonic_map::load(name, p, where); };
  return m;
}

}  // namespace

std::vector<method_info> isotonic_methods() {
  return {knot_method("iso", fit_isotonic), knot_method("cir", fit_centered_isotonic)};
}

}  // namespace calibench
