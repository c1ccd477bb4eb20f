// Options and outputs that several subcommands share: validators that refuse NaN and
// out-of-range text, the metric conventions options, the description of a split's scores.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "host/io/dump.hpp"
#include "host/metrics/conventions.hpp"

namespace calibench::cli {

/// Exit statuses: usage and input errors, runtime errors, a sweep with failed cells.
inline constexpr int k_exit_input = 2;
inline constexpr int k_exit_runtime = 1;
inline constexpr int k_exit_failed_cells = 3;

/// Prints "calibench: error: WHAT" as one line on stderr (after flushing stdout); returns `code`.
int report_error(const std::string& what, int code);

/// A seed: an integer in [0, 2^64).
extern const CLI::Validator k_seed_text;

/// A finite number in (lo or [lo, hi) or hi]; `what` says which in the message.
CLI::Validator finite_number(double lo, double hi, bool open_lo, bool open_hi, const std::string& what);

/// The conventions options (docs/metrics.md); `all` false: only --binning (sweeps bin the
/// top-label confidence and nothing else).
void add_convention_options(CLI::App& cmd, convention_names& c, bool all);

/// --progress (progress lines with an ETA on stderr even when it is not a terminal: one at
/// most every 5 s, CALIBENCH_PROGRESS_INTERVAL seconds if set) and --quiet (none). Without
/// either, a live line on a terminal and nothing otherwise (main sets that default).
void add_progress_options(CLI::App& cmd);

/// The default progress mode before the options are parsed: live on a terminal, else off.
void default_progress_mode();

/// --plot FILE and --plot-kind (eval, fit): a figure of the plot data (host/metrics/plot_data.hpp).
struct plot_args {
  std::string file;                  ///< .png, .svg or .pdf; "" draws nothing
  std::string kind = "reliability";  ///< reliability | retention | density
};
void add_plot_options(CLI::App& cmd, plot_args& p);

/// Before any input is read: refuses a --plot the figure cannot be drawn for (a bin rule without
/// M slots, a folder that does not exist), so that a long fit is not lost to it afterwards.
void check_plot(const plot_args& p, const metric_options& options);

/// `s` as one POSIX shell word (single-quoted).
std::string shell_word(const std::string& s);

/// Draws `document` into p.file with python/calibench/plots.py (python3 with matplotlib), or
/// writes it as JSON for a .json file; throws input_error (the script's own message) or
/// calibench::error when it cannot run.
void draw_plot(const plot_args& p, const nlohmann::json& document);

/// "logits float32" or "probs float64".
std::string scores_text(const split_data& s);

/// The non-empty items of "a,b,c".
std::vector<std::string> split_list(const std::string& text);

}  // namespace calibench::cli
