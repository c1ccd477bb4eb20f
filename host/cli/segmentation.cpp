// `calibench seg-eval`: segmentation calibration over ROI pixels, ECE, SCE and Dice per domain
// group, for the uncalibrated scores, ts fitted on validation ROI pixels, stored temperature
// maps and the mean of stored augmented logits (docs/segmentation.md).
#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "host/cli/commands.hpp"
#include "host/cli/options.hpp"
#include "host/metrics/report.hpp"
#include "host/segmentation/segmentation.hpp"
#include "host/sweep/backend.hpp"

namespace calibench::cli {
namespace {

struct seg_eval_args {
  std::string file;
  std::int32_t bins = 15;
  convention_names conventions;
  std::string roi = "dilate";
  std::int32_t roi_dilation = 10;
  std::int32_t background = 0;
  std::string methods = "uncalibrated";  ///< comma-separated
  std::string groups;                    ///< comma-separated; empty: all
  std::string backend = "auto";
  bool reliability = false;
  std::string format = "table";
};

nlohmann::json reliability_json(const seg_metrics& m, const metric_options& mo) {
  nlohmann::json bins = nlohmann::json::array();
  for (std::size_t i = 0; i < m.reliability.size(); ++i) {
    const auto& b = m.reliability[i];
    const auto edge = bin_slot_bounds(mo.bin_rule, static_cast<std::int32_t>(i), mo.num_bins);
    const double cnt = static_cast<double>(b.count);
    bins.push_back({{"lo", edge.lo},
                    {"hi", edge.hi},
                    {"count", b.count},
                    {"accuracy", b.count ? json_number(b.sum_correct / cnt) : nlohmann::json(nullptr)},
                    {"confidence", b.count ? json_number(b.sum_confidence / cnt) : nlohmann::json(nullptr)}});
  }
  return bins;
}

nlohmann::json seg_json(const seg_eval_args& a, const seg_eval_options& o, const seg_report& r, double rate) {
  nlohmann::json j;
  j["file"] = a.file;
  j["options"] = {{"bins", a.bins},
                  {"conventions", conventions_json(o.metrics)},
                  {"roi", o.roi},
                  {"roi_dilation", o.roi_dilation},
                  {"background", o.background},
                  {"methods", o.methods}};
  if (r.temperature > 0)
    j["ts"] = {{"temperature", r.temperature},
               {"fit_group", o.fit_group},
               {"fit_pixels", r.fit_pixels},
               {"backend", r.backend}};
  j["results"] = nlohmann::json::array();
  for (const auto& x : r.results) {
    const auto& m = x.metrics;
    nlohmann::json dice = nlohmann::json::array();
    for (double d : m.dice) dice.push_back(json_number(d));
    nlohmann::json row{{"method", x.method},
                       {"group", x.group},
                       {"roi_pixels", m.roi_pixels},
                       {"pixels", m.pixels},
                       {"accuracy", json_number(m.accuracy)},
                       {"ece", json_number(m.ece)},
                       {"mce", json_number(m.mce)},
                       {"sce", json_number(m.sce)},
                       {"nll", json_number(m.nll)},
                       {"brier", json_number(m.brier)},
                       {"dice", dice},
                       {"mean_dice", json_number(m.mean_dice)}};
    if (a.reliability) row["reliability"] = reliability_json(m, o.metrics);
    j["results"].push_back(std::move(row));
  }
  j["seconds"] = r.seconds;
  j["pixels_per_second"] = rate;
  return j;
}

std::string seg_table(const seg_eval_args& a, const seg_eval_options& o, const seg_report& r, double rate) {
  std::vector<std::string> groups, methods;
  for (const auto& x : r.results) {
    if (std::find(groups.begin(), groups.end(), x.group) == groups.end()) groups.push_back(x.group);
    if (std::find(methods.begin(), methods.end(), x.method) == methods.end()) methods.push_back(x.method);
  }
  const auto find = [&](const std::string& method, const std::string& group) -> const seg_metrics& {
    for (const auto& x : r.results) {
      if (x.method == method && x.group == group) return x.metrics;
    }
    throw error("missing result");
  };
  std::string out =
      fmt::format("{}  (ROI: {}{}; {} bins {}; metrics x100)\n", a.file, o.roi,
                  o.roi == "dilate" ? fmt::format(", r = {} px around labels != {}", o.roi_dilation, o.background) : "",
                  a.bins, binning_name(o.metrics.bin_rule));
  if (r.temperature > 0)
    out += fmt::format("ts: T = {:.4f} fitted by NLL on {} ROI pixels of /{} ({})\n", r.temperature, r.fit_pixels,
                       o.fit_group, r.backend);
  for (const auto& [title, member] : std::vector<std::pair<std::string, double seg_metrics::*>>{
           {"ECE %", &seg_metrics::ece}, {"SCE %", &seg_metrics::sce}, {"mean Dice %", &seg_metrics::mean_dice}}) {
    out += fmt::format("\n{:<18}", title);
    for (const auto& g : groups) out += fmt::format("{:>17}", g);
    out += "\n";
    for (const auto& method : methods) {
      out += fmt::format("{:<18}", method);
      for (const auto& g : groups) {
        const double v = find(method, g).*member;
        out += std::isfinite(v) ? fmt::format("{:>17.2f}", 100.0 * v) : fmt::format("{:>17}", "n/a");
      }
      out += "\n";
    }
  }
  out += fmt::format("\nROI pixels:");
  for (const auto& g : groups) out += fmt::format(" {} {}", g, find(methods.front(), g).roi_pixels);
  out += fmt::format("\n{} pixel-evaluations in {:.2f} s ({:.3g} pixels/s)\n", r.pixels_evaluated, r.seconds, rate);
  return out;
}

int run_seg_eval(const seg_eval_args& a) {
  seg_eval_options o;
  o.metrics = resolve_conventions(a.conventions, a.bins);
  o.roi = a.roi;
  o.roi_dilation = a.roi_dilation;
  o.background = a.background;
  o.methods = split_list(a.methods);
  if (o.methods.empty()) throw input_error("--methods: no method named");
  o.groups = split_list(a.groups);
  o.backend = backend_choice_name(backend_for_rule(parse_backend_choice(a.backend), o.metrics.bin_rule));
  o.reliability = a.reliability;
  const seg_report r = evaluate_segmentation(a.file, o);
  const double rate = r.seconds > 0 ? static_cast<double>(r.pixels_evaluated) / r.seconds : 0.0;
  std::cout << (a.format == "json" ? seg_json(a, o, r, rate).dump(2) + "\n" : seg_table(a, o, r, rate));
  return 0;
}

}  // namespace

command_runner setup_seg_eval(CLI::App& cmd) {
  auto a = std::make_shared<seg_eval_args>();
  cmd.add_option("file", a->file, "HDF5 segmentation dump")->required();
  cmd.add_option("--bins", a->bins, "Number of bins M")->check(CLI::Range(1, 1000000));
  add_convention_options(cmd, a->conventions, true);
  cmd.add_option("--roi", a->roi, "dilate (ground-truth foreground dilated) | stored (/<group>/roi) | all")
      ->check(CLI::IsMember({"dilate", "stored", "all"}));
  cmd.add_option("--roi-dilation", a->roi_dilation, "Half-width r of the square dilation kernel (2r+1 pixels)")
      ->check(CLI::Range(0, 1 << 20));
  cmd.add_option("--background", a->background, "The background class (not foreground)")->check(CLI::Range(0, 1 << 30));
  cmd.add_option("--methods", a->methods,
                 "Comma-separated: uncalibrated, ts (fitted on val ROI pixels), temperature-map, augmented-mean");
  cmd.add_option("--groups", a->groups, "Comma-separated groups to evaluate (default: all)");
  cmd.add_option("--backend", a->backend,
                 "Sweep backend of fits that run on one: cpu | cuda | auto (ts by NLL runs on the host)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd.add_flag("--reliability", a->reliability, "Also print the reliability bins of every (method, group)");
  cmd.add_option("--format", a->format, "table | json")->check(CLI::IsMember({"table", "json"}));
  add_progress_options(cmd);
  return [a] { return run_seg_eval(*a); };
}

}  // namespace calibench::cli
