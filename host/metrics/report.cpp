// JSON and table rendering of eval results (docs/metrics.md fixes the JSON keys).
#include "host/metrics/report.hpp"

#include <cmath>

#include <fmt/format.h>

#include "host/metrics/conventions.hpp"

namespace calibench {

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json classwise_json(const classwise_breakdown& c, const metric_options& options) {
  nlohmann::json classes = nlohmann::json::array();
  for (std::size_t j = 0; j < c.classes.size(); ++j) {
    const auto& x = c.classes[j];
    classes.push_back({{"class", j},
                       {"count", x.count},
                       {"accuracy", json_number(x.accuracy)},
                       {"ece", json_number(x.ece)},
                       {"under", json_number(x.under)},
                       {"over", json_number(x.over)}});
  }
  nlohmann::json bins = nlohmann::json::array();
  for (std::size_t i = 0; i < c.bin_under.size(); ++i) {
    const auto edge = bin_slot_bounds(options.classwise_binning(), static_cast<std::int32_t>(i), options.num_bins);
    bins.push_back({{"lo", edge.lo},
                    {"hi", edge.hi},
                    {"under", json_number(c.bin_under[i])},
                    {"over", json_number(c.bin_over[i])}});
  }
  return {{"classes", std::move(classes)}, {"bins", std::move(bins)}};
}

nlohmann::json eval_json(const eval_report& r) {
  nlohmann::json j = nlohmann::json::object();
  j["n"] = r.metrics.n;
  j["k"] = r.metrics.k;
  if (r.binary) j["binary"] = true;
  const auto fields = metric_fields();
  const metric_selection& sel = r.options.selected;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (sel.has(i)) j[fields[i].name] = json_number(r.metrics.*(fields[i].member));
  }
  if (r.bootstrap) {
    j["bootstrap"] = {{"resamples", r.bootstrap->options.resamples},
                      {"seed", r.bootstrap->options.seed},
                      {"level", r.bootstrap->options.level}};
    nlohmann::json ci = nlohmann::json::object();
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (!sel.has(i)) continue;
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
    for (std::int32_t i = 0; i < r.options.slots(); ++i) {
      const auto& b = (*r.reliability)[static_cast<std::size_t>(i)];
      const double cnt = static_cast<double>(b.count);
      const auto edge = bin_slot_bounds(r.options.bin_rule, i, m);
      bins.push_back({{"lo", edge.lo},
                      {"hi", edge.hi},
                      {"count", b.count},
                      {"accuracy", b.count ? json_number(b.sum_correct / cnt) : nlohmann::json(nullptr)},
                      {"confidence", b.count ? json_number(b.sum_confidence / cnt) : nlohmann::json(nullptr)}});
    }
    j["reliability"] = std::move(bins);
  }
  if (r.classwise) j["classwise"] = classwise_json(*r.classwise, r.options);
  if (r.order_inversions) j["order_inversions"] = json_number(*r.order_inversions);
  j["conventions"] = conventions_json(r.options);
  if (!r.compared.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& [preset, m] : r.compared)
      rows.push_back({{"preset", preset},
                      {"ece", json_number(m.ece)},
                      {"adaece", json_number(m.adaece)},
                      {"sce", json_number(m.sce)},
                      {"brier", json_number(m.brier)}});
    j["compare_conventions"] = std::move(rows);
  }
  return j;
}

namespace {
std::string value_text(double v, bool percent) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return percent ? fmt::format("{:.2f}", 100.0 * v) : fmt::format("{:.4f}", v);
}

std::string classwise_table(const classwise_breakdown& c, const metric_options& options) {
  std::string out = fmt::format(
      "\nclasswise ECE per class, split into under- and over-confident bins (ECE_j = under + over, "
      "terms |B_ij|/N)\n{:>8}{:>10}{:>12}{:>10}{:>10}{:>10}\n",
      "class", "count", "accuracy %", "ECE %", "under %", "over %");
  for (std::size_t j = 0; j < c.classes.size(); ++j) {
    const auto& x = c.classes[j];
    out += fmt::format("{:>8}{:>10}{:>12}{:>10}{:>10}{:>10}\n", j, x.count, value_text(x.accuracy, true),
                       value_text(x.ece, true), value_text(x.under, true), value_text(x.over, true));
  }
  out += fmt::format("\nper bin of p_nj, over the classes ({}; the bins sum to SCE)\n{:<17}{:>10}{:>10}\n",
                     classwise_reduction_name(options.reduction), "bin", "under %", "over %");
  for (std::size_t i = 0; i < c.bin_under.size(); ++i) {
    const auto edge = bin_slot_bounds(options.classwise_binning(), static_cast<std::int32_t>(i), options.num_bins);
    out += fmt::format("{:<17}{:>10}{:>10}\n", fmt::format("[{:.4f}, {:.4f}]", edge.lo, edge.hi),
                       value_text(c.bin_under[i], true), value_text(c.bin_over[i], true));
  }
  return out;
}
}  // namespace

std::string eval_table(const eval_report& r) {
  std::string out =
      fmt::format("{}  split {}  N {}  K {}  ({})\n", r.file, r.split, r.metrics.n, r.metrics.k, r.scores);
  const auto& o = r.options;
  out += fmt::format("bins {}; conventions {}: binning {}, classwise binning {}, adaptive {}, classwise {}, brier {}",
                     o.num_bins, o.preset, binning_name(o.bin_rule), binning_name(o.classwise_binning()),
                     adaptive_name(o.adaptive), classwise_reduction_name(o.reduction), brier_name(o.brier));
  out += o.nll_clip > 0 ? fmt::format(", nll clip {:g}", o.nll_clip) : std::string();
  out += "\nmetrics marked % are x100\n\n";
  const bool ci = r.bootstrap.has_value();
  if (ci) {
    out += fmt::format("{:<18}{:>10}   {:.0f}% bootstrap interval ({} resamples, seed {})\n", "metric", "value",
                       100.0 * r.bootstrap->options.level, r.bootstrap->options.resamples, r.bootstrap->options.seed);
  } else {
    out += fmt::format("{:<18}{:>10}\n", "metric", "value");
  }
  const auto fields = metric_fields();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto& f = fields[i];
    if (!o.selected.has(i)) continue;
    const std::string name = f.percent ? fmt::format("{} %", f.name) : std::string(f.name);
    out += fmt::format("{:<18}{:>10}", name, value_text(r.metrics.*(f.member), f.percent));
    if (ci) {
      const auto& iv = r.bootstrap->intervals[i];
      out += fmt::format("   [{}, {}]", value_text(iv.low, f.percent), value_text(iv.high, f.percent));
    }
    out += "\n";
  }
  if (!r.compared.empty()) {
    out += fmt::format("\nthe same scores under every preset (M = {})\n{:<22}{:>9}{:>10}{:>9}{:>10}\n", o.num_bins,
                       "conventions", "ECE %", "adaECE %", "SCE %", "Brier");
    for (const auto& [preset, m] : r.compared)
      out += fmt::format("{:<22}{:>9}{:>10}{:>9}{:>10}\n", preset, value_text(m.ece, true), value_text(m.adaece, true),
                         value_text(m.sce, true), value_text(m.brier, false));
  }
  if (r.order_inversions)
    out += fmt::format("\norder inversions against {}: {} %\n", r.inversions_against,
                       value_text(*r.order_inversions, true));
  if (r.reliability) {
    out +=
        fmt::format("\nreliability diagram\n{:<17}{:>8}{:>12}{:>14}\n", "bin", "count", "accuracy %", "confidence %");
    for (std::int32_t i = 0; i < r.options.slots(); ++i) {
      const auto& b = (*r.reliability)[static_cast<std::size_t>(i)];
      const double cnt = static_cast<double>(b.count);
      const auto edge = bin_slot_bounds(r.options.bin_rule, i, r.options.num_bins);
      out += fmt::format("{:<17}{:>8}{:>12}{:>14}\n", fmt::format("[{:.4f}, {:.4f}]", edge.lo, edge.hi), b.count,
                         b.count ? value_text(b.sum_correct / cnt, true) : "-",
                         b.count ? value_text(b.sum_confidence / cnt, true) : "-");
    }
  }
  if (r.classwise) out += classwise_table(*r.classwise, o);
  return out;
}

nlohmann::json metrics_json(const metric_set& m, const metric_options& options) {
  eval_report r;
  r.metrics = m;
  r.options = options;
  return eval_json(r);
}

}  // namespace calibench
