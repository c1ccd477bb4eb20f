// Shared options of the subcommands (host/cli/options.hpp).
#include "host/cli/options.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/progress.hpp"
#include "host/io/atomic_file.hpp"
#include "host/metrics/plot_data.hpp"

namespace calibench::cli {

int report_error(const std::string& what, int code) {
  std::string line = what;
  std::replace(line.begin(), line.end(), '\n', ' ');
  while (!line.empty() && line.back() == ' ') line.pop_back();
  std::fflush(stdout);
  std::fprintf(stderr, "calibench: error: %s\n", line.c_str());
  return code;
}

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

void add_convention_options(CLI::App& cmd, convention_names& c, bool all) {
  // Empty text would mean "the preset's value" to resolve_conventions: refuse it here.
  const CLI::Validator named(
      [](std::string& text) -> std::string { return text.empty() ? std::string("an empty name") : std::string(); },
      "NAME");
  cmd.add_option("--binning", c.binning,
                 "Equal-width bins: right-closed | guo-strict | left-closed | torchmetrics | digitize-linspace")
      ->check(named);
  if (!all) return;
  cmd.add_option("--conventions", c.preset,
                 "Preset of another library's conventions: calibench | torchmetrics | netcal | focal | guo | "
                 "dirichlet | verified-calibration | mixnmatch")
      ->check(named);
  cmd.add_option("--classwise-binning", c.classwise_binning, "Bins of the classwise metrics (default: --binning)")
      ->check(named);
  cmd.add_option("--adaptive", c.adaptive,
                 "Equal-mass bins of adaECE: split | interp | quantile | midpoint | floor-count")
      ->check(named);
  cmd.add_option("--classwise-reduction", c.classwise_reduction, "Classwise ECE over classes: mean | sum")
      ->check(named);
  cmd.add_option("--brier", c.brier, "Brier score: sum | per-class-mean | top-label")->check(named);
  cmd.add_option_function<double>(
         "--nll-clip", [&c](const double& eps) { c.nll_clip = eps; },
         "Clip p_y to [EPS, 1 - EPS] before the log in NLL (1e-15: scikit-learn log_loss)")
      ->check(finite_number(0.0, 0.5, true, true, "a number in (0, 0.5)"));
}

std::string scores_text(const split_data& s) {
  return fmt::format("{}{} {}", s.binary ? "binary " : "", s.is_probs ? "probs" : "logits", s.value_type);
}

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

void default_progress_mode() { progress_settings().mode = ::isatty(2) != 0 ? progress_mode::live : progress_mode::off; }

void add_progress_options(CLI::App& cmd) {
  auto* on = cmd.add_flag_callback(
      "--progress", [] { progress_settings().mode = ::isatty(2) != 0 ? progress_mode::live : progress_mode::lines; },
      "Progress with an ETA on stderr, also when it is not a terminal (a line every 5 s)");
  auto* off = cmd.add_flag_callback(
      "--quiet", [] { progress_settings().mode = progress_mode::off; }, "No progress on stderr");
  on->excludes(off);
}

void add_plot_options(CLI::App& cmd, plot_args& p) {
  cmd.add_option("--plot", p.file,
                 "Draw a figure into this .png, .svg or .pdf (python3 with matplotlib); .json: write the plot data")
      ->check(CLI::Validator(
          [](const std::string& path) {
            const auto dot = path.rfind('.');
            const std::string ext = dot == std::string::npos ? "" : path.substr(dot);
            return ext == ".png" || ext == ".svg" || ext == ".pdf" || ext == ".json"
                       ? std::string()
                       : fmt::format("'{}': expected a file name ending in .png, .svg, .pdf or .json", path);
          },
          "FILE.png|.svg|.pdf|.json"));
  cmd.add_option("--plot-kind", p.kind, "reliability (with the confidence histogram) | retention | density")
      ->check(CLI::IsMember({"reliability", "retention", "density"}));
}

std::string shell_word(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

void check_plot(const plot_args& p, const metric_options& options) {
  if (p.file.empty()) return;
  plot_document("", options, nlohmann::json::array());  // refuses the bin rules plots cannot draw
  const std::filesystem::path folder = std::filesystem::path(p.file).parent_path();
  if (!folder.empty() && !std::filesystem::is_directory(folder))
    throw input_error(fmt::format("--plot {}: folder {} does not exist", p.file, folder.string()));
}

namespace {

/// A temporary file under $TMPDIR (or /tmp), unlinked when it goes out of scope.
struct temp_file {
  std::string path;
  int fd = -1;
  temp_file() {
    const char* dir = std::getenv("TMPDIR");
    std::string pattern = std::string(dir != nullptr && *dir != 0 ? dir : "/tmp") + "/calibench-plot-XXXXXX";
    fd = ::mkstemp(pattern.data());
    if (fd < 0) throw calibench::error(fmt::format("--plot: cannot create a temporary file like {}", pattern));
    path = pattern;
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() {
    if (fd >= 0) ::close(fd);
    ::unlink(path.c_str());
  }
};

std::string read_text(const std::string& path, std::size_t limit) {
  std::string text;
  if (std::FILE* f = std::fopen(path.c_str(), "r")) {
    text.resize(limit);
    text.resize(std::fread(text.data(), 1, limit, f));
    std::fclose(f);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace

void draw_plot(const plot_args& p, const nlohmann::json& document) {
  // Invalid UTF-8 in a name (a file name, a label) is replaced, not an exception.
  const std::string text = document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (p.file.ends_with(".json")) {
    write_file_atomic(p.file, text + "\n");
    return;
  }
  const std::string script = std::string(CALIBENCH_SOURCE_DIR) + "/python/calibench/plots.py";
  if (::access(script.c_str(), R_OK) != 0) throw calibench::error(fmt::format("--plot: {} not found", script));
  const temp_file data, log;
  const bool written = ::write(data.fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (!written) throw calibench::error(fmt::format("--plot: cannot write {}", data.path));
  const int status =
      std::system(fmt::format("python3 {} {} --out={} --kind={} > /dev/null 2> {}", shell_word(script),
                              shell_word(data.path), shell_word(p.file), shell_word(p.kind), shell_word(log.path))
                      .c_str());
  const std::string message = read_text(log.path, 4096);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 0) return;
  if (code == 4) throw calibench::error("--plot needs matplotlib for python3: python3 -m pip install matplotlib");
  if (code == 2) throw input_error(fmt::format("--plot {}: {}", p.file, message));
  throw calibench::error(fmt::format("--plot {}: the plot script failed (exit {}): {}", p.file, code, message));
}

}  // namespace calibench::cli
