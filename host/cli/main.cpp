// The calibench command line: eval, info, synth, version. Parses options (CLI11), calls the
// host library, prints tables or JSON. Errors become one line on stderr and exit status 2
// (usage, input) or 1 (runtime); nothing reaches stdout unless the whole command succeeded.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#if defined(CALIBENCH_HAVE_MPI)
#define OMPI_SKIP_MPICXX 1  // the C API only: the deprecated C++ bindings need another library
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/calibrators/calibrator.hpp"
#include "host/cli/commands.hpp"
#include "common/error.hpp"
#include "host/segmentation/segmentation.hpp"
#include "host/io/synth.hpp"

namespace {

using namespace calibench;
using namespace calibench::cli;

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

/// The conventions options (docs/metrics.md); `all` false: only --binning (sweeps bin the
/// top-label confidence and nothing else).
void add_train_options(CLI::App* cmd, train_args& t) {
  auto& o = t.options;
  const char* group = "Loss-trained methods (docs/calibrators.md)";
  cmd->add_option("--lr", o.lr, "Learning rate of one stage (default 0.02; ls, fl: the schedule 0.005/200, 0.003/400, 0.001/400)")
      ->check(CLI::Validator(
          [](std::string& v) {
            try {
              std::size_t used = 0;
              const double x = std::stod(v, &used);
              return used == v.size() && x > 0 && std::isfinite(x) ? std::string() : "must be a number > 0, got " + v;
            } catch (const std::exception&) {
              return "must be a number > 0, got " + v;
            }
          },
          "POSITIVE"))
      ->group(group);
  cmd->add_option("--schedule", o.schedule, "auto (on for ls, fl) | on | off")
      ->check(CLI::IsMember({"auto", "on", "off"}))->group(group);
  cmd->add_option("--tolerance-grad", o.tolerance_grad, "L-BFGS: stop when max |gradient| <= this (torch's 1e-7)")
      ->group(group);
  cmd->add_option("--tolerance-change", o.tolerance_change,
                  "L-BFGS: stop when the loss or the step changes by less (torch's 1e-9; 0: run every iteration)")
      ->group(group);
  cmd->add_option("--ls-alpha", o.ls_alpha, "+ls: label-smoothing weight (0.05)")->group(group);
  cmd->add_option("--fl-gamma", o.fl_gamma, "+fl: focal gamma (3)")->group(group);
  cmd->add_option("--focal-gradient", t.focal_gradient,
                  "+fl: full (the focal loss's gradient) | detached ((1-p)^gamma held constant, the SCTL code)")
      ->check(CLI::IsMember({"full", "detached"}))->group(group);
  cmd->add_option("--lsplus-weight", o.lsplus_weight, "+lsplus: a in (1 - a) CE + a KL (0.5)")->group(group);
  cmd->add_option("--lsplus-perfect", t.lsplus_perfect, "+lsplus: prior of classes with accuracy 1: uniform | half | keep")
      ->check(CLI::IsMember({"uniform", "half", "keep"}))->group(group);
  cmd->add_option("--sctl-norm", t.sctl_norm, "+sctl: class-loss normalisation nd | mm | cm")
      ->check(CLI::IsMember({"nd", "mm", "cm"}))->group(group);
  cmd->add_option("--sctl-solver", t.sctl_solver, "+sctl: (alpha, beta) from grid (calibench) | slsqp (NLopt, the authors' solver)")
      ->check(CLI::IsMember({"grid", "slsqp"}))->group(group);
  cmd->add_option("--sctl-grid", t.sctl_grid, "+sctl: grid candidates per axis (256)")->check(CLI::Range(2, 4096))->group(group);
  cmd->add_option("--seed", o.seed, "pts, pts_sctl: seed of the initial network weights (1)")->group(group);
  cmd->add_option("--pts-init", o.pts_init, "pts, pts_sctl: JSON file with the initial network ({\"layers\": [{\"weight\", \"bias\"}]})")
      ->group(group);
  cmd->add_option("--pts-top-k", o.pts_top_k, "pts, pts_sctl: sorted logits fed to the network (10; min(10, K))")->group(group);
  cmd->add_option("--pts-layers", o.pts_layers, "pts: hidden layers (2)")->group(group);
  cmd->add_option("--pts-nodes", o.pts_nodes, "pts: units per hidden layer (5)")->group(group);
  cmd->add_option("--weight-decay", o.weight_decay, "pts, pts_sctl: Adam weight decay (pts 0.002, pts_sctl 0)")
      ->check(CLI::NonNegativeNumber)->group(group);
}

void add_convention_options(CLI::App* cmd, convention_names& c, bool all) {
  // Empty text would mean "the preset's value" to resolve_conventions: refuse it here.
  const CLI::Validator named(
      [](std::string& text) -> std::string { return text.empty() ? std::string("an empty name") : std::string(); },
      "NAME");
  cmd->add_option("--binning", c.binning,
                  "Equal-width bins: right-closed | guo-strict | left-closed | torchmetrics | digitize-linspace")
      ->check(named);
  if (!all) return;
  cmd->add_option("--conventions", c.preset,
                  "Preset of another library's conventions: calibench | torchmetrics | netcal | focal | guo | "
                  "dirichlet | verified-calibration | mixnmatch")
      ->check(named);
  cmd->add_option("--classwise-binning", c.classwise_binning, "Bins of the classwise metrics (default: --binning)")
      ->check(named);
  cmd->add_option("--adaptive", c.adaptive, "Equal-mass bins of adaECE: split | interp | quantile | midpoint | floor-count")
      ->check(named);
  cmd->add_option("--classwise-reduction", c.classwise_reduction, "Classwise ECE over classes: mean | sum")->check(named);
  cmd->add_option("--brier", c.brier, "Brier score: sum | per-class-mean | top-label")->check(named);
  cmd->add_option_function<double>(
         "--nll-clip", [&c](const double& eps) { c.nll_clip = eps; },
         "Clip p_y to [EPS, 1 - EPS] before the log in NLL (1e-15: scikit-learn log_loss)")
      ->check(finite_number(0.0, 0.5, true, true, "a number in (0, 0.5)"));
}

}  // namespace

/// True when this process was started by an MPI launcher (Open MPI, MPICH/PMI, PMIx).
bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(var) != nullptr) return true;
  }
  return false;
}

/// `calibench sweep`, sharded over MPI ranks when launched by mpirun (and built with MPI).
int run_sweep_maybe_mpi(const sweep_args& a) {
  if (!launched_by_mpi()) return run_sweep(a, {});
#if defined(CALIBENCH_HAVE_MPI)
  MPI_Init(nullptr, nullptr);
  sweep_ranks ranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &ranks.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks.size);
  if (const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) ranks.local_rank = std::atoi(local);
  ranks.combine = [](const sweep_summary& mine) {
    long long in[4] = {mine.cells, mine.skipped, mine.ran, mine.failed}, out[4] = {};
    MPI_Allreduce(in, out, 4, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);  // also the barrier
    double seconds = 0;
    MPI_Allreduce(&mine.seconds, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return sweep_summary{out[0], out[1], out[2], out[3], seconds};
  };
  int status = 1;
  try {
    status = run_sweep(a, ranks);
  } catch (const input_error& e) {
    status = report_error(e.what(), k_exit_input);
  } catch (const std::exception& e) {
    status = report_error(e.what(), k_exit_runtime);
  }
  MPI_Finalize();
  return status;
#else
  throw input_error("this calibench was built without MPI: rebuild with libopenmpi-dev installed "
                    "(CALIBENCH_MPI=AUTO|ON) to shard a sweep over mpirun ranks");
#endif
}

/// OpenMP workers that spin between parallel regions (libgomp's default) take CPU time from
/// the thread doing the serial work in between; on the development and CI VMs, whose two
/// vCPUs deliver about one core of throughput, that made class-based TS 2.5x slower. libgomp
/// reads OMP_WAIT_POLICY when it loads, so the CLI sets it and re-executes itself once; an
/// explicit OMP_WAIT_POLICY in the environment is respected.
void prefer_passive_openmp_workers(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}

int main(int argc, char** argv) {
  prefer_passive_openmp_workers(argv);
  CLI::App app{"calibench: post-hoc calibration of classifiers, metrics and sweeps", "calibench"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");

  eval_args ev;
  auto* eval = app.add_subcommand("eval", "Every calibration and accuracy metric of one split of a dump");
  eval->add_option("file", ev.file, "HDF5 logit dump")->required();
  eval->add_option("--split", ev.split, "Split to evaluate")->check(CLI::IsMember({"val", "test", "train"}));
  eval->add_option("--bins", ev.bins, "Number of bins M (equal-width and equal-mass)")->check(CLI::Range(1, 1000000));
  add_convention_options(eval, ev.conventions, true);
  eval->add_flag("--compare-conventions", ev.compare_conventions,
                 "Also print ECE, adaECE, SCE and Brier under every conventions preset");
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

  bool synth_segmentation = false;
  seg_synth_options sso;
  synth->add_flag("--segmentation", synth_segmentation,
                  "A segmentation dump instead (docs/segmentation.md): groups val, test, test_noise, "
                  "test_bias_field, test_shift; K defaults to 4 and T to 2.5");
  synth->add_option("--images", sso.images, "--segmentation: images per group")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 30));
  synth->add_option("--height", sso.height, "--segmentation: image height")->check(CLI::Range(std::int64_t{4}, std::int64_t{1} << 16));
  synth->add_option("--width", sso.width, "--segmentation: image width")->check(CLI::Range(std::int64_t{4}, std::int64_t{1} << 16));
  synth->add_option("--augmentations", sso.augmentations, "--segmentation: stored augmented logits per image")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{64}));

  seg_eval_args sa;
  auto* seg_eval = app.add_subcommand(
      "seg-eval", "Segmentation calibration over ROI pixels: ECE, SCE, Dice per domain group (docs/segmentation.md)");
  seg_eval->add_option("file", sa.file, "HDF5 segmentation dump")->required();
  seg_eval->add_option("--bins", sa.bins, "Number of bins M")->check(CLI::Range(1, 1000000));
  add_convention_options(seg_eval, sa.conventions, true);
  seg_eval->add_option("--roi", sa.roi, "dilate (ground-truth foreground dilated) | stored (/<group>/roi) | all")
      ->check(CLI::IsMember({"dilate", "stored", "all"}));
  seg_eval->add_option("--roi-dilation", sa.roi_dilation, "Half-width r of the square dilation kernel (2r+1 pixels)")
      ->check(CLI::Range(0, 1 << 20));
  seg_eval->add_option("--background", sa.background, "The background class (not foreground)")->check(CLI::Range(0, 1 << 30));
  seg_eval->add_option("--methods", sa.methods,
                       "Comma-separated: uncalibrated, ts (fitted on val ROI pixels), temperature-map, augmented-mean");
  seg_eval->add_option("--groups", sa.groups, "Comma-separated groups to evaluate (default: all)");
  seg_eval->add_option("--backend", sa.backend, "Sweep backend of the ts fit: cpu | cuda | auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  seg_eval->add_flag("--reliability", sa.reliability, "Also print the reliability bins of every (method, group)");
  seg_eval->add_option("--format", sa.format, "table | json")->check(CLI::IsMember({"table", "json"}));

  auto* version = app.add_subcommand("version", "Version, CUDA backend and devices");

  fit_args fa;
  auto* fit = app.add_subcommand("fit", "Fit a calibration method on /val; metrics on /val and /test (docs/calibrators.md)");
  fit->add_option("file", fa.file, "HDF5 logit dump")->required();
  fit->add_option("--method", fa.method,
                  "ts | ws | cws | cts_conf | bts | cts_greedy | cts_nll | vs | ms | ms_odir | dir_odir | hist | iso | ets; "
                  "loss-trained: ets_sctl | pts | pts_sctl | BASE+LOSS with BASE in ts, ets, ets_sctl, cts_nll, pts, "
                  "pts_sctl and LOSS in ce, ls, fl, lsplus, sctl (e.g. ts+sctl)")
      ->check(CLI::IsMember(calibench::method_names()))
      ->option_text("TEXT");
  fit->add_option("--objective", fa.objective, "ts: nll | ece | adaece; ets: nll | mse (the weights)")
      ->check(CLI::IsMember({"nll", "ece", "adaece", "mse"}));
  fit->add_option("--grid", fa.grid, "Candidates: start:stop:step (inclusive) or v1,v2,... (method default; ms_odir, dir_odir: lambda = mu)");
  fit->add_option("--calib-bins", fa.calib_bins, "cws, cts_conf, bts: calibration bins B or auto (2..50); hist: bins M");
  fit->add_option("--iterations", fa.iterations,
                  "cts_greedy: cycles over the classes (5 for grid, 1000 for nudge); "
                  "vs, ms, cts_nll, ms_odir, dir_odir: L-BFGS iterations at most per fit (1000); "
                  "loss-trained methods: L-BFGS max_iter or Adam steps of one stage (1000)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000000}));
  fit->add_option("--accuracy-constraint", fa.accuracy_constraint, "cts_greedy: on | off (off = U-CTS)")
      ->check(CLI::IsMember({"on", "off"}));
  fit->add_option("--cts-search", fa.cts_search, "cts_greedy: grid (the paper) | nudge (the authors' code)")
      ->check(CLI::IsMember({"grid", "nudge"}));
  fit->add_option("--odir-lambda", fa.odir_lambda,
                  "ms_odir, dir_odir: off-diagonal weight lambda (with --odir-mu; default: 5-fold CV)")
      ->check(CLI::NonNegativeNumber);
  fit->add_option("--odir-mu", fa.odir_mu, "ms_odir, dir_odir: bias weight mu (with --odir-lambda)")
      ->check(CLI::NonNegativeNumber);
  add_train_options(fit, fa.train);
  fit->add_option("--bins", fa.bins, "Evaluation (and objective) bins M")->check(CLI::Range(1, 1000000));
  add_convention_options(fit, fa.conventions, true);
  fit->add_option("--backend", fa.backend, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  fit->add_option("--save", fa.save, "Write calibrated probabilities and the parameters to this HDF5 file");
  fit->add_option("--format", fa.format, "table | json")->check(CLI::IsMember({"table", "json"}));

  apply_args aa;
  auto* apply = app.add_subcommand("apply", "Apply a calibrator saved by fit --save to another dump");
  apply->add_option("calibrator", aa.calibrator_file, "File written by calibench fit --save")->required();
  apply->add_option("file", aa.file, "HDF5 logit dump to calibrate")->required();
  apply->add_option("--bins", aa.bins, "Evaluation bins M")->check(CLI::Range(1, 1000000));
  add_convention_options(apply, aa.conventions, true);
  apply->add_option("--save", aa.save, "Write the calibrated probabilities to this HDF5 file");
  apply->add_option("--format", aa.format, "table | json")->check(CLI::IsMember({"table", "json"}));

  sweep_candidates_args sw;
  auto* sweep_cands = app.add_subcommand(
      "sweep-candidates", "Evaluate a grid of candidates of one family on one split (the sweep engine, for debugging and timing)");
  sweep_cands->add_option("file", sw.file, "HDF5 logit dump")->required();
  sweep_cands->add_option("--split", sw.split, "Split")->check(CLI::IsMember({"val", "test", "train"}));
  sweep_cands->add_option("--family", sw.family, "temperature | inverse-temperature | weight | class-temperature | bin-temperature")
      ->check(CLI::IsMember({"temperature", "inverse-temperature", "weight", "class-temperature", "bin-temperature"}));
  sweep_cands->add_option("--grid", sw.grid, "Candidates: start:stop:step (inclusive) or v1,v2,...");
  sweep_cands->add_option("--bins", sw.bins, "Number of bins M")->check(CLI::Range(1, 1000000));
  add_convention_options(sweep_cands, sw.conventions, false);
  sweep_cands->add_option("--backend", sw.backend, "cpu | cuda | auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  sweep_cands->add_flag("--no-adaece", sw.no_adaece, "Skip equal-mass bins (no per-candidate sort)");
  sweep_cands->add_option("--class", sw.cls, "class-temperature: the class whose temperature is swept");
  sweep_cands->add_option("--base-temperature", sw.base_temperature, "class-/bin-temperature: temperature of the rest")
      ->check(finite_number(0.0, 1e300, true, false, "a finite number > 0"));
  sweep_cands->add_option("--calib-bins", sw.calib_bins, "bin-temperature: equal-mass calibration bins")
      ->check(CLI::Range(1, 1000000));
  sweep_cands->add_option("--target-bin", sw.target_bin, "bin-temperature: the bin whose temperature is swept");
  sweep_cands->add_flag("--per-bin", sw.per_bin, "Also print every candidate's bin statistics");
  sweep_cands->add_option("--format", sw.format, "json | csv")->check(CLI::IsMember({"json", "csv"}));

  sctl_weights_args sctl;
  auto* sctl_weights = app.add_subcommand(
      "sctl-weights", "Fit the class-wise loss scaling (alpha, beta) on two class-loss vectors; print the weights");
  sctl_weights->add_option("--l0", sctl.l0, "Class losses at the first loss evaluation: v1,v2,...")->required();
  sctl_weights->add_option("--l1", sctl.l1, "Class losses at the second loss evaluation: v1,v2,...")->required();
  sctl_weights->add_option("--norm", sctl.norm, "Normalisation: nd | mm | cm")->check(CLI::IsMember({"nd", "mm", "cm"}));
  sctl_weights->add_option("--grid", sctl.grid, "Grid candidates per axis (grid x grid pairs)")->check(CLI::Range(2, 4096));
  sctl_weights->add_option("--backend", sctl.backend, "Grid evaluation: cpu | cuda | auto (cuda when a device answers)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  sctl_weights->add_option("--at", sctl.at, "Also evaluate the objective and weights at ALPHA,BETA");
  sctl_weights->add_option("--format", sctl.format, "table | json")->check(CLI::IsMember({"table", "json"}));

  lsplus_priors_args lsp;
  auto* lsplus_priors = app.add_subcommand(
      "lsplus-priors", "Write the LS+ class priors from the per-class validation accuracy of a dump (CSV)");
  lsplus_priors->add_option("file", lsp.file, "HDF5 logit dump")->required();
  lsplus_priors->add_option("--out", lsp.out, "Per-class CSV: class,accuracy,count,prior_true,prior_other")->required();
  lsplus_priors->add_option("--split", lsp.split, "Split the accuracies come from")
      ->check(CLI::IsMember({"val", "test", "train"}));
  lsplus_priors->add_option("--perfect", lsp.perfect, "Prior of classes with accuracy 1: uniform (1/K) | half | keep")
      ->check(CLI::IsMember({"uniform", "half", "keep"}));
  lsplus_priors->add_option("--matrix", lsp.matrix, "Also write the K x K prior vectors (row k = v^k) as CSV");

  sweep_args ea;
  auto* sweep = app.add_subcommand("sweep", "Run a study from a TOML spec: datasets x methods x seeds (docs/experiments.md)");
  sweep->add_option("spec", ea.spec, "Spec file (TOML)")->required();
  sweep->add_option("--out", ea.out, "Output folder (finished cells there are not run again)")->required();
  sweep->add_flag("--verbose", ea.verbose, "One line per finished cell on stderr");
  sweep->add_flag("--list", ea.list, "Print the cells and their identities, run nothing");
  sweep->add_flag("!--no-plots", ea.plots, "Do not run experiments/plot_sweep.py on the output");

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
    if (synth->parsed() && synth_segmentation) {
      if (synth->count("--classes") > 0) sso.classes = so.num_classes;
      if (synth->count("--temperature") > 0) sso.temperature = so.temperature;
      sso.seed = so.seed;
      write_seg_synth_dump(synth_out, sso);
      std::cout << fmt::format("wrote {} (segmentation: {} classes, {} images of {} x {} per group, seed {})\n",
                               synth_out, sso.classes, sso.images, sso.height, sso.width, sso.seed);
      return 0;
    }
    if (seg_eval->parsed()) return run_seg_eval(sa);
    if (synth->parsed()) {
      write_synth_dump(synth_out, so);
      std::cout << fmt::format("wrote {} ({} classes, {} val, {} test samples, seed {})\n", synth_out, so.num_classes,
                               so.n_val, so.n_test, so.seed);
      return 0;
    }
    if (version->parsed()) return run_version();
    if (sweep_cands->parsed()) return run_sweep_candidates(sw);
    if (fit->parsed()) {
      // Which training options the command line set (they must apply to the method).
      for (const auto& key : calibench::train_option_keys()) {
        std::string flag = "--" + key;
        std::replace(flag.begin(), flag.end(), '_', '-');
        if (fit->get_option_no_throw(flag) != nullptr && fit->count(flag) > 0) fa.train.given.push_back(key);
      }
      return run_fit(fa);
    }
    if (apply->parsed()) return run_apply(aa);
    if (sweep->parsed()) return run_sweep_maybe_mpi(ea);
    if (sctl_weights->parsed()) return run_sctl_weights(sctl);
    if (lsplus_priors->parsed()) return run_lsplus_priors(lsp);
  } catch (const input_error& e) {
    return report_error(e.what(), k_exit_input);
  } catch (const std::bad_alloc&) {
    return report_error("out of memory", k_exit_runtime);
  } catch (const std::exception& e) {
    return report_error(e.what(), k_exit_runtime);
  }
  return report_error("no command given (see calibench --help)", k_exit_input);
}
