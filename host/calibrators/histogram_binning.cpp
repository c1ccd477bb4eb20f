// Top-label histogram binning (hist; Zadrozny and Elkan 2001, as markus93's HistogramBinning
// computes it, docs/calibrators.md): the top-label confidence is replaced by the validation
// accuracy of its equal-width bin (right-closed, M = --calib-bins), the rest rescaled.
#include <cmath>
#include <span>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/one_vs_rest.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "kernels/calib_math.hpp"

namespace calibench {
namespace {

/// The equal-width histogram of (x, hit) pairs: M right-closed bins, each bin's hit frequency
/// (0 for an empty bin, as markus93's HistogramBinning does; docs/calibrators.md).
struct histogram_fit {
  std::vector<double> edges, values;
  std::vector<std::int64_t> counts;
};

histogram_fit fit_histogram(std::span<const double> x, std::span<const std::uint8_t> hit, std::int32_t m) {
  histogram_fit h;
  h.counts.assign(static_cast<std::size_t>(m), 0);
  std::vector<std::int64_t> correct(static_cast<std::size_t>(m), 0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto b = static_cast<std::size_t>(bin_index(binning::right_closed, x[i], m));
    ++h.counts[b];
    correct[b] += hit[i];
  }
  for (std::int32_t i = 0; i <= m; ++i) h.edges.push_back(bin_edge(i, m));
  for (std::size_t b = 0; b < h.counts.size(); ++b)
    h.values.push_back(h.counts[b] == 0 ? 0.0 : static_cast<double>(correct[b]) / static_cast<double>(h.counts[b]));
  return h;
}

/// One class's histogram (--multiclass one-vs-rest).
class histogram_score_map final : public score_map {
 public:
  explicit histogram_score_map(histogram_fit h) : h_(std::move(h)) {}
  double at(double x) const override {
    return h_.values[static_cast<std::size_t>(
        bin_index(binning::right_closed, x, static_cast<std::int32_t>(h_.values.size())))];
  }
  nlohmann::json params() const override { return {{"edges", h_.edges}, {"values", h_.values}, {"counts", h_.counts}}; }

 private:
  histogram_fit h_;
};

/// Saved histogram params, checked: M >= 1 values and counts, the M + 1 edges i/M.
histogram_fit read_histogram(const nlohmann::json& p, const std::string& where) {
  histogram_fit h{p.at("edges").get<std::vector<double>>(), p.at("values").get<std::vector<double>>(),
                  p.at("counts").get<std::vector<std::int64_t>>()};
  const std::size_t m = h.values.size();
  if (m == 0 || m > 1000000 || h.counts.size() != m || h.edges.size() != m + 1)
    throw input_error(fmt::format("{}: hist needs M >= 1 values and counts and M + 1 edges", where));
  for (std::size_t i = 0; i <= m; ++i) {
    if (h.edges[i] != bin_edge(static_cast<std::int32_t>(i), static_cast<std::int32_t>(m)))
      throw input_error(fmt::format("{}: hist edges must be i/M (edge {} is {})", where, i, h.edges[i]));
  }
  return h;
}

class histogram_map final : public calibration_map {
 public:
  histogram_map(std::vector<double> edges, std::vector<double> values, std::vector<std::int64_t> counts)
      : edges_(std::move(edges)), values_(std::move(values)), counts_(std::move(counts)) {}

  nlohmann::json params() const override { return {{"edges", edges_}, {"values", values_}, {"counts", counts_}}; }

  scored_split apply(const split_data& split) const override {
    scored_split base = uncalibrated(split);
    std::vector<double> top(static_cast<std::size_t>(split.num_samples));
    const auto m = static_cast<std::int32_t>(values_.size());
    for (std::int64_t i = 0; i < split.num_samples; ++i)
      top[i] = values_[static_cast<std::size_t>(bin_index(binning::right_closed, base.confidence[i], m))];
    return rescale_top_label(std::move(base), top);
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    if (is_one_vs_rest(p)) {
      return load_one_vs_rest(
          p, where,
          [](const nlohmann::json& c, const std::string& w) {
            return std::make_shared<histogram_score_map>(read_histogram(c, w));
          },
          "hist");
    }
    histogram_fit h = read_histogram(p, where);
    return std::make_shared<histogram_map>(std::move(h.edges), std::move(h.values), std::move(h.counts));
  }

 private:
  std::vector<double> edges_, values_;
  std::vector<std::int64_t> counts_;
};

fitted fit_hist(const fit_input& in) {
  const auto m = static_cast<std::int32_t>(in.request.calib_bins.count);
  if (in.request.multiclass == multiclass_rule::one_vs_rest) {
    return fit_one_vs_rest(
        in, class_score::probability,
        [m](std::span<const double> x, std::span<const std::uint8_t> hit, const std::string&) {
          return std::make_shared<histogram_score_map>(fit_histogram(x, hit, m));
        },
        "hist");
  }
  const scored_split base = uncalibrated(in.val);
  std::vector<std::uint8_t> hit(static_cast<std::size_t>(base.num_samples));
  for (std::int64_t i = 0; i < base.num_samples; ++i) hit[i] = base.prediction[i] == base.labels[i] ? 1 : 0;
  histogram_fit h = fit_histogram(base.confidence, hit, m);
  return {std::make_shared<histogram_map>(std::move(h.edges), std::move(h.values), std::move(h.counts)), {}};
}

}  // namespace

std::vector<method_info> histogram_binning_methods() {
  method_info m;
  m.name = "hist";
  m.options = {"calib_bins", "multiclass"};
  m.check = [](const fit_request& r) {
    if (r.calib_bins.automatic)
      throw input_error("--calib-bins auto chooses equal-mass groups for cws, cts_conf, bts; hist needs M");
  };
  m.fit = fit_hist;
  m.load = histogram_map::load;
  return {m};
}

}  // namespace calibench
