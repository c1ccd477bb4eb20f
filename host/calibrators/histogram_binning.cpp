// Top-label histogram binning (hist; Zadrozny and Elkan 2001, as markus93's HistogramBinning
// computes it, docs/calibrators.md): the top-label confidence is replaced by the validation
// accuracy of its equal-width bin (right-closed, M = --calib-bins), the rest rescaled.
#include <cmath>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "kernels/calib_math.hpp"

namespace calibench {
namespace {

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
    auto edges = p.at("edges").get<std::vector<double>>();
    auto values = p.at("values").get<std::vector<double>>();
    auto counts = p.at("counts").get<std::vector<std::int64_t>>();
    const std::size_t m = values.size();
    if (m == 0 || m > 1000000 || counts.size() != m || edges.size() != m + 1)
      throw input_error(fmt::format("{}: hist needs M >= 1 values and counts and M + 1 edges", where));
    for (std::size_t i = 0; i <= m; ++i) {
      if (edges[i] != bin_edge(static_cast<std::int32_t>(i), static_cast<std::int32_t>(m)))
        throw input_error(fmt::format("{}: hist edges must be i/M (edge {} is {})", where, i, edges[i]));
    }
    return std::make_shared<histogram_map>(std::move(edges), std::move(values), std::move(counts));
  }

 private:
  std::vector<double> edges_, values_;
  std::vector<std::int64_t> counts_;
};

fitted fit_hist(const fit_input& in) {
  const auto m = static_cast<std::int32_t>(in.request.calib_bins.count);
  const scored_split base = uncalibrated(in.val);
  std::vector<std::int64_t> counts(static_cast<std::size_t>(m), 0), correct(static_cast<std::size_t>(m), 0);
  for (std::int64_t i = 0; i < base.num_samples; ++i) {
    const auto b = static_cast<std::size_t>(bin_index(binning::right_closed, base.confidence[i], m));
    ++counts[b];
    correct[b] += base.prediction[i] == base.labels[i] ? 1 : 0;
  }
  std::vector<double> edges, values;
  for (std::int32_t i = 0; i <= m; ++i) edges.push_back(bin_edge(i, m));
  for (std::size_t b = 0; b < counts.size(); ++b) {
    // Empty bins map to 0, as markus93's HistogramBinning does (docs/calibrators.md).
    values.push_back(counts[b] == 0 ? 0.0 : static_cast<double>(correct[b]) / static_cast<double>(counts[b]));
  }
  return {std::make_shared<histogram_map>(std::move(edges), std::move(values), std::move(counts)), {}};
}

}  // namespace

std::vector<method_info> histogram_binning_methods() {
  method_info m;
  m.name = "hist";
  m.options = {"calib_bins"};
  m.check = [](const fit_request& r) {
    if (r.calib_bins.automatic)
      throw input_error("--calib-bins auto chooses equal-mass groups for cws, cts_conf, bts; hist needs M");
  };
  m.fit = fit_hist;
  m.load = histogram_map::load;
  return {m};
}

}  // namespace calibench
