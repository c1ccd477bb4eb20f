// The scaling-binning calibrator (scaling_binning; Kumar, Liang and Ma, NeurIPS 2019, as
// uncertainty-calibration 0.1.4's PlattBinnerTopCalibrator computes it, docs/calibrators.md):
// Platt scaling g of the top-label log-odds fitted on the validation correctness, then the
// validation values g(c) in M equal-mass bins (edges halfway between array_split groups, the
// library's get_equal_bins), and each bin's mean of g as the calibrated confidence; the other
// classes are rescaled and the prediction is kept (hist / iso's rule). Float64.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/logistic.hpp"
#include "host/calibrators/platt_fit.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {
namespace {

/// The top-label log-odds of every row (z_pred - logsumexp of the others) and its correctness.
platt_scores top_label_scores(const split_data& split, const scored_split& base) {
  const std::vector<double> z = logits_of(split);  // log p: a zero probability is -inf, fine off the top
  const std::int64_t n = split.num_samples, k = split.num_classes;
  platt_scores d{std::vector<double>(static_cast<std::size_t>(n)), std::vector<double>(static_cast<std::size_t>(n))};
  for (std::int64_t i = 0; i < n; ++i) {
    d.s[i] = log_odds_against_rest(z.data() + i * k, k, base.prediction[i]);
    if (!std::isfinite(d.s[i]))
      throw input_error(
          fmt::format("{}: {}: row {}: scaling_binning needs a finite top-label log-odds (got {}; a "
                      "probability of exactly 1?)",
                      split.file, split.values_path(), i, d.s[i]));
    d.target[i] = base.prediction[i] == split.labels[i] ? 1.0 : 0.0;
  }
  return d;
}

/// get_equal_bins: the sorted values in min(M, N) array_split groups; the upper edges are the
/// midpoints between a group's last value and the next group's first, then 1.0; duplicates
/// removed, ascending.
std::vector<double> equal_mass_edges(std::vector<double> values, std::int64_t m) {
  std::sort(values.begin(), values.end());
  const auto n = static_cast<std::int64_t>(values.size());
  const std::int64_t groups = std::min(m, n);
  std::vector<double> edges;
  std::int64_t pos = 0;
  for (std::int64_t g = 0; g + 1 < groups; ++g) {
    pos += array_split_size(n, groups, g);
    edges.push_back((values[pos - 1] + values[pos]) / 2.0);
  }
  edges.push_back(1.0);
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}

/// The bin of v: the number of edges below it (bisect_left).
std::size_t bin_of(const std::vector<double>& edges, double v) {
  return static_cast<std::size_t>(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin());
}

class scaling_binning_map final : public calibration_map {
 public:
  scaling_binning_map(platt_result platt, std::vector<double> edges, std::vector<double> values)
      : platt_(std::move(platt)), edges_(std::move(edges)), values_(std::move(values)) {}

  nlohmann::json params() const override {
    return {{"a", platt_.a},
            {"b", platt_.b},
            {"edges", edges_},
            {"values", values_},
            {"iterations_run", platt_.steps},
            {"final_nll", platt_.nll},
            {"stop", platt_.stop}};
  }

  scored_split apply(const split_data& split) const override {
    scored_split base = uncalibrated(split);
    const platt_scores d = top_label_scores(split, base);
    std::vector<double> top(d.s.size());
    for (std::size_t i = 0; i < d.s.size(); ++i) {
      const std::size_t b = std::min(bin_of(edges_, sigmoid(platt_.a * d.s[i] + platt_.b)), values_.size() - 1);
      top[i] = values_[b];
    }
    return rescale_top_label(std::move(base), top);
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    platt_result platt{p.at("a").get<double>(), p.at("b").get<double>(), p.value("iterations_run", std::int64_t{0}),
                       p.value("final_nll", 0.0), p.value("stop", std::string())};
    auto edges = p.at("edges").get<std::vector<double>>();
    auto values = p.at("values").get<std::vector<double>>();
    if (!std::isfinite(platt.a) || !std::isfinite(platt.b))
      throw input_error(fmt::format("{}: scaling_binning needs finite a and b", where));
    if (edges.empty() || values.size() != edges.size() || edges.back() != 1.0 ||
        !std::is_sorted(edges.begin(), edges.end()))
      throw input_error(
          fmt::format("{}: scaling_binning needs ascending edges ending at 1 and one value per edge", where));
    return std::make_shared<scaling_binning_map>(std::move(platt), std::move(edges), std::move(values));
  }

 private:
  platt_result platt_;
  std::vector<double> edges_, values_;
};

fitted fit_scaling_binning(const fit_input& in) {
  const split_data& val = in.val;
  const platt_scores d = top_label_scores(val, uncalibrated(val));
  const platt_result platt =
      fit_scores(d, false, fmt::format("{}: {}: scaling_binning (its Platt scaling)", val.file, val.values_path()),
                 "a correct prediction", val.num_samples);
  std::vector<double> g(d.s.size());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = sigmoid(platt.a * d.s[i] + platt.b);
  std::vector<double> edges = equal_mass_edges(g, in.request.calib_bins.count);
  // Each bin's mean of g; an empty bin (possible only after ties merge edges) gets its middle,
  // as the library's safe_mean does.
  std::vector<double> sum(edges.size(), 0.0), values(edges.size());
  std::vector<std::int64_t> count(edges.size(), 0);
  for (double v : g) {
    const std::size_t b = bin_of(edges, v);
    sum[b] += v;
    ++count[b];
  }
  for (std::size_t b = 0; b < edges.size(); ++b) {
    values[b] = count[b] > 0 ? sum[b] / static_cast<double>(count[b])
                : b == 0     ? edges[0] / 2.0
                             : (edges[b] + edges[b - 1]) / 2.0;
  }
  return {std::make_shared<scaling_binning_map>(platt, std::move(edges), std::move(values)), {}};
}

}  // namespace

std::vector<method_info> scaling_binning_methods() {
  method_info m;
  m.name = "scaling_binning";
  m.options = {"calib_bins"};
  m.check = [](const fit_request& r) {
    if (r.calib_bins.automatic)
      throw input_error("--calib-bins auto chooses equal-mass groups for cws, cts_conf, bts; scaling_binning needs M");
  };
  m.fit = fit_scaling_binning;
  m.load = scaling_binning_map::load;
  return {m};
}

}  // namespace calibench
