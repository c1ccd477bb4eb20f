// `calibench sctl-weights` (the class-wise loss scaling (alpha, beta) fitted on two class-loss
// vectors, with the weights it gives) and `calibench lsplus-priors` (the LS+ class priors of a
// dump's validation split as CSV); docs/calibrators.md.
#include <charconv>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "host/calibrators/trained/lsplus.hpp"
#include "host/calibrators/trained/sctl.hpp"
#include "host/cli/commands.hpp"
#include "host/cli/options.hpp"
#include "host/io/atomic_file.hpp"
#include "host/metrics/report.hpp"

namespace calibench::cli {
namespace {

struct sctl_weights_args {
  std::string l0, l1;           ///< comma-separated class losses at the first and second loss evaluation
  std::string norm = "nd";      ///< nd | mm | cm
  std::int32_t grid = 256;      ///< candidates per axis
  std::string backend = "cpu";  ///< where the grid is evaluated: cpu | cuda | auto
  std::string at;               ///< optional "ALPHA,BETA": also evaluate the objective and weights there
  std::string format = "table";
};

struct lsplus_priors_args {
  std::string file;
  std::string out;  ///< per-class CSV
  std::string split = "val";
  std::string perfect = "uniform";  ///< uniform | half | keep (classes with accuracy 1)
  std::string matrix;               ///< optional K x K CSV of the prior vectors v^k
};

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

/// "v1,v2,..." as finite doubles; `what` names the option in messages.
std::vector<double> parse_numbers(const std::string& text, const std::string& what) {
  std::vector<double> out;
  if (trim(text).empty()) throw input_error(fmt::format("{}: no values given (expected v1,v2,...)", what));
  std::size_t pos = 0;
  for (std::size_t index = 0;; ++index) {
    const std::size_t next = std::min(text.find(',', pos), text.size());
    const std::string token = trim(text.substr(pos, next - pos));
    double v = 0;
    const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
    if (ec == std::errc::result_out_of_range)
      throw input_error(
          fmt::format("{}: value at index {} ('{}') is outside the range of a double", what, index, token));
    if (token.empty() || ec != std::errc() || ptr != token.data() + token.size())
      throw input_error(fmt::format("{}: value at index {} ('{}') is not a number", what, index, token));
    if (!std::isfinite(v))
      throw input_error(fmt::format("{}: value at index {} is not finite ({})", what, index, token));
    out.push_back(v);
    if (next == text.size()) break;
    pos = next + 1;
  }
  return out;
}

nlohmann::json numbers_json(const std::vector<double>& v) {
  nlohmann::json out = nlohmann::json::array();
  for (double x : v) out.push_back(json_number(x));
  return out;
}

const char* norm_text(sctl_norm norm) {
  switch (norm) {
    case sctl_norm::nd: return "(L - mean) / std, unbiased std";
    case sctl_norm::mm: return "(L - min) / (max - min)";
    case sctl_norm::cm: return "(L - mean) / (max - min)";
  }
  return "";
}

/// The fit, the weights and (with --at) the objective at a given pair, as JSON.
nlohmann::json weights_json(const sctl_fit_result& r, const std::vector<double>& at, double weighted, double seconds) {
  nlohmann::json j;
  j["k"] = r.num_classes;
  j["normalisation"] = sctl_norm_name(r.norm);
  j["box"] = {{"alpha", {r.box.alpha_lo, r.box.alpha_hi}}, {"beta", {r.box.beta_lo, r.box.beta_hi}}};
  j["alpha"] = json_number(r.alpha);
  j["beta"] = json_number(r.beta);
  j["objective"] = json_number(r.objective);
  j["grid"] = {{"size", r.grid_size},
               {"backend", r.grid_backend},
               {"alpha", json_number(r.grid_alpha)},
               {"beta", json_number(r.grid_beta)},
               {"objective", json_number(r.grid_objective)}};
  j["start"] = {{"alpha", r.start_alpha}, {"beta", r.start_beta}, {"objective", json_number(r.start_objective)}};
  j["slsqp"] = {{"alpha", json_number(r.slsqp_alpha)},
                {"beta", json_number(r.slsqp_beta)},
                {"objective", json_number(r.slsqp_objective)},
                {"status", r.slsqp_status},
                {"evaluations", r.slsqp_evaluations}};
  j["l0"] = numbers_json(r.l0);
  j["l1"] = numbers_json(r.l1);
  j["normalised"] = numbers_json(r.normalised);
  j["weights"] = numbers_json(r.weights);
  j["weighted_loss"] = json_number(weighted);
  if (!at.empty()) {
    const auto g = sctl_objective_gradient(r.l0, r.l1, r.normalised, at[0], at[1]);
    j["at"] = {{"alpha", at[0]},
               {"beta", at[1]},
               {"objective", json_number(sctl_objective(r.l0, r.l1, r.normalised, at[0], at[1]))},
               {"gradient", {json_number(g[0]), json_number(g[1])}},
               {"weights", numbers_json(sctl_weights(r.normalised, at[0], at[1]))}};
  }
  j["seconds"] = seconds;
  return j;
}

std::string weights_table(const sctl_fit_result& r, const std::vector<double>& at, double weighted, double seconds) {
  std::string out = fmt::format("sctl-weights: K = {} classes, normalisation {} of L1: {}\n", r.num_classes,
                                sctl_norm_name(r.norm), norm_text(r.norm));
  out += fmt::format("box: alpha in [{:.10g}, {:.10g}], beta in [{:.10g}, {:.10g}]\n\n", r.box.alpha_lo, r.box.alpha_hi,
                     r.box.beta_lo, r.box.beta_hi);
  out += fmt::format("{:<44}{:>14}{:>14}{:>20}\n", "fit", "alpha", "beta", "objective");
  const auto row = [&](const std::string& name, double alpha, double beta, double f) {
    out += fmt::format("{:<44}{:>14.8f}{:>14.8f}{:>20.12e}\n", name, alpha, beta, f);
  };
  row(fmt::format("calibench (grid {0} x {0} on {1}, refined)", r.grid_size, r.grid_backend), r.alpha, r.beta,
      r.objective);
  row("  best grid pair", r.grid_alpha, r.grid_beta, r.grid_objective);
  row(fmt::format("SLSQP (NLopt, {}, {} evaluation{})", r.slsqp_status, r.slsqp_evaluations,
                  r.slsqp_evaluations == 1 ? "" : "s"),
      r.slsqp_alpha, r.slsqp_beta, r.slsqp_objective);
  row("start (1, 1.5) clipped into the box", r.start_alpha, r.start_beta, r.start_objective);
  if (!at.empty()) row("--at", at[0], at[1], sctl_objective(r.l0, r.l1, r.normalised, at[0], at[1]));
  const double gap = r.slsqp_objective - r.objective;
  out += fmt::format("calibench objective {} SLSQP's by {:.3e}\n\n", gap >= 0 ? "below" : "ABOVE", std::abs(gap));
  out +=
      fmt::format("{:>6}{:>16}{:>16}{:>16}{:>14}{:>12}\n", "class", "L0", "L1", "normalised L1", "weight w", "1 + w");
  for (std::size_t i = 0; i < r.l0.size(); ++i) {
    out += fmt::format("{:>6}{:>16.8g}{:>16.8g}{:>16.8g}{:>14.8f}{:>12.8f}\n", i, r.l0[i], r.l1[i], r.normalised[i],
                       r.weights[i], 1.0 + r.weights[i]);
  }
  out += fmt::format("\nscaled loss sum_i (1 + w_i) L1_i = {:.12g} (unscaled sum {:.12g}); {:.3f} s\n", weighted,
                     sctl_weighted_loss(r.l1, std::vector<double>(r.l1.size(), 0.0)), seconds);
  return out;
}

int run_sctl_weights(const sctl_weights_args& a) {
  const auto started = std::chrono::steady_clock::now();
  const std::vector<double> l0 = parse_numbers(a.l0, "--l0");
  const std::vector<double> l1 = parse_numbers(a.l1, "--l1");
  check_class_losses(l0, "--l0");
  check_class_losses(l1, "--l1");
  if (l0.size() != l1.size())
    throw input_error(
        fmt::format("--l0 has {} values but --l1 has {}; give one loss per class in both", l0.size(), l1.size()));
  std::vector<double> at;
  if (!a.at.empty()) {
    at = parse_numbers(a.at, "--at");
    if (at.size() != 2 || !(at[0] > 0))
      throw input_error(fmt::format("--at: expected ALPHA,BETA with ALPHA > 0, got '{}'", a.at));
  }
  sctl_fit_options o;
  o.norm = parse_sctl_norm(a.norm);
  o.grid = a.grid;
  const sctl_fit_result r = fit_sctl(l0, l1, o, *make_backend(a.backend));
  const double weighted = sctl_weighted_loss(r.l1, r.weights);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << (a.format == "json" ? weights_json(r, at, weighted, seconds).dump(2) + "\n"
                                   : weights_table(r, at, weighted, seconds));
  return 0;
}

int run_lsplus_priors(const lsplus_priors_args& a) {
  if (a.out.empty()) throw input_error("--out: no output file given");
  const lsplus_perfect rule = parse_lsplus_perfect(a.perfect);
  const split_data split = read_split(a.file, a.split);
  const lsplus_priors p = compute_lsplus_priors(split, rule);

  std::string csv = "class,accuracy,count,prior_true,prior_other\n";
  for (std::size_t k = 0; k < p.classes.size(); ++k) {
    const auto& c = p.classes[k];
    csv += fmt::format("{},{},{},{:.17g},{:.17g}\n", k,
                       std::isnan(c.accuracy) ? std::string("nan") : fmt::format("{:.17g}", c.accuracy), c.count,
                       c.prior_true, c.prior_other);
  }
  std::string matrix;
  if (!a.matrix.empty()) {
    matrix.reserve(static_cast<std::size_t>(p.num_classes * p.num_classes) * 8);
    for (std::int64_t k = 0; k < p.num_classes; ++k) {
      const auto& c = p.classes[static_cast<std::size_t>(k)];
      for (std::int64_t j = 0; j < p.num_classes; ++j) {
        if (j > 0) matrix += ',';
        matrix += fmt::format("{:.17g}", j == k ? c.prior_true : c.prior_other);
      }
      matrix += '\n';
    }
  }
  write_file_atomic(a.out, csv);
  if (!a.matrix.empty()) write_file_atomic(a.matrix, matrix);

  const char* replacement = rule == lsplus_perfect::uniform ? "replaced by 1/K"
                            : rule == lsplus_perfect::half  ? "replaced by 0.5"
                                                            : "kept at 1";
  std::cout << fmt::format(
      "wrote {}{}: K = {} classes from {} samples of {} ({} of {}); {} with accuracy 1 ({}), "
      "{} absent (prior 1/K)\n",
      a.out, a.matrix.empty() ? "" : fmt::format(" and {}", a.matrix), p.num_classes, p.num_samples,
      split.values_path(), split.is_probs ? "probabilities" : "logits", a.file, p.perfect, replacement, p.absent);
  return 0;
}

}  // namespace

command_runner setup_sctl_weights(CLI::App& cmd) {
  auto a = std::make_shared<sctl_weights_args>();
  cmd.add_option("--l0", a->l0, "Class losses at the first loss evaluation: v1,v2,...")->required();
  cmd.add_option("--l1", a->l1, "Class losses at the second loss evaluation: v1,v2,...")->required();
  cmd.add_option("--norm", a->norm, "Normalisation: nd | mm | cm")->check(CLI::IsMember({"nd", "mm", "cm"}));
  cmd.add_option("--grid", a->grid, "Grid candidates per axis (grid x grid pairs)")->check(CLI::Range(2, 4096));
  cmd.add_option("--backend", a->backend, "Grid evaluation: cpu | cuda | auto (cuda when a device answers)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd.add_option("--at", a->at, "Also evaluate the objective and weights at ALPHA,BETA");
  cmd.add_option("--format", a->format, "table | json")->check(CLI::IsMember({"table", "json"}));
  return [a] { return run_sctl_weights(*a); };
}

command_runner setup_lsplus_priors(CLI::App& cmd) {
  auto a = std::make_shared<lsplus_priors_args>();
  cmd.add_option("file", a->file, "HDF5 logit dump")->required();
  cmd.add_option("--out", a->out, "Per-class CSV: class,accuracy,count,prior_true,prior_other")->required();
  cmd.add_option("--split", a->split, "Split the accuracies come from")->check(CLI::IsMember({"val", "test", "train"}));
  cmd.add_option("--perfect", a->perfect, "Prior of classes with accuracy 1: uniform (1/K) | half | keep")
      ->check(CLI::IsMember({"uniform", "half", "keep"}));
  cmd.add_option("--matrix", a->matrix, "Also write the K x K prior vectors (row k = v^k) as CSV");
  return [a] { return run_lsplus_priors(*a); };
}

}  // namespace calibench::cli
