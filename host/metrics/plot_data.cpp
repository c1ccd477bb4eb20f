// Plot data of a scored split (host/metrics/plot_data.hpp).
#include "host/metrics/plot_data.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/metrics/conventions.hpp"
#include "host/metrics/families.hpp"
#include "host/metrics/report.hpp"

namespace calibench {
namespace {

constexpr std::int64_t k_density_bins = 50;

nlohmann::json retention_of_kept(const scored_split& s) {
  const std::int64_t n = s.num_samples;
  const auto order = detail::descending_order(s.confidence);
  nlohmann::json out = nlohmann::json::array({nullptr});
  std::int64_t correct = 0, kept = 0;
  for (std::int64_t i = 1; i <= 100; ++i) {
    const std::int64_t k = (i * n + 99) / 100;  // ceil(i N / 100) in integers
    for (; kept < k; ++kept) correct += s.prediction[order[kept]] == s.labels[order[kept]] ? 1 : 0;
    out.push_back(json_number(static_cast<double>(correct) / static_cast<double>(k)));
  }
  return out;
}

/// The bin j with j/50 <= c < (j+1)/50 (edges as doubles j / 50.0), c >= 1 in the last.
std::int64_t density_bin(double c) {
  auto j = static_cast<std::int64_t>(std::floor(c * static_cast<double>(k_density_bins)));
  j = std::clamp<std::int64_t>(j, 0, k_density_bins - 1);
  while (j < k_density_bins - 1 && c >= static_cast<double>(j + 1) / static_cast<double>(k_density_bins)) ++j;
  while (j > 0 && c < static_cast<double>(j) / static_cast<double>(k_density_bins)) --j;
  return j;
}

nlohmann::json density_of(const scored_split& s) {
  std::vector<std::int64_t> hit(k_density_bins, 0), miss(k_density_bins, 0);
  for (std::int64_t i = 0; i < s.num_samples; ++i)
    (s.prediction[i] == s.labels[i] ? hit : miss)[static_cast<std::size_t>(density_bin(s.confidence[i]))] += 1;
  nlohmann::json edges = nlohmann::json::array();
  for (std::int64_t j = 0; j <= k_density_bins; ++j)
    edges.push_back(static_cast<double>(j) / static_cast<double>(k_density_bins));
  return {{"edges", edges}, {"correct", hit}, {"incorrect", miss}};
}

}  // namespace

nlohmann::json plot_panel(const scored_split& s, const metric_options& options, const std::string& label) {
  metric_options o = options;
  o.selected = metric_selection::of({"ece", "accuracy", "r_auc"});
  const metric_set m = compute_metrics(s, o);
  nlohmann::json bins = nlohmann::json::array();
  for (const auto& b : reliability_bins(s, options)) {
    const double cnt = static_cast<double>(b.count);
    bins.push_back({b.count, b.count ? json_number(b.sum_correct / cnt) : nlohmann::json(nullptr),
                    b.count ? json_number(b.sum_confidence / cnt) : nlohmann::json(nullptr)});
  }
  return {{"label", label},
          {"ece", json_number(m.ece)},
          {"accuracy", json_number(m.accuracy)},
          {"n", s.num_samples},
          {"reliability", bins},
          {"retention", retention_of_kept(s)},
          {"r_auc", json_number(m.r_auc)},
          {"density", density_of(s)}};
}

nlohmann::json plot_document(const std::string& title, const metric_options& options, nlohmann::json panels) {
  const std::string rule = binning_name(options.bin_rule);
  if (rule != "right-closed" && rule != "left-closed" && rule != "guo-strict")
    throw input_error(fmt::format("--plot draws right-closed, left-closed or guo-strict bins, not --binning {}", rule));
  return {{"title", title}, {"bins", options.num_bins}, {"bin_rule", rule}, {"panels", std::move(panels)}};
}

}  // namespace calibench
