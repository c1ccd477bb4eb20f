// The subcommands of the calibench command line. Each file of host/cli/ defines one group's
// subcommands; main.cpp holds the table of them. A subcommand's setup adds its options to a
// CLI11 subcommand and returns what runs it once the command line is parsed; a run prints on
// stdout only after everything succeeded and throws calibench errors for main to report.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace calibench::cli {

/// Runs a parsed subcommand; returns its exit status.
using command_runner = std::function<int()>;

/// One row of main's table: name, one-line description, setup.
struct subcommand {
  const char* name;
  const char* description;
  command_runner (*setup)(CLI::App& cmd);
};

command_runner setup_eval(CLI::App& cmd);              // eval.cpp
command_runner setup_info(CLI::App& cmd);              // info.cpp
command_runner setup_version(CLI::App& cmd);           // info.cpp
command_runner setup_synth(CLI::App& cmd);             // synth.cpp
command_runner setup_seg_eval(CLI::App& cmd);          // segmentation.cpp
command_runner setup_fit(CLI::App& cmd);               // fit.cpp
command_runner setup_apply(CLI::App& cmd);             // fit.cpp
command_runner setup_sweep_candidates(CLI::App& cmd);  // sweep.cpp
command_runner setup_sctl_weights(CLI::App& cmd);      // sctl.cpp
command_runner setup_lsplus_priors(CLI::App& cmd);     // sctl.cpp
command_runner setup_sweep(CLI::App& cmd);             // sweep.cpp

}  // namespace calibench::cli
