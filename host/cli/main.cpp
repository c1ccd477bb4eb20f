// The calibench command line: a table of subcommands (host/cli/commands.hpp), each defined in
// its group's file. Errors become one line on stderr and exit status 2 (usage, input) or 1
// (runtime); nothing reaches stdout unless the whole command succeeded.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "common/error.hpp"
#include "common/parallel.hpp"
#include "host/cli/commands.hpp"
#include "host/cli/options.hpp"

namespace {

using namespace calibench;
using namespace calibench::cli;

/// The subcommands, in the order `calibench --help` lists them.
const subcommand k_commands[] = {
    {"eval", "Every calibration and accuracy metric of one split of a dump", setup_eval},
    {"info", "Splits, shapes, classes, accuracy and mean confidence of a dump", setup_info},
    {"synth", "Write a synthetic dump with known ground truth (docs/synth.md)", setup_synth},
    {"seg-eval", "Segmentation calibration over ROI pixels: ECE, SCE, Dice per domain group (docs/segmentation.md)",
     setup_seg_eval},
    {"version", "Version, CUDA backend and devices", setup_version},
    {"fit", "Fit a calibration method on /val; metrics on /val and /test (docs/calibrators.md)", setup_fit},
    {"apply", "Apply a calibrator saved by fit --save to another dump", setup_apply},
    {"sweep-candidates",
     "Evaluate a grid of candidates of one family on one split (the sweep engine, for debugging and timing)",
     setup_sweep_candidates},
    {"sctl-weights", "Fit the class-wise loss scaling (alpha, beta) on two class-loss vectors; print the weights",
     setup_sctl_weights},
    {"lsplus-priors", "Write the LS+ class priors from the per-class validation accuracy of a dump (CSV)",
     setup_lsplus_priors},
    {"sweep", "Run a study from a TOML spec: datasets x methods x seeds (docs/experiments.md)", setup_sweep},
};

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

/// Runs `run`, turning calibench errors into their exit statuses.
int run_reporting_errors(const command_runner& run) {
  try {
    return run();
  } catch (const input_error& e) {
    return report_error(e.what(), k_exit_input);
  } catch (const std::bad_alloc&) {
    return report_error(
        "out of memory: the command needs more than this machine or its limit (ulimit -v, a container) allows",
        k_exit_runtime);
  } catch (const std::exception& e) {
    return report_error(e.what(), k_exit_runtime);
  }
}

}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp_workers(argv);
  start_thread_pool();
  CLI::App app{"calibench: post-hoc calibration of classifiers, metrics and sweeps", "calibench"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");
  std::vector<std::pair<CLI::App*, command_runner>> commands;
  for (const auto& c : k_commands) {
    CLI::App* cmd = app.add_subcommand(c.name, c.description);
    commands.emplace_back(cmd, c.setup(*cmd));
  }

  // CLI11 reports an unknown command only as "A subcommand is required"; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    const bool known = std::any_of(std::begin(k_commands), std::end(k_commands),
                                   [&](const subcommand& c) { return std::string(c.name) == argv[1]; });
    if (!known) return report_error(fmt::format("unknown command '{}' (see calibench --help)", argv[1]), k_exit_input);
  }
  default_progress_mode();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report_error(fmt::format("{} (see calibench --help)", e.what()), k_exit_input);
  }
  for (const auto& [cmd, run] : commands) {
    if (cmd->parsed()) return run_reporting_errors(run);
  }
  return report_error("no command given (see calibench --help)", k_exit_input);
}
