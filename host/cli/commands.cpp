// Implementations of the CLI commands (host/cli/commands.hpp).
#include "host/cli/commands.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "host/metrics/bootstrap.hpp"
#include "host/calibrators/calibrator.hpp"
#include "host/sweep/device.hpp"
#include "host/io/dump.hpp"
#include "host/experiment/experiment.hpp"
#include "common/error.hpp"
#include "host/io/grid.hpp"
#include "host/metrics/metrics.hpp"
#include "host/metrics/report.hpp"
#include "host/segmentation/segmentation.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/sweep_input.hpp"

namespace calibench::cli {
namespace {



/// `--backend auto` picks the CPU backend for bin rules only it sweeps (torchmetrics,
/// digitize-linspace), so that auto never fails where cpu would work.
std::string backend_for(const std::string& requested, const metric_options& mo) {
  const bool cuda_rule = mo.bin_rule != binning::torchmetrics && mo.bin_rule != binning::digitize_linspace;
  return requested == "auto" && !cuda_rule ? "cpu" : requested;
}

std::string scores_text(const split_data& s) {
  return fmt::format("{} {}", s.is_probs ? "probs" : "logits", s.value_type);
}

}  // namespace

int run_eval(const eval_args& a) {
  split_data split = read_split(a.file, a.split);
  eval_report r;
  r.file = a.file;
  r.split = a.split;
  r.scores = scores_text(split);
  r.options = resolve_conventions(a.conventions, a.bins);

  std::vector<double> other_confidence;
  if (!a.inversions_against.empty()) {
    split_data other = read_split(a.inversions_against, a.split);
    if (other.num_samples != split.num_samples)
      throw input_error(fmt::format("{}: {} has N = {}, but {} has N = {}; order inversions need the same samples",
                                    a.inversions_against, other.values_path(), other.num_samples, a.file,
                                    split.num_samples));
    other_confidence = score_split(std::move(other)).confidence;
  }

  const scored_split scored = score_split(std::move(split));
  r.metrics = compute_metrics(scored, r.options);
  if (a.compare_conventions) {
    for (const auto preset : preset_names()) {
      convention_names names;
      names.preset = std::string(preset);
      const metric_options o = resolve_conventions(names, a.bins);
      // The run's own conventions are not computed twice.
      const bool same = conventions_json(o) == conventions_json(r.options);
      r.compared.emplace_back(names.preset, same ? r.metrics : compute_metrics(scored, o));
    }
  }
  if (a.bootstrap > 0) r.bootstrap = bootstrap_metrics(scored, r.options, {a.bootstrap, a.seed, a.level});
  if (a.reliability) r.reliability = reliability_bins(scored, r.options);
  if (!a.inversions_against.empty()) {
    r.order_inversions = order_inversions(scored.confidence, other_confidence);
    r.inversions_against = a.inversions_against;
  }

  if (a.format == "json") {
    std::cout << eval_json(r).dump(2) << "\n";
  } else {
    std::cout << eval_table(r);
  }
  return 0;
}

namespace {
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t next = std::min(text.find(',', pos), text.size());
    if (next > pos) out.push_back(text.substr(pos, next - pos));
    pos = next + 1;
  }
  return out;
}
}  // namespace

int run_seg_eval(const seg_eval_args& a) {
  seg_eval_options o;
  o.metrics = resolve_conventions(a.conventions, a.bins);
  o.roi = a.roi;
  o.roi_dilation = a.roi_dilation;
  o.background = a.background;
  o.methods = split_list(a.methods);
  if (o.methods.empty()) throw input_error("--methods: no method named");
  o.groups = split_list(a.groups);
  o.backend = backend_for(a.backend, o.metrics);
  o.reliability = a.reliability;
  const seg_report r = evaluate_segmentation(a.file, o);

  std::vector<std::string> groups, methods;
  for (const auto& x : r.results) {
    if (std::find(groups.begin(), groups.end(), x.group) == groups.end()) groups.push_back(x.group);
    if (std::find(methods.begin(), methods.end(), x.method) == methods.end()) methods.push_back(x.method);
  }
  const double rate = r.seconds > 0 ? static_cast<double>(r.pixels_evaluated) / r.seconds : 0.0;
  if (a.format == "json") {
    nlohmann::json j;
    j["file"] = a.file;
    j["options"] = {{"bins", a.bins},
                    {"conventions", conventions_json(o.metrics)},
                    {"roi", o.roi},
                    {"roi_dilation", o.roi_dilation},
                    {"background", o.background},
                    {"methods", o.methods}};
    if (r.temperature > 0)
      j["ts"] = {{"temperature", r.temperature}, {"fit_group", o.fit_group}, {"fit_pixels", r.fit_pixels},
                 {"backend", r.backend}};
    j["results"] = nlohmann::json::array();
    for (const auto& x : r.results) {
      const auto& m = x.metrics;
      nlohmann::json dice = nlohmann::json::array();
      for (double d : m.dice) dice.push_back(json_number(d));
      nlohmann::json row{{"method", x.method},       {"group", x.group},
                         {"roi_pixels", m.roi_pixels}, {"pixels", m.pixels},
                         {"accuracy", json_number(m.accuracy)}, {"ece", json_number(m.ece)},
                         {"mce", json_number(m.mce)},  {"sce", json_number(m.sce)},
                         {"sce_under", json_number(m.sce_under)}, {"sce_over", json_number(m.sce_over)},
                         {"nll", json_number(m.nll)},  {"brier", json_number(m.brier)},
                         {"dice", dice},               {"mean_dice", json_number(m.mean_dice)}};
      if (a.reliability) {
        nlohmann::json bins = nlohmann::json::array();
        for (std::size_t i = 0; i < m.reliability.size(); ++i) {
          const auto& b = m.reliability[i];
          const auto edge = bin_slot_bounds(o.metrics.bin_rule, static_cast<std::int32_t>(i), o.metrics.num_bins);
          const double cnt = static_cast<double>(b.count);
          bins.push_back({{"lo", edge.lo}, {"hi", edge.hi}, {"count", b.count},
                          {"accuracy", b.count ? json_number(b.sum_correct / cnt) : nlohmann::json(nullptr)},
                          {"confidence", b.count ? json_number(b.sum_confidence / cnt) : nlohmann::json(nullptr)}});
        }
        row["reliability"] = std::move(bins);
      }
      j["results"].push_back(std::move(row));
    }
    j["seconds"] = r.seconds;
    j["pixels_per_second"] = rate;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  const auto find = [&](const std::string& method, const std::string& group) -> const seg_metrics& {
    for (const auto& x : r.results) {
      if (x.method == method && x.group == group) return x.metrics;
    }
    throw error("missing result");
  };
  std::string out = fmt::format("{}  (ROI: {}{}; {} bins {}; metrics x100)\n", a.file, o.roi,
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
  std::cout << out;
  return 0;
}

int run_info(const std::string& file, const std::string& format) {
  const dump_layout layout = inspect_dump(file);
  const device_report dev = discover_devices();
  nlohmann::json j;
  j["file"] = file;
  j["attributes"] = layout.attributes;
  j["splits"] = nlohmann::json::array();
  for (const auto& shape : layout.splits) {
    split_data split = read_split(file, shape.name);
    const std::string scores = scores_text(split);
    const scored_split s = score_split(std::move(split));
    const metric_set m = compute_metrics(s, {});
    double mean_conf = 0;
    for (double c : s.confidence) mean_conf += c;
    mean_conf /= static_cast<double>(s.num_samples);
    j["splits"].push_back({{"name", shape.name},
                           {"n", shape.num_samples},
                           {"k", shape.num_classes},
                           {"scores", scores},
                           {"labels", shape.label_type},
                           {"other_datasets", shape.extra_datasets},
                           {"accuracy", json_number(m.accuracy)},
                           {"mean_confidence", json_number(mean_conf)},
                           {"ece", json_number(m.ece)}});
  }
  j["cuda"] = {{"built", dev.cuda_built}, {"devices", dev.device_count}, {"device", dev.name}, {"reason", dev.reason}};
  if (format == "json") {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::string out = fmt::format("{}\n", file);
  for (const auto& [name, value] : layout.attributes) out += fmt::format("  {} = {}\n", name, value);
  out += fmt::format("\n{:<8}{:>9}{:>7}  {:<16}{:<8}{:>11}{:>17}{:>10}\n", "split", "N", "K", "scores", "labels",
                     "accuracy %", "mean confidence %", "ECE15 %");
  for (const auto& s : j["splits"]) {
    out += fmt::format("{:<8}{:>9}{:>7}  {:<16}{:<8}{:>12.2f}{:>19.2f}{:>10.2f}\n", s["name"].get<std::string>(),
                       s["n"].get<std::int64_t>(), s["k"].get<std::int64_t>(), s["scores"].get<std::string>(),
                       s["labels"].get<std::string>(), 100.0 * s["accuracy"].get<double>(),
                       100.0 * s["mean_confidence"].get<double>(), 100.0 * s["ece"].get<double>());
    if (!s["other_datasets"].empty())
      out += fmt::format("        also: {}\n", fmt::join(s["other_datasets"].get<std::vector<std::string>>(), ", "));
  }
  out += fmt::format("\nCUDA backend: {}", dev.cuda_built ? "built" : "not built");
  out += dev.device_count > 0 ? fmt::format(", {} device(s), first: {}\n", dev.device_count, dev.name)
                              : fmt::format(", no device ({})\n", dev.reason);
  std::cout << out;
  return 0;
}

int run_version() {
  const device_report dev = discover_devices();
#if defined(CALIBENCH_HAVE_MPI)
  constexpr const char* mpi = "built";
#else
  constexpr const char* mpi = "not built";
#endif
  std::cout << fmt::format("calibench {}\nCUDA backend: {}\nMPI sharding: {}\n", CALIBENCH_VERSION,
                           dev.cuda_built ? "built" : "not built", mpi);
  if (dev.device_count > 0) {
    std::cout << fmt::format("devices: {} (first: {})\n", dev.device_count, dev.name);
  } else {
    std::cout << fmt::format("devices: none ({})\n", dev.reason);
  }
  return 0;
}

int run_sweep_candidates(const sweep_candidates_args& a) {
  const split_data split = read_split(a.file, a.split);
  const sweep_input input = to_sweep_input(split);
  const metric_options mo = resolve_conventions(a.conventions, a.bins);
  const sweep_options options{a.bins, mo.bin_rule, !a.no_adaece};
  auto backend = make_backend(backend_for(a.backend, mo));
  const auto started = std::chrono::steady_clock::now();
  auto data = backend->prepare(input.view());
  const std::int64_t k = input.num_classes;
  std::vector<double> candidates;
  sweep_result r;
  if (a.family == "inverse-temperature") {
    const auto g = parse_arithmetic_grid(a.grid, "--grid");
    const inverse_temperature_grid grid{g.start, g.step, g.count};
    for (std::int64_t i = 0; i < grid.count; ++i) candidates.push_back(grid.at(i));
    r = backend->inverse_temperature(*data, grid, options);
  } else {
    candidates = parse_grid(a.grid, "--grid");
    if (a.family == "temperature") {
      r = backend->temperature(*data, candidates, options);
    } else if (a.family == "weight") {
      r = backend->weight(*data, candidates, options);
    } else if (a.family == "class-temperature") {
      if (a.cls < 0 || a.cls >= k) throw input_error(fmt::format("--class {} outside [0, {})", a.cls, k));
      auto session = backend->class_temperature(*data, std::vector<double>(static_cast<std::size_t>(k), a.base_temperature),
                                                options);
      r = session->sweep(a.cls, candidates);
    } else if (a.family == "bin-temperature") {
      if (a.target_bin < 0 || a.target_bin >= a.calib_bins)
        throw input_error(fmt::format("--target-bin {} outside [0, {})", a.target_bin, a.calib_bins));
      std::vector<double> confidence(static_cast<std::size_t>(input.num_samples));
      {
        split_data copy = split;
        confidence = score_split(std::move(copy)).confidence;
      }
      const auto sample_bin = equal_mass_assignment(confidence, a.calib_bins);
      const std::vector<double> bin_temps(static_cast<std::size_t>(a.calib_bins), a.base_temperature);
      r = backend->bin_temperature(*data, {sample_bin, bin_temps, a.target_bin}, candidates, options);
    } else {
      throw input_error(fmt::format("unknown family '{}'", a.family));
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  nlohmann::json j;
  j["file"] = a.file;
  j["split"] = a.split;
  j["family"] = a.family;
  j["backend"] = backend->name();
  j["seconds"] = seconds;
  j["n"] = input.num_samples;
  j["k"] = k;
  j["bins"] = a.bins;
  j["binning"] = binning_name(mo.bin_rule);
  j["candidates"] = candidates;
  auto column = [](const std::vector<double>& v) {
    nlohmann::json out = nlohmann::json::array();
    for (double x : v) out.push_back(json_number(x));
    return out;
  };
  j["ece"] = column(r.ece);
  j["mce"] = column(r.mce);
  j["adaece"] = column(r.adaece);
  j["nll"] = column(r.nll);
  j["brier"] = column(r.brier);
  j["accuracy"] = column(r.accuracy);
  if (a.per_bin) {
    j["bin_count"] = r.bin_count;
    j["bin_sum_confidence"] = r.bin_sum_confidence;
    j["bin_sum_correct"] = r.bin_sum_correct;
  }
  const std::int64_t best = sweep_result::argmin(r.ece);
  j["best_ece"] = {{"index", best}, {"candidate", candidates[static_cast<std::size_t>(best)]}, {"ece", r.ece[best]}};
  if (a.format == "json") {
    std::cout << j.dump(1) << "\n";
    return 0;
  }
  std::cout << "candidate,ece,mce,adaece,nll,brier,accuracy\n";
  for (std::size_t g = 0; g < candidates.size(); ++g) {
    std::cout << fmt::format("{},{},{},{},{},{},{}\n", candidates[g], r.ece[g], r.mce[g], r.adaece[g], r.nll[g],
                             r.brier[g], r.accuracy[g]);
  }
  return 0;
}

namespace {

/// Metrics of a calibrated split and the order inversions against its uncalibrated scores.
struct split_outcome {
  scored_split scores;
  metric_set metrics;
  double inversions = 0;
};

split_outcome evaluate_calibrated(const calibrator& cal, const split_data& split, const metric_options& mo) {
  split_outcome out;
  out.scores = cal.apply(split);
  out.metrics = compute_metrics(out.scores, mo);
  out.inversions = order_inversions(uncalibrated(split).confidence, out.scores.confidence);
  return out;
}

/// The metrics of one split as `eval --format json` prints them, conventions included.
nlohmann::json metrics_json(const metric_set& m, const metric_options& options) {
  eval_report r;
  r.metrics = m;
  r.options = options;
  return eval_json(r);
}

/// Writes the calibrated probabilities of both splits and the calibrator's JSON.
void save_calibrated(const std::string& path, const calibrator& cal, const std::string& source,
                     const split_outcome& val, const split_outcome& test) {
  const std::int64_t k = val.scores.num_classes;
  write_dump(path,
             {{"calibrator", cal.to_json().dump()},
              {"dataset", "calibrated"},
              {"model", fmt::format("{} calibrated by calibench {}", source, cal.method)},
              {"source", fmt::format("calibench fit/apply --method {} on {}", cal.method, source)}},
             {}, k,
             {{"val", val.scores.num_samples, k, nullptr, val.scores.labels.data(), nullptr, val.scores.probs.data()},
              {"test", test.scores.num_samples, k, nullptr, test.scores.labels.data(), nullptr,
               test.scores.probs.data()}});
}

int print_calibrated(const calibrator& cal, const split_outcome& val, const split_outcome& test,
                     const metric_options& mo, double seconds, const std::string& backend,
                     const nlohmann::json& options, const std::string& format, const std::string& file) {
  if (format == "json") {
    nlohmann::json j;
    j["method"] = cal.method;
    j["params"] = cal.params();
    j["val"] = metrics_json(val.metrics, mo);
    j["test"] = metrics_json(test.metrics, mo);
    j["order_inversions"] = {{"val", json_number(val.inversions)}, {"test", json_number(test.inversions)}};
    j["seconds"] = seconds;
    j["backend"] = backend;
    j["options"] = options;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::string out = fmt::format("{}  method {}  backend {}  {:.3f} s\n", file, cal.method, backend, seconds);
  const nlohmann::json params = cal.params();  // a named object: items() must not outlive it
  for (const auto& [key, value] : params.items()) {
    std::string text = value.dump();
    if (text.size() > 100) text = text.substr(0, 97) + "...";
    out += fmt::format("  {} = {}\n", key, text);
  }
  out += fmt::format("\n{:<12}{:>10}{:>10}\n", "metric", "val", "test");
  for (const auto& f : metric_fields()) {
    auto text = [&](double v) {
      if (!std::isfinite(v)) return std::string(std::isnan(v) ? "n/a" : "inf");
      return f.percent ? fmt::format("{:.2f}", 100.0 * v) : fmt::format("{:.4f}", v);
    };
    out += fmt::format("{:<12}{:>10}{:>10}\n", f.percent ? fmt::format("{} %", f.name) : std::string(f.name),
                       text(val.metrics.*(f.member)), text(test.metrics.*(f.member)));
  }
  out += fmt::format("{:<12}{:>10.2f}{:>10.2f}\n", "inversions %", 100.0 * val.inversions, 100.0 * test.inversions);
  std::cout << out;
  return 0;
}

}  // namespace

train_options to_train_options(const train_args& a) {
  train_options o = a.options;
  if (a.focal_gradient != "full" && a.focal_gradient != "detached")
    throw input_error(fmt::format("--focal-gradient must be full or detached (got '{}')", a.focal_gradient));
  o.focal_detached = a.focal_gradient == "detached";
  o.lsplus_rule = parse_lsplus_perfect(a.lsplus_perfect);
  o.sctl.norm = parse_sctl_norm(a.sctl_norm);
  if (a.sctl_solver != "grid" && a.sctl_solver != "slsqp")
    throw input_error(fmt::format("--sctl-solver must be grid or slsqp (got '{}')", a.sctl_solver));
  o.sctl.solver = a.sctl_solver == "slsqp" ? sctl_solver::slsqp : sctl_solver::grid;
  o.sctl.grid = a.sctl_grid;
  return o;
}

int run_fit(const fit_args& a) {
  const auto started = std::chrono::steady_clock::now();
  const split_data val = read_split(a.file, "val");
  const split_data test = read_split(a.file, "test");
  fit_options o;
  o.method = a.method;
  o.metrics = resolve_conventions(a.conventions, a.bins);
  o.objective = a.objective;
  o.grid = a.grid;
  o.calib_bins = a.calib_bins;
  o.iterations = a.iterations;
  o.accuracy_constraint = a.accuracy_constraint == "on";
  o.cts_search = a.cts_search;
  o.odir_lambda = a.odir_lambda;
  o.odir_mu = a.odir_mu;
  o.train = to_train_options(a.train);
  for (const auto& key : a.train.given) check_train_option_applies(a.method, key, "--");
  // Host-only fits never touch the sweep backend: --backend cuda is refused for them rather
  // than reported as if it had run, and the output names the host.
  const bool on_backend = fit_uses_backend(o);
  if (!on_backend && a.backend == "cuda")
    throw input_error(fmt::format("--backend cuda: {}{} is fitted on the host (only the grid searches of ts "
                                  "--objective ece|adaece, ws, cws, cts_conf, bts, cts_greedy run on the sweep "
                                  "backend); use --backend cpu or auto",
                                  a.method, a.method == "ts" ? " --objective nll" : ""));
  auto backend = make_backend(on_backend ? backend_for(a.backend, o.metrics) : "cpu");
  const calibrator cal = fit_calibrator(val, o, *backend);
  const metric_options& mo = o.metrics;
  const split_outcome v = evaluate_calibrated(cal, val, mo);
  const split_outcome t = evaluate_calibrated(cal, test, mo);
  if (!a.save.empty()) save_calibrated(a.save, cal, a.file, v, t);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  nlohmann::json options_json{{"objective", a.objective},   {"grid", a.grid},
                               {"calib_bins", a.calib_bins}, {"iterations", a.iterations},
                               {"accuracy_constraint", a.accuracy_constraint}, {"cts_search", a.cts_search},
                               {"odir_lambda", a.odir_lambda >= 0 ? nlohmann::json(a.odir_lambda) : nlohmann::json(nullptr)},
                               {"odir_mu", a.odir_mu >= 0 ? nlohmann::json(a.odir_mu) : nlohmann::json(nullptr)},
                               {"bins", a.bins},             {"conventions", conventions_json(mo)}};
  if (parse_trained_method(a.method)) {
    const auto& to = a.train.options;
    options_json["train"] = {{"lr", to.lr >= 0 ? nlohmann::json(to.lr) : nlohmann::json(nullptr)},
                             {"schedule", to.schedule}, {"tolerance_grad", to.tolerance_grad},
                             {"tolerance_change", to.tolerance_change}, {"ls_alpha", to.ls_alpha}, {"fl_gamma", to.fl_gamma},
                             {"focal_gradient", a.train.focal_gradient}, {"lsplus_weight", to.lsplus_weight},
                             {"lsplus_perfect", a.train.lsplus_perfect}, {"sctl_norm", a.train.sctl_norm},
                             {"sctl_solver", a.train.sctl_solver}, {"sctl_grid", a.train.sctl_grid},
                             {"seed", to.seed}, {"pts_init", to.pts_init}, {"pts_top_k", to.pts_top_k},
                             {"pts_layers", to.pts_layers}, {"pts_nodes", to.pts_nodes},
                             {"weight_decay", to.weight_decay >= 0 ? nlohmann::json(to.weight_decay) : nlohmann::json(nullptr)}};
  }
  return print_calibrated(cal, v, t, mo, seconds, on_backend ? backend->name() : std::string("host"), options_json,
                          a.format, a.file);
}

int run_apply(const apply_args& a) {
  const auto started = std::chrono::steady_clock::now();
  const dump_layout saved = inspect_dump(a.calibrator_file);
  const auto it = saved.attributes.find("calibrator");
  if (it == saved.attributes.end())
    throw input_error(fmt::format("{}: no 'calibrator' attribute (write one with calibench fit --save)",
                                  a.calibrator_file));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    throw input_error(fmt::format("{}: attribute 'calibrator' is not valid JSON", a.calibrator_file));
  }
  const calibrator cal = calibrator::from_json(j, a.calibrator_file);
  const split_data val = read_split(a.file, "val");
  const split_data test = read_split(a.file, "test");
  const metric_options mo = resolve_conventions(a.conventions, a.bins);
  const split_outcome v = evaluate_calibrated(cal, val, mo);
  const split_outcome t = evaluate_calibrated(cal, test, mo);
  if (!a.save.empty()) save_calibrated(a.save, cal, a.file, v, t);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return print_calibrated(cal, v, t, mo, seconds, "cpu", {{"calibrator_file", a.calibrator_file}}, a.format, a.file);
}

namespace {

/// Runs experiments/plot_sweep.py (Python with matplotlib) on a sweep's output; returns a line
/// saying what happened. Plots are a convenience: their absence is reported, not an error.
std::string make_plots(const std::string& out_dir) {
  const std::string script = std::string(CALIBENCH_SOURCE_DIR) + "/experiments/plot_sweep.py";
  if (::access(script.c_str(), R_OK) != 0) return fmt::format("Plots skipped: {} not found.\n", script);
  const std::string command = fmt::format("python3 '{}' '{}' > /dev/null 2> '{}/plots.log'", script, out_dir, out_dir);
  const int status = std::system(command.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 0) return fmt::format("Plots (PNG and SVG) in {}/plots.\n", out_dir);
  if (code == 4) return "Plots skipped: matplotlib is not installed (python3 -m pip install matplotlib).\n";
  return fmt::format("Plots failed (exit {}); see {}/plots.log.\n", code, out_dir);
}

}  // namespace

int run_sweep(const sweep_args& a, const sweep_ranks& ranks) {
  if (ranks.local_rank >= 0) select_device(ranks.local_rank);  // one GPU per rank
  const experiment_spec spec = load_spec(a.spec, a.out);
  const std::vector<cell> cells = expand_cells(spec);
  if (a.list) {
    if (ranks.rank == 0) {
      for (const auto& c : cells)
        std::cout << fmt::format("{}  {}  {}  seed {}\n", c.id, c.dataset->name, c.method->label, c.seed);
    }
    return 0;
  }
  sweep_run_options o;
  o.verbose = a.verbose;
  o.progress = ranks.size == 1 && ::isatty(2) != 0;
  o.rank = ranks.rank;
  o.ranks = ranks.size;
  sweep_summary s = run_cells(spec, cells, a.out, o);
  // Every rank's cells are on disk before rank 0 reads them all.
  s = ranks.combine(s);
  if (ranks.rank != 0) return s.failed > 0 ? 3 : 0;
  const std::string table = write_reports(spec, cells, a.out);
  std::cout << table;
  if (a.plots) std::cout << "\n" << make_plots(a.out);
  std::cout << fmt::format("\n{} cells: {} run, {} already done, {} failed; {:.2f} s ({:.1f} cells/s){}. Output in {}\n",
                           s.cells, s.ran, s.skipped, s.failed, s.seconds,
                           static_cast<double>(s.ran) / std::max(s.seconds, 1e-9),
                           ranks.size > 1 ? fmt::format(", {} ranks", ranks.size) : "", a.out);
  return s.failed > 0 ? 3 : 0;
}

}  // namespace calibench::cli
