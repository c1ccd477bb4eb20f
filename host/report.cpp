// JSON and table rendering of eval results (docs/metrics.md fixes the JSON keys).
#include "host/report.hpp"

#include <cmath>

#include <fmt/format.h>

namespace calibench {

const char* binning_name(binning rule) {
  switch (rule) {
    case binning::right_closed:
      return "right-closed";
    case binning::left_closed:
      return "left-closed";
  }
  return "?";
}

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json eval_json(const eval_report& r) {
  nlohmann::json j = nlohmann::json::object();
  j["n"] = r.metrics.n;
  j["k"] = r.metrics.k;
  const auto fields = metric_fields();
  for (const auto& f : fields) j[f.name] = json_number(r.metrics.*(f.member));
  if (r.bootstrap) {
    j["bootstrap"] = {{"resamples", r.bootstrap->options.resamples},
                      {"seed", r.bootstrap->options.seed},
                      {"level", r.bootstrap->options.level}};
    nlohmann::json ci = nlohmann::json::object();
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const auto& iv = r.bootstrap->intervals[i];
      ci[fields[i].name] = (std::isfinite(iv.low) && std::isfinite(iv.high))
                               ? nlohmann::json{{"low", iv.low}, {"high", iv.high}}
                               : nlohmann::json(nullptr);
    }
    j["ci"] = std::move(ci);
  }
  if (r.reliability) {
    nlohmann::json bins = nlohmann::json::array();
    const auto m = r.options.num_bins;
    for (std::int32_t i = 0; i < m; ++i) {
      const auto& b = (*r.reliability)[static_cast<std::size_t>(i)];
      const double cnt = static_cast<double>(b.count);
      bins.push_back({{"lo", bin_edge(i, m)},
                      {"hi", bin_edge(i + 1, m)},
                      {"count", b.count},
                      {"accuracy", b.count ? json_number(b.sum_correct / cnt) : nlohmann::json(nullptr)},
                      {"confidence", b.count ? json_number(b.sum_confidence / cnt) : nlohmann::json(nullptr)}});
    }
    j["reliability"] = std::move(bins);
  }
  if (r.order_inversions) j["order_inversions"] = json_number(*r.order_inversions);
  return j;
}

namespace {
std::string value_text(double v, bool percent) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return percent ? fmt::format("{:.2f}", 100.0 * v) : fmt::format("{:.4f}", v);
}
}  // namespace

std::string eval_table(const eval_report& r) {
  std::string out = fmt::format("{}  split {}  N {}  K {}  ({})\n", r.file, r.split, r.metrics.n, r.metrics.k,
                                r.scores);
  out += fmt::format("bins {} {}; metrics marked % are x100\n\n", r.options.num_bins, binning_name(r.options.bin_rule));
  const bool ci = r.bootstrap.has_value();
  if (ci) {
    out += fmt::format("{:<12}{:>10}   {:.0f}% bootstrap interval ({} resamples, seed {})\n", "metric", "value",
                       100.0 * r.bootstrap->options.level, r.bootstrap->options.resamples, r.bootstrap->options.seed);
  } else {
    out += fmt::format("{:<12}{:>10}\n", "metric", "value");
  }
  const auto fields = metric_fields();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto& f = fields[i];
    const std::string name = f.percent ? fmt::format("{} %", f.name) : std::string(f.name);
    out += fmt::format("{:<12}{:>10}", name, value_text(r.metrics.*(f.member), f.percent));
    if (ci) {
      const auto& iv = r.bootstrap->intervals[i];
      out += fmt::format("   [{}, {}]", value_text(iv.low, f.percent), value_text(iv.high, f.percent));
    }
    out += "\n";
  }
  if (r.order_inversions)
    out += fmt::format("\norder inversions against {}: {} %\n", r.inversions_against,
                       value_text(*r.order_inversions, true));
  if (r.reliability) {
    out += fmt::format("\nreliability diagram\n{:<17}{:>8}{:>12}{:>14}\n", "bin", "count", "accuracy %",
                       "confidence %");
    const auto m = r.options.num_bins;
    for (std::int32_t i = 0; i < m; ++i) {
      const auto& b = (*r.reliability)[static_cast<std::size_t>(i)];
      const double cnt = static_cast<double>(b.count);
      out += fmt::format("{:<17}{:>8}{:>12}{:>14}\n", fmt::format("[{:.4f}, {:.4f}]", bin_edge(i, m), bin_edge(i + 1, m)),
                         b.count, b.count ? value_text(b.sum_correct / cnt, true) : "-",
                         b.count ? value_text(b.sum_confidence / cnt, true) : "-");
    }
  }
  return out;
}

}  // namespace calibench
