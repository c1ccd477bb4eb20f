// Platt scaling (platt; Platt 1999, docs/calibrators.md): a logistic map sigma(a s + b) of one
// score s per row, fitted by unregularised maximum likelihood of the 0/1 targets, or of Platt's
// smoothed targets with --platt-targets smoothed. K = 2: s = z1 - z0, the log-odds of class 1, and the map gives
// P(class 1), so the prediction may change. K > 2: s = log(c / (1 - c)) of the top-label
// confidence c (z_pred - logsumexp of the other logits), the map gives the new confidence, the
// other classes are rescaled and the prediction is kept (hist / iso's rule); --multiclass chooses
// top-label for K = 2 or one map per class (one_vs_rest.hpp). Float64.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/logistic.hpp"
#include "host/calibrators/one_vs_rest.hpp"
#include "host/calibrators/platt_fit.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

enum class platt_mode { binary, top_label };

constexpr std::string_view mode_name(platt_mode m) { return m == platt_mode::binary ? "binary" : "top-label"; }

/// The scores of a split under `mode`; input_error naming the row when s is not finite (a
/// probability of exactly 0 or 1 in a probability dump).
platt_scores scores_of(const split_data& split, const scored_split& base, platt_mode mode) {
  const std::vector<double> z = logits_of(split);
  const std::int64_t n = split.num_samples, k = split.num_classes;
  platt_scores out{std::vector<double>(static_cast<std::size_t>(n)), std::vector<double>(static_cast<std::size_t>(n))};
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = z.data() + i * k;
    if (mode == platt_mode::binary) {
      out.s[i] = row[1] - row[0];
      out.target[i] = split.labels[i] == 1 ? 1.0 : 0.0;
    } else {
      const std::int32_t pred = base.prediction[i];
      out.s[i] = log_odds_against_rest(row, k, pred);
      out.target[i] = pred == split.labels[i] ? 1.0 : 0.0;
    }
    if (!std::isfinite(out.s[i]))
      throw input_error(
          fmt::format("{}: {}: row {}: platt ({}) needs a finite log-odds score (got {}; a "
                      "probability of exactly 0 or 1?)",
                      split.file, split.values_path(), i, mode_name(mode), out.s[i]));
  }
  return out;
}

/// One class's map (--multiclass one-vs-rest): sigma(a s + b) of the class's log-odds.
class platt_score_map final : public score_map {
 public:
  explicit platt_score_map(platt_result r) : r_(std::move(r)) {}
  double at(double s) const override { return sigmoid(r_.a * s + r_.b); }
  nlohmann::json params() const override {
    return {{"a", r_.a}, {"b", r_.b}, {"iterations_run", r_.steps}, {"final_nll", r_.nll}, {"stop", r_.stop}};
  }

 private:
  platt_result r_;
};

class platt_map final : public calibration_map {
 public:
  platt_map(platt_mode mode, double a, double b, std::int64_t iterations, double final_nll, std::string stop)
      : mode_(mode), a_(a), b_(b), iterations_(iterations), final_nll_(final_nll), stop_(std::move(stop)) {}

  nlohmann::json params() const override {
    return {{"a", a_},
            {"b", b_},
            {"multiclass", mode_name(mode_)},
            {"iterations_run", iterations_},
            {"final_nll", final_nll_},
            {"stop", stop_}};
  }

  scored_split apply(const split_data& split) const override {
    if (mode_ == platt_mode::binary && split.num_classes != 2)
      throw input_error(fmt::format("{}: {}: platt was fitted binary (K = 2) but this split has K = {}", split.file,
                                    split.values_path(), split.num_classes));
    scored_split base = uncalibrated(split);
    const platt_scores d = scores_of(split, base, mode_);
    const auto n = static_cast<std::size_t>(split.num_samples);
    if (mode_ == platt_mode::binary) {
      std::vector<double> z(2 * n, 0.0);  // logits [0, a s + b]: softmax gives sigma(a s + b) for class 1
      for (std::size_t i = 0; i < n; ++i) z[2 * i + 1] = a_ * d.s[i] + b_;
      return score_split(derived(split, std::move(z), false));
    }
    std::vector<double> top(n);
    for (std::size_t i = 0; i < n; ++i) top[i] = sigmoid(a_ * d.s[i] + b_);
    return rescale_top_label(std::move(base), top);
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    if (is_one_vs_rest(p)) {
      return load_one_vs_rest(
          p, where,
          [](const nlohmann::json& c, const std::string& w) {
            const double a = c.at("a").get<double>(), b = c.at("b").get<double>();
            if (!std::isfinite(a) || !std::isfinite(b))
              throw input_error(fmt::format("{}: platt needs finite a and b (got {}, {})", w, a, b));
            return std::make_shared<platt_score_map>(platt_result{a, b, c.value("iterations_run", std::int64_t{0}),
                                                                  c.value("final_nll", 0.0),
                                                                  c.value("stop", std::string())});
          },
          "platt");
    }
    const double a = p.at("a").get<double>(), b = p.at("b").get<double>();
    const auto mode = p.at("multiclass").get<std::string>();
    if (!std::isfinite(a) || !std::isfinite(b))
      throw input_error(fmt::format("{}: platt needs finite a and b (got {}, {})", where, a, b));
    if (mode != mode_name(platt_mode::binary) && mode != mode_name(platt_mode::top_label))
      throw input_error(fmt::format("{}: platt multiclass must be binary or top-label (got '{}')", where, mode));
    return std::make_shared<platt_map>(mode == "binary" ? platt_mode::binary : platt_mode::top_label, a, b,
                                       p.value("iterations_run", std::int64_t{0}), p.value("final_nll", 0.0),
                                       p.value("stop", std::string()));
  }

 private:
  platt_mode mode_;
  double a_, b_;
  std::int64_t iterations_;
  double final_nll_;
  std::string stop_;
};

fitted fit_platt(const fit_input& in) {
  const split_data& val = in.val;
  const bool smoothed = in.request.platt_smoothed;
  if (in.request.multiclass == multiclass_rule::one_vs_rest) {
    return fit_one_vs_rest(
        in, class_score::log_odds,
        [rows = val.num_samples, smoothed](std::span<const double> s, std::span<const std::uint8_t> hit,
                                           const std::string& where) {
          platt_scores d{std::vector<double>(s.begin(), s.end()), std::vector<double>(hit.begin(), hit.end())};
          return std::make_shared<platt_score_map>(fit_scores(std::move(d), smoothed, where, "this class", rows));
        },
        "platt");
  }
  const bool top = in.request.multiclass == multiclass_rule::top_label || val.num_classes > 2;
  const platt_mode mode = top ? platt_mode::top_label : platt_mode::binary;
  const platt_result r = fit_scores(scores_of(val, uncalibrated(val), mode), smoothed,
                                    fmt::format("{}: {}: platt ({})", val.file, val.values_path(), mode_name(mode)),
                                    mode == platt_mode::binary ? "label 1" : "a correct prediction", val.num_samples);
  return {std::make_shared<platt_map>(mode, r.a, r.b, r.steps, r.nll, r.stop), {}};
}

}  // namespace

std::vector<method_info> platt_methods() {
  method_info m;
  m.name = "platt";
  m.options = {"multiclass", "platt_targets"};
  m.fit = fit_platt;
  m.load = platt_map::load;
  return {m};
}

}  // namespace calibench
