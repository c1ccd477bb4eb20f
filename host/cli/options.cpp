// Shared options of the subcommands (host/cli/options.hpp).
#include "host/cli/options.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include <fmt/format.h>

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

}  // namespace calibench::cli
