// `calibench fit` (a calibration method fitted on /val, metrics on /val and /test) and
// `calibench apply` (a calibrator saved by fit --save applied to another dump). The fit's
// options are the rows of host/calibrators/request.hpp, one --flag each, parsed by the one
// request parser that Python and the sweep specs use too (docs/calibrators.md).
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/cli/commands.hpp"
#include "host/cli/options.hpp"
#include "host/metrics/plot_data.hpp"
#include "host/metrics/report.hpp"

namespace calibench::cli {
namespace {

struct fit_args {
  std::string file;
  std::string method = "ts";
  std::map<std::string, std::string> values;  ///< text of every fit option flag, by key
  std::vector<std::pair<std::string, CLI::Option*>> flags;
  std::int32_t bins = 15;
  convention_names conventions;
  std::string backend = "auto";
  std::string save;
  std::string format = "table";
  plot_args plot;

  /// The fit options given on the command line, in table order.
  option_list given() const {
    option_list out;
    for (const auto& [key, flag] : flags) {
      if (flag->count() > 0) out.emplace_back(key, values.at(key));
    }
    return out;
  }
};

struct apply_args {
  std::string calibrator_file;  ///< a file written by `fit --save`
  std::string file;             ///< the dump to calibrate
  std::int32_t bins = 15;
  convention_names conventions;
  std::string save;
  std::string format = "table";
  plot_args plot;
};

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

/// --plot: the test split before and after calibration, side by side.
void plot_fit(const plot_args& p, const calibrator& cal, const split_data& test, const split_outcome& after,
              const metric_options& mo, const std::string& file) {
  if (p.file.empty()) return;
  const std::string title = fmt::format("{} /test (N = {}, K = {}): {}", file, after.scores.num_samples,
                                        after.scores.num_classes, cal.method());
  draw_plot(p, plot_document(
                   title, mo,
                   {plot_panel(uncalibrated(test), mo, "uncalibrated"), plot_panel(after.scores, mo, cal.method())}));
}

/// Writes the calibrated probabilities of both splits, the calibrator's extra outputs
/// (calibration_map::outputs) and its JSON.
void save_calibrated(const std::string& path, const calibrator& cal, const std::string& source,
                     const split_outcome& val, const split_outcome& test, const split_data& val_split,
                     const split_data& test_split) {
  const std::int64_t k = val.scores.num_classes;
  std::vector<vector_to_write> extra = cal.outputs(val_split, "val");
  for (auto& v : cal.outputs(test_split, "test")) extra.push_back(std::move(v));
  write_dump(
      path,
      {{"calibrator", cal.to_json().dump()},
       {"dataset", "calibrated"},
       {"model", fmt::format("{} calibrated by calibench {}", source, cal.method())},
       {"source", fmt::format("calibench fit/apply --method {} on {}", cal.method(), source)}},
      {}, k,
      {{"val", val.scores.num_samples, k, nullptr, val.scores.labels.data(), nullptr, val.scores.probs.data()},
       {"test", test.scores.num_samples, k, nullptr, test.scores.labels.data(), nullptr, test.scores.probs.data()}},
      extra);
}

/// What fit and apply print: the parameters and both splits' metrics.
struct fit_outcome {
  const calibrator& cal;
  split_outcome val, test;
  metric_options metrics;
  double seconds = 0;
  std::string backend;
  nlohmann::json options;
  bool binary = false;  ///< the dump stores one score per row (K = 2)
};

std::string outcome_table(const fit_outcome& o, const std::string& file) {
  std::string out = fmt::format("{}{}  method {}  backend {}  {:.3f} s\n", file, o.binary ? " (binary)" : "",
                                o.cal.method(), o.backend, o.seconds);
  const nlohmann::json params = o.cal.params();  // a named object: items() must not outlive it
  for (const auto& [key, value] : params.items()) {
    std::string text = value.dump();
    if (text.size() > 100) text = text.substr(0, 97) + "...";
    out += fmt::format("  {} = {}\n", key, text);
  }
  out += fmt::format("\n{:<20}{:>10}{:>10}\n", "metric", "val", "test");
  for (const auto& f : metric_fields()) {
    if (f.on_request) continue;  // fit reports the default selection
    auto text = [&](double v) {
      if (!std::isfinite(v)) return std::string(std::isnan(v) ? "n/a" : "inf");
      return f.percent ? fmt::format("{:.2f}", 100.0 * v) : fmt::format("{:.4f}", v);
    };
    out += fmt::format("{:<20}{:>10}{:>10}\n", f.percent ? fmt::format("{} %", f.name) : std::string(f.name),
                       text(o.val.metrics.*(f.member)), text(o.test.metrics.*(f.member)));
  }
  out += fmt::format("{:<20}{:>10.2f}{:>10.2f}\n", "inversions %", 100.0 * o.val.inversions, 100.0 * o.test.inversions);
  return out;
}

int print_outcome(const fit_outcome& o, const std::string& format, const std::string& file) {
  if (format != "json") {
    std::cout << outcome_table(o, file);
    return 0;
  }
  nlohmann::json j;
  j["method"] = o.cal.method();
  if (o.binary) j["binary"] = true;
  j["params"] = o.cal.params();
  j["val"] = metrics_json(o.val.metrics, o.metrics);
  j["test"] = metrics_json(o.test.metrics, o.metrics);
  j["order_inversions"] = {{"val", json_number(o.val.inversions)}, {"test", json_number(o.test.inversions)}};
  j["seconds"] = o.seconds;
  j["backend"] = o.backend;
  j["options"] = o.options;
  std::cout << j.dump(2) << "\n";
  return 0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run_fit(const fit_args& a) {
  const auto started = std::chrono::steady_clock::now();
  const metric_options mo = resolve_conventions(a.conventions, a.bins);
  const fit_request request = parse_fit_request(a.method, a.given(), mo, parse_backend_choice(a.backend));
  check_plot(a.plot, mo);
  // Host-only fits never touch the sweep backend: --backend cuda is refused for them rather
  // than reported as if it had run, and the output names the host.
  check_fit_backend(request);
  const split_data val = read_split(a.file, "val");
  const split_data test = read_split(a.file, "test");
  std::unique_ptr<sweep_backend> backend;
  if (method_named(request.method).uses_backend(request))
    backend = make_backend(backend_for_rule(request.backend, mo.bin_rule));
  const calibrator cal = fit_calibrator(val, request, backend.get());
  fit_outcome o{cal, evaluate_calibrated(cal, val, mo), evaluate_calibrated(cal, test, mo), mo, 0.0, {}, {}};
  if (!a.save.empty()) save_calibrated(a.save, cal, a.file, o.val, o.test, val, test);
  o.seconds = seconds_since(started);
  o.backend = fit_site_name(request, backend.get());
  o.options = request_json(request);
  o.binary = val.binary;
  const int status = print_outcome(o, a.format, a.file);
  plot_fit(a.plot, cal, test, o.test, mo, a.file);  // after the results and --save: a failed plot loses nothing
  return status;
}

calibrator read_saved_calibrator(const std::string& path) {
  const dump_layout saved = inspect_dump(path);
  const auto it = saved.attributes.find("calibrator");
  if (it == saved.attributes.end())
    throw input_error(fmt::format("{}: no 'calibrator' attribute (write one with calibench fit --save)", path));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    throw input_error(fmt::format("{}: attribute 'calibrator' is not valid JSON", path));
  }
  return calibrator::from_json(j, path);
}

int run_apply(const apply_args& a) {
  const auto started = std::chrono::steady_clock::now();
  check_plot(a.plot, resolve_conventions(a.conventions, a.bins));
  const calibrator cal = read_saved_calibrator(a.calibrator_file);
  const split_data val = read_split(a.file, "val");
  const split_data test = read_split(a.file, "test");
  const metric_options mo = resolve_conventions(a.conventions, a.bins);
  fit_outcome o{cal, evaluate_calibrated(cal, val, mo), evaluate_calibrated(cal, test, mo), mo, 0.0, {}, {}};
  if (!a.save.empty()) save_calibrated(a.save, cal, a.file, o.val, o.test, val, test);
  o.seconds = seconds_since(started);
  o.backend = "host";
  o.options = {{"calibrator_file", a.calibrator_file}};
  o.binary = val.binary;
  const int status = print_outcome(o, a.format, a.file);
  plot_fit(a.plot, cal, test, o.test, mo, a.file);  // after the results and --save: a failed plot loses nothing
  return status;
}

/// The methods of the registry; the loss-trained ones by their pattern.
std::string method_help() {
  std::vector<std::string> plain;
  for (const auto& row : method_table()) {
    if (!row.loss_trained) plain.push_back(row.name);
  }
  return fmt::format(
      "{}; loss-trained: ets_sctl | pts | pts_sctl | BASE+LOSS with BASE in ts, ets, ets_sctl, "
      "cts_nll, pts, pts_sctl and LOSS in ce, ls, fl, lsplus, sctl (e.g. ts+sctl); docs/calibrators.md",
      fmt::join(plain, " | "));
}

/// One --flag per row of the fit option table; the training options in their own help group.
void add_fit_options(CLI::App& cmd, fit_args& a) {
  for (const fit_option& o : fit_option_table()) {
    const std::string key(o.key);
    CLI::Option* flag = cmd.add_option(option_flag(o.key), a.values[key], std::string(o.help));
    if (o.training) flag->group("Loss-trained methods (docs/calibrators.md)");
    a.flags.emplace_back(key, flag);
  }
}

}  // namespace

command_runner setup_fit(CLI::App& cmd) {
  auto a = std::make_shared<fit_args>();
  cmd.add_option("file", a->file, "HDF5 logit dump")->required();
  cmd.add_option("--method", a->method, method_help())->option_text("TEXT");
  add_fit_options(cmd, *a);
  cmd.add_option("--bins", a->bins, "Evaluation (and objective) bins M")->check(CLI::Range(1, 1000000));
  add_convention_options(cmd, a->conventions, true);
  cmd.add_option("--backend", a->backend, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd.add_option("--save", a->save, "Write calibrated probabilities and the parameters to this HDF5 file");
  cmd.add_option("--format", a->format, "table | json")->check(CLI::IsMember({"table", "json"}));
  add_progress_options(cmd);
  add_plot_options(cmd, a->plot);
  return [a] { return run_fit(*a); };
}

command_runner setup_apply(CLI::App& cmd) {
  auto a = std::make_shared<apply_args>();
  cmd.add_option("calibrator", a->calibrator_file, "File written by calibench fit --save")->required();
  cmd.add_option("file", a->file, "HDF5 logit dump to calibrate")->required();
  cmd.add_option("--bins", a->bins, "Evaluation bins M")->check(CLI::Range(1, 1000000));
  add_convention_options(cmd, a->conventions, true);
  cmd.add_option("--save", a->save, "Write the calibrated probabilities to this HDF5 file");
  cmd.add_option("--format", a->format, "table | json")->check(CLI::IsMember({"table", "json"}));
  add_plot_options(cmd, a->plot);
  return [a] { return run_apply(*a); };
}

}  // namespace calibench::cli
