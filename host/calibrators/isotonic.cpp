// Top-label isotonic regression (iso; Zadrozny and Elkan 2002, as scikit-learn's
// IsotonicRegression with out_of_bounds="clip" computes it, docs/calibrators.md): the
// top-label confidence is mapped through the pool-adjacent-violators fit of validation
// correctness, interpolated linearly between knots, the rest rescaled.
#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/isotonic_fit.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

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
    isotonic_knots k{p.at("x").get<std::vector<double>>(), p.at("y").get<std::vector<double>>()};
    check_knots(k, where, "iso");
    return std::make_shared<isotonic_map>(std::move(k.x), std::move(k.y));
  }

 private:
  isotonic_knots knots_;
};

fitted fit_iso(const fit_input& in) {
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
  m.fit = fit_iso;
  m.load = isotonic_map::load;
  return {m};
}

}  // namespace calibench
