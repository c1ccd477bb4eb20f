// Turning results into what the CLI prints: JSON objects (non-finite -> null) and readable
// tables (fractions x100).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/io/dump.hpp"
#include "host/metrics/bootstrap.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {

/// Everything `calibench eval` computed for one split.
struct eval_report {
  std::string file;
  std::string split;
  std::string scores;   ///< e.g. "logits float32", "binary logits float32"
  bool binary = false;  ///< one stored score per row (K = 2): the JSON says "binary": true
  metric_options options;
  metric_set metrics;
  std::optional<bootstrap_result> bootstrap;
  std::optional<std::vector<bin_stats>> reliability;
  std::optional<classwise_breakdown> classwise;
  std::optional<double> order_inversions;
  std::string inversions_against;
  /// --compare-conventions: the metrics under each preset, in preset order.
  std::vector<std::pair<std::string, metric_set>> compared;
};

/// A double as JSON: null when not finite.
nlohmann::json json_number(double v);

nlohmann::json eval_json(const eval_report& r);
/// `eval --classwise` as JSON: {"classes": [{class, count, accuracy, ece, under, over}],
/// "bins": [{lo, hi, under, over}]}.
nlohmann::json classwise_json(const classwise_breakdown& c, const metric_options& options);
/// The metrics of one split as `eval --format json` prints them, conventions included.
nlohmann::json metrics_json(const metric_set& m, const metric_options& options);
std::string eval_table(const eval_report& r);

}  // namespace calibench
