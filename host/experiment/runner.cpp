// Running a study's cells (host/experiment/runner.hpp).
#include "host/experiment/runner.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/progress.hpp"
#include "common/rng.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/io/atomic_file.hpp"
#include "host/io/dump.hpp"
#include "host/metrics/bootstrap.hpp"
#include "host/metrics/report.hpp"
#include "host/segmentation/segmentation.hpp"

namespace calibench {
namespace {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// val and test of a dump; for seed > 0 they are pooled (val rows, then test rows) and split
/// again at random with the same sizes (a Fisher-Yates shuffle from stream 0x5EED of the seed).
std::pair<split_data, split_data> load_splits(const std::string& path, std::uint64_t seed) {
  split_data val = read_split(path, "val");
  split_data test = read_split(path, "test");
  if (seed == 0) return {std::move(val), std::move(test)};
  if (val.is_probs != test.is_probs)
    throw input_error(fmt::format("{}: /val and /test store different kinds of scores; cannot re-split", path));
  const std::int64_t k = val.num_classes, nv = val.num_samples, nt = test.num_samples, n = nv + nt;
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  auto rng = make_stream(seed, 0x5EED);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(perm[i], perm[static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  auto row = [&](std::int64_t r) -> std::pair<const double*, std::int32_t> {
    return r < nv ? std::pair{val.values.data() + r * k, val.labels[r]}
                  : std::pair{test.values.data() + (r - nv) * k, test.labels[r - nv]};
  };
  auto take = [&](const split_data& like, const std::string& name, std::int64_t begin, std::int64_t count) {
    split_data s = like;
    s.name = name;
    s.num_samples = count;
    s.values.resize(static_cast<std::size_t>(count * k));
    s.labels.resize(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
      const auto [values, label] = row(perm[begin + i]);
      std::copy_n(values, k, s.values.data() + i * k);
      s.labels[i] = label;
    }
    return s;
  };
  split_data new_val = take(val, "val", 0, nv);
  split_data new_test = take(test, "test", nv, nt);
  return {std::move(new_val), std::move(new_test)};
}

/// A segmentation cell: one method on every group of one dump (docs/segmentation.md).
nlohmann::json run_seg_cell(const experiment_spec& spec, const cell& c) {
  seg_eval_options o;
  o.metrics = spec.metrics();
  o.roi = spec.roi;
  o.roi_dilation = spec.roi_dilation;
  o.background = spec.background;
  o.methods = {c.method->method};
  o.backend = spec.backend;
  const seg_report r = evaluate_segmentation(c.dataset->path, o);
  nlohmann::json groups = nlohmann::json::object();
  for (const auto& x : r.results) {
    const auto& m = x.metrics;
    nlohmann::json dice = nlohmann::json::array();
    for (double d : m.dice) dice.push_back(json_number(d));
    groups[x.group] = {{"roi_pixels", m.roi_pixels},
                       {"pixels", m.pixels},
                       {"accuracy", json_number(m.accuracy)},
                       {"ece", json_number(m.ece)},
                       {"mce", json_number(m.mce)},
                       {"sce", json_number(m.sce)},
                       {"nll", json_number(m.nll)},
                       {"brier", json_number(m.brier)},
                       {"dice", dice},
                       {"mean_dice", json_number(m.mean_dice)}};
  }
  nlohmann::json out{{"groups", groups}, {"seconds", r.seconds}};
  out["params"] = r.temperature > 0 ? nlohmann::json{{"temperature", r.temperature}, {"fit_pixels", r.fit_pixels}}
                                    : nlohmann::json::object();
  out["backend"] = r.backend.empty() ? "host" : r.backend;
  return out;
}

/// The calibrated scores of both splits: the cell's method fitted on val (the uncalibrated
/// scores for "uncalibrated"); writes params, the objective curve and the fit's site to `out`.
std::pair<scored_split, scored_split> calibrated_scores(const experiment_spec& spec, const cell& c,
                                                        const split_data& val, const split_data& test,
                                                        sweep_backend& backend, nlohmann::json& out) {
  if (find_method(c.method->method) == nullptr) {  // "uncalibrated"
    out["params"] = nlohmann::json::object();
    out["backend"] = "host";
    return {uncalibrated(val), uncalibrated(test)};
  }
  const fit_request request = cell_request(spec, *c.method);
  const calibrator cal = fit_calibrator(val, request, &backend);
  out["params"] = cal.params();
  out["backend"] = fit_site_name(request, &backend);
  if (!cal.curve().empty()) {
    nlohmann::json values = nlohmann::json::array();
    for (double v : cal.curve().values) values.push_back(json_number(v));
    out["objective_curve"] = {
        {"metric", cal.curve().metric}, {"candidates", cal.curve().candidates}, {"values", values}};
  }
  return {cal.apply(val), cal.apply(test)};
}

/// What the plots need: reliability bins of both splits, the test retention curve, the
/// per-class validation accuracy of the uncalibrated model, the order inversions.
void add_plot_data(const scored_split& v_raw, const scored_split& t_raw, const scored_split& v_scores,
                   const scored_split& t_scores, const metric_options& mo, nlohmann::json& out) {
  auto reliability = [&](const scored_split& s) {
    nlohmann::json bins = nlohmann::json::array();
    for (const auto& b : reliability_bins(s, mo)) {
      const double cnt = static_cast<double>(b.count);
      bins.push_back({b.count, b.count ? json_number(b.sum_correct / cnt) : nlohmann::json(nullptr),
                      b.count ? json_number(b.sum_confidence / cnt) : nlohmann::json(nullptr)});
    }
    return bins;
  };
  out["reliability"] = {{"val", reliability(v_scores)}, {"test", reliability(t_scores)}};
  out["test_retention"] = retention_curve(t_scores, 101);
  nlohmann::json class_acc = nlohmann::json::array();
  for (double a : class_accuracy(v_raw)) class_acc.push_back(json_number(a));
  out["val_class_accuracy"] = class_acc;
  out["order_inversions"] = {{"val", json_number(order_inversions(v_raw.confidence, v_scores.confidence))},
                             {"test", json_number(order_inversions(t_raw.confidence, t_scores.confidence))}};
}

/// Only the tables' quantities (test ECE and accuracy) are resampled: O(N) per resample
/// instead of the whole metric suite. Same generator and resamples as `eval --bootstrap`.
void add_bootstrap(const experiment_spec& spec, const scored_split& t_scores, const metric_options& mo,
                   nlohmann::json& out) {
  std::vector<double> eces, accs;
  std::vector<bin_stats> bins(static_cast<std::size_t>(mo.slots()));
  for (std::int64_t b = 0; b < spec.bootstrap; ++b) {
    std::fill(bins.begin(), bins.end(), bin_stats{});
    double correct = 0;
    for (std::int64_t r : bootstrap_indices(t_scores.num_samples, spec.bootstrap_seed, b)) {
      const double conf = t_scores.confidence[r];
      const double hit = t_scores.prediction[r] == t_scores.labels[r] ? 1.0 : 0.0;
      correct += hit;
      const std::int32_t slot = bin_index(mo.bin_rule, conf, mo.num_bins);
      if (slot < 0) continue;  // guo-strict: in no bin, still in N
      auto& bin = bins[static_cast<std::size_t>(slot)];
      bin.count += 1;
      bin.sum_confidence += conf;
      bin.sum_correct += hit;
    }
    double ece = 0;
    for (const auto& bin : bins) ece += std::fabs(bin.sum_correct - bin.sum_confidence);
    eces.push_back(ece / static_cast<double>(t_scores.num_samples));
    accs.push_back(correct / static_cast<double>(t_scores.num_samples));
  }
  out["test_bootstrap_ece"] = eces;
  auto interval = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return nlohmann::json{linear_quantile(v, 0.025), linear_quantile(v, 0.975)};
  };
  out["test_ci95"] = {{"ece", interval(eces)}, {"accuracy", interval(accs)}};
}

nlohmann::json run_cell(const experiment_spec& spec, const cell& c, sweep_backend& backend) {
  if (spec.task == "segmentation") return run_seg_cell(spec, c);
  const auto started = std::chrono::steady_clock::now();
  auto [val, test] = load_splits(c.dataset->path, c.seed);
  const metric_options mo = spec.metrics();
  nlohmann::json out;
  const scored_split t_raw = uncalibrated(test);
  const scored_split v_raw = uncalibrated(val);
  if (val.binary || test.binary) out["binary"] = true;  // one stored score per row, read as K = 2
  const auto [v_scores, t_scores] = calibrated_scores(spec, c, val, test, backend, out);
  out["val"] = metrics_json(compute_metrics(v_scores, mo), mo);
  out["test"] = metrics_json(compute_metrics(t_scores, mo), mo);
  add_plot_data(v_raw, t_raw, v_scores, t_scores, mo, out);
  if (spec.bootstrap > 0) add_bootstrap(spec, t_scores, mo, out);
  out["seconds"] = seconds_since(started);
  return out;
}

/// One line per finished cell (--verbose).
void report_cell(const cell& c, const nlohmann::json& result, const sweep_summary& s, std::int64_t done) {
  std::cerr << fmt::format("[{}/{}] {} | {} | seed {}: {}\n", done, s.cells, c.dataset->name, c.method->label, c.seed,
                           result.contains("error") ? "FAILED: " + result["error"].get<std::string>()
                           : !result.contains("test")
                               ? fmt::format("{:.2f} s", result["seconds"].get<double>())
                               : fmt::format("test ECE {:.2f} %, {:.2f} s", 100.0 * result["test"]["ece"].get<double>(),
                                             result["seconds"].get<double>()));
}

}  // namespace

std::string cell_path(const std::string& out_dir, const cell& c) {
  return (fs::path(out_dir) / "cells" / (c.id + ".json")).string();
}

nlohmann::json read_cell(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return nullptr;  // cannot happen with atomic writes; treated as not run
  }
}

sweep_summary run_cells(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir,
                        const sweep_run_options& options) {
  fs::create_directories(fs::path(out_dir) / "cells");
  auto backend = make_backend(spec.backend);
  sweep_summary s;
  const auto started = std::chrono::steady_clock::now();
  std::vector<const cell*> mine;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (static_cast<std::int32_t>(i % static_cast<std::size_t>(options.ranks)) == options.rank)
      mine.push_back(&cells[i]);
  }
  s.cells = static_cast<std::int64_t>(mine.size());
  std::int64_t done = 0;
  std::optional<progress> shown;  // the cells' progress (inner fits nest under it); --verbose prints lines instead
  if (options.progress && !options.verbose)
    shown.emplace(options.ranks > 1 ? fmt::format("sweep (rank {} of {})", options.rank, options.ranks) : "sweep",
                  s.cells, "cells");
  for (const cell* c : mine) {
    const std::string path = cell_path(out_dir, *c);
    const nlohmann::json previous = read_cell(path);
    if (!previous.is_null() && !previous.contains("error")) {
      ++s.skipped;
      ++done;
      if (shown) shown->skip();
      continue;
    }
    nlohmann::json result{{"id", c->id},
                          {"dataset", c->dataset->name},
                          {"model", c->dataset->model},
                          {"file", c->dataset->path},
                          {"method", c->method->method},
                          {"label", c->method->label},
                          {"options", c->method->options},
                          {"seed", c->seed}};
    const auto cell_started = std::chrono::steady_clock::now();
    try {
      result.update(run_cell(spec, *c, *backend));
    } catch (const std::exception& e) {
      result["error"] = e.what();
      result["seconds"] = seconds_since(cell_started);
      ++s.failed;
    }
    write_file_atomic(path, result.dump(1));
    ++s.ran;
    ++done;
    if (options.verbose) report_cell(*c, result, s, done);
    if (shown) {
      if (s.failed > 0) shown->detail(fmt::format("{} failed", s.failed));
      shown->step();
    }
  }
  s.seconds = seconds_since(started);
  return s;
}

}  // namespace calibench
