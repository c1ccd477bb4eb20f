// The calibench command line: eval, info, synth, version. Parses options (CLI11), calls the
// host library, prints tables or JSON. Errors become one line on stderr and exit status 2
// (usage, input) or 1 (runtime); nothing reaches stdout unless the whole command succeeded.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/bootstrap.hpp"
#include "host/device.hpp"
#include "host/dump.hpp"
#include "host/error.hpp"
#include "host/metrics.hpp"
#include "host/report.hpp"
#include "host/synth.hpp"

namespace {

using namespace calibench;

constexpr int k_exit_input = 2;
constexpr int k_exit_runtime = 1;

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

int report_error(const std::string& what, int code) {
  std::fflush(stdout);
  std::fprintf(stderr, "calibench: error: %s\n", one_line(what).c_str());
  return code;
}

const std::map<std::string, binning> k_binnings{{"right-closed", binning::right_closed},
                                                {"left-closed", binning::left_closed}};

/// Option validators that also reject NaN and out-of-range text instead of clamping it.
const CLI::Validator k_seed_text(
    [](std::string& text) -> std::string {
      std::uint64_t v = 0;
      const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || ptr != text.data() + text.size())
        return fmt::format("seed '{}' is not an integer in [0, 2^64)", text);
      return {};
    },
    "UINT64");

CLI::Validator finite_number(double lo, double hi, bool open_lo, bool open_hi, const std::string& what) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        const bool parsed = ec == std::errc() && ptr == text.data() + text.size();
        if (!parsed || !std::isfinite(v) || (open_lo ? v <= lo : v < lo) || (open_hi ? v >= hi : v > hi))
          return fmt::format("'{}' is not {}", text, what);
        return {};
      },
      what);
}

struct eval_args {
  std::string file;
  std::string split = "test";
  std::int32_t bins = 15;
  std::string binning_text = "right-closed";
  std::int64_t bootstrap = 0;
  std::uint64_t seed = 0;
  double level = 0.95;
  bool reliability = false;
  std::string inversions_against;
  std::string format = "table";
};

std::string scores_text(const split_data& s) {
  return fmt::format("{} {}", s.is_probs ? "probs" : "logits", s.value_type);
}

int run_eval(const eval_args& a) {
  split_data split = read_split(a.file, a.split);
  eval_report r;
  r.file = a.file;
  r.split = a.split;
  r.scores = scores_text(split);
  r.options = {a.bins, k_binnings.at(a.binning_text)};

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
  std::cout << fmt::format("calibench {}\nCUDA backend: {}\n", CALIBENCH_VERSION, dev.cuda_built ? "built" : "not built");
  if (dev.device_count > 0) {
    std::cout << fmt::format("devices: {} (first: {})\n", dev.device_count, dev.name);
  } else {
    std::cout << fmt::format("devices: none ({})\n", dev.reason);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"calibench: post-hoc calibration of classifiers, metrics and sweeps", "calibench"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");

  eval_args ev;
  auto* eval = app.add_subcommand("eval", "Every calibration and accuracy metric of one split of a dump");
  eval->add_option("file", ev.file, "HDF5 logit dump")->required();
  eval->add_option("--split", ev.split, "Split to evaluate")->check(CLI::IsMember({"val", "test", "train"}));
  eval->add_option("--bins", ev.bins, "Number of bins M (equal-width and equal-mass)")->check(CLI::Range(1, 1000000));
  eval->add_option("--binning", ev.binning_text, "Equal-width bin convention: right-closed | left-closed")
      ->check(CLI::IsMember({"right-closed", "left-closed"}));
  eval->add_option("--bootstrap", ev.bootstrap, "Bootstrap resamples B for percentile intervals (0: none)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000000}));
  eval->add_option("--seed", ev.seed, "Bootstrap seed")->check(k_seed_text);
  eval->add_option("--level", ev.level, "Interval level, a fraction (0.95)")
      ->check(finite_number(0.0, 1.0, true, true, "a fraction in (0, 1)"));
  eval->add_flag("--reliability", ev.reliability, "Also print the reliability-diagram bins");
  eval->add_option("--inversions-against", ev.inversions_against,
                   "Another dump: fraction of sample pairs whose confidence order differs");
  eval->add_option("--format", ev.format, "table | json")->check(CLI::IsMember({"table", "json"}));

  std::string info_file, info_format = "table";
  auto* info = app.add_subcommand("info", "Splits, shapes, classes, accuracy and mean confidence of a dump");
  info->add_option("file", info_file, "HDF5 logit dump")->required();
  info->add_option("--format", info_format, "table | json")->check(CLI::IsMember({"table", "json"}));

  synth_options so;
  std::string synth_out;
  auto* synth = app.add_subcommand("synth", "Write a synthetic dump with known ground truth (docs/synth.md)");
  synth->add_option("--out", synth_out, "Output HDF5 file")->required();
  synth->add_option("--classes", so.num_classes, "Number of classes K")->check(CLI::Range(std::int64_t{2}, std::int64_t{1} << 20));
  synth->add_option("--n-val", so.n_val, "Validation samples")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  synth->add_option("--n-test", so.n_test, "Test samples")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  const auto positive = finite_number(0.0, 1e300, true, false, "a finite number > 0");
  const auto non_negative = finite_number(0.0, 1e300, false, false, "a finite number >= 0");
  synth->add_option("--seed", so.seed, "Seed")->check(k_seed_text);
  synth->add_option("--logit-scale", so.logit_scale, "Standard deviation s of the true logits")->check(positive);
  synth->add_option("--temperature", so.temperature, "Over-confidence T: observed logits are T times sharper")
      ->check(positive);
  synth->add_option("--class-distortion", so.class_distortion, "Std of log per-class scale")->check(non_negative);
  synth->add_option("--class-bias", so.class_bias, "Std of per-class logit offsets")->check(non_negative);

  auto* version = app.add_subcommand("version", "Version, CUDA backend and devices");

  // Commands of DESIGN section 6 that this version does not have yet: they say so and fail,
  // rather than being absent (a user following DESIGN gets a clear answer).
  const std::map<std::string, std::string> not_yet{
      {"fit", "fitting calibration methods (ts, ws, cws, cts, ...) is not implemented in this version"},
      {"apply", "applying saved calibrators is not implemented in this version"},
      {"sweep", "experiment sweeps from TOML specs are not implemented in this version"}};
  std::vector<std::pair<CLI::App*, std::string>> pending;
  for (const auto& [name, what] : not_yet) {
    auto* cmd = app.add_subcommand(name, "(not implemented yet) " + what);
    cmd->allow_extras();
    pending.emplace_back(cmd, what);
  }

  // CLI11 reports an unknown command only as "A subcommand is required"; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    const auto subs = app.get_subcommands([](CLI::App*) { return true; });
    const bool known = std::any_of(subs.begin(), subs.end(), [&](CLI::App* c) { return c->get_name() == argv[1]; });
    if (!known) return report_error(fmt::format("unknown command '{}' (see calibench --help)", argv[1]), k_exit_input);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report_error(fmt::format("{} (see calibench --help)", e.what()), k_exit_input);
  }

  try {
    if (eval->parsed()) return run_eval(ev);
    if (info->parsed()) return run_info(info_file, info_format);
    if (synth->parsed()) {
      write_synth_dump(synth_out, so);
      std::cout << fmt::format("wrote {} ({} classes, {} val, {} test samples, seed {})\n", synth_out, so.num_classes,
                               so.n_val, so.n_test, so.seed);
      return 0;
    }
    if (version->parsed()) return run_version();
    for (const auto& [cmd, what] : pending) {
      if (cmd->parsed()) return report_error(fmt::format("calibench {}: {}", cmd->get_name(), what), k_exit_runtime);
    }
  } catch (const input_error& e) {
    return report_error(e.what(), k_exit_input);
  } catch (const std::bad_alloc&) {
    return report_error("out of memory", k_exit_runtime);
  } catch (const std::exception& e) {
    return report_error(e.what(), k_exit_runtime);
  }
  return report_error("no command given (see calibench --help)", k_exit_input);
}
