// `calibench eval`: every calibration and accuracy metric of one split of a dump, with
// bootstrap intervals, reliability bins, order inversions against another dump and the
// metrics under every conventions preset (docs/metrics.md).
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/cli/commands.hpp"
#include "host/cli/options.hpp"
#include "host/metrics/bootstrap.hpp"
#include "host/metrics/plot_data.hpp"
#include "host/metrics/report.hpp"

namespace calibench::cli {
namespace {

struct eval_args {
  std::string file;
  std::string split = "test";
  std::int32_t bins = 15;
  convention_names conventions;
  bool compare_conventions = false;
  std::int64_t bootstrap = 0;
  std::uint64_t seed = 0;
  double level = 0.95;
  bool reliability = false;
  bool classwise = false;
  std::string inversions_against;
  std::string metrics = "all";
  std::string format = "table";
  plot_args plot;
};

/// The confidences of the same split of another dump, for order inversions.
std::vector<double> other_confidence(const eval_args& a, const split_data& split) {
  split_data other = read_split(a.inversions_against, a.split);
  if (other.num_samples != split.num_samples)
    throw input_error(fmt::format("{}: {} has N = {}, but {} has N = {}; order inversions need the same samples",
                                  a.inversions_against, other.values_path(), other.num_samples, a.file,
                                  split.num_samples));
  return score_split(std::move(other)).confidence;
}

int run_eval(const eval_args& a) {
  const metric_selection selected = metric_selection::parse(a.metrics);  // before any reading
  check_plot(a.plot, resolve_conventions(a.conventions, a.bins));
  split_data split = read_split(a.file, a.split);
  eval_report r;
  r.file = a.file;
  r.split = a.split;
  r.scores = scores_text(split);
  r.binary = split.binary;
  r.options = resolve_conventions(a.conventions, a.bins);
  r.options.selected = selected;
  const std::vector<double> other = a.inversions_against.empty() ? std::vector<double>() : other_confidence(a, split);

  // --compare-conventions computes SCE under every preset: it keeps the probabilities.
  const scored_split scored =
      score_split(std::move(split), a.compare_conventions ? score_needs{} : needs_of(r.options, a.classwise));
  r.metrics = compute_metrics(scored, r.options);
  if (a.compare_conventions) {
    for (const auto preset : preset_names()) {
      convention_names names;
      names.preset = std::string(preset);
      metric_options o = resolve_conventions(names, a.bins);
      o.selected = metric_selection::of({"ece", "adaece", "sce", "brier"});  // what the comparison prints
      // The run's own conventions are not computed twice.
      const bool same = conventions_json(o) == conventions_json(r.options) && r.options.selected.has("ece") &&
                        r.options.selected.has("adaece") && r.options.selected.has("sce") &&
                        r.options.selected.has("brier");
      r.compared.emplace_back(names.preset, same ? r.metrics : compute_metrics(scored, o));
    }
  }
  if (a.bootstrap > 0) r.bootstrap = bootstrap_metrics(scored, r.options, {a.bootstrap, a.seed, a.level});
  if (a.reliability) r.reliability = reliability_bins(scored, r.options);
  if (a.classwise) r.classwise = breakdown_classwise(scored, r.options);
  if (!a.inversions_against.empty()) {
    r.order_inversions = order_inversions(scored.confidence, other);
    r.inversions_against = a.inversions_against;
  }
  std::cout << (a.format == "json" ? eval_json(r).dump(2) + "\n" : eval_table(r)) << std::flush;
  if (!a.plot.file.empty()) {  // after the results: a failed plot loses nothing
    const std::string title =
        fmt::format("{} /{} (N = {}, K = {})", a.file, a.split, scored.num_samples, scored.num_classes);
    draw_plot(a.plot, plot_document(title, r.options, {plot_panel(scored, r.options, "uncalibrated")}));
  }
  return 0;
}

}  // namespace

command_runner setup_eval(CLI::App& cmd) {
  auto a = std::make_shared<eval_args>();
  cmd.add_option("file", a->file, "HDF5 logit dump")->required();
  cmd.add_option("--split", a->split, "Split to evaluate")->check(CLI::IsMember({"val", "test", "train"}));
  cmd.add_option("--bins", a->bins, "Number of bins M (equal-width and equal-mass)")->check(CLI::Range(1, 1000000));
  add_convention_options(cmd, a->conventions, true);
  cmd.add_flag("--compare-conventions", a->compare_conventions,
               "Also print ECE, adaECE, SCE and Brier under every conventions preset");
  cmd.add_option("--bootstrap", a->bootstrap, "Bootstrap resamples B for percentile intervals (0: none)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000000}));
  cmd.add_option("--seed", a->seed, "Bootstrap seed")->check(k_seed_text);
  cmd.add_option("--level", a->level, "Interval level, a fraction (0.95)")
      ->check(finite_number(0.0, 1.0, true, true, "a fraction in (0, 1)"));
  cmd.add_flag("--reliability", a->reliability, "Also print the reliability-diagram bins");
  cmd.add_flag("--classwise", a->classwise,
               "Also print classwise ECE per class and per bin, split into under- and over-confidence");
  cmd.add_option("--inversions-against", a->inversions_against,
                 "Another dump: fraction of sample pairs whose confidence order differs");
  cmd.add_option("--metrics", a->metrics,
                 "Comma-separated metrics to compute (default all; docs/metrics.md): e.g. ece,nll,brier");
  cmd.add_option("--format", a->format, "table | json")->check(CLI::IsMember({"table", "json"}));
  add_plot_options(cmd, a->plot);
  return [a] { return run_eval(*a); };
}

}  // namespace calibench::cli
