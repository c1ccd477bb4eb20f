// The fit request parser (host/calibrators/request.hpp): the option table, one parser per
// option, applicability from the method's registry row, and the report of the options.
#include "host/calibrators/request.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"
#include "host/io/grid.hpp"
#include "host/metrics/conventions.hpp"

namespace calibench {
namespace {

constexpr std::string_view k_loss_trained = "the loss-trained methods (BASE+LOSS, ets_sctl, pts, pts_sctl)";

// The table. `applies_to` completes "--key applies to ..., not METHOD".
constexpr fit_option k_options[] = {
    {.key = "objective",
     .help = "ts: nll | ece | adaece | tva (Top-versus-All: the binary cross-entropy of the top-label "
             "confidence against correctness); ets: nll | mse (the weights)",
     .applies_to = "ts and ets"},
    {.key = "grid",
     .help = "Candidates: start:stop:step (inclusive) or v1,v2,... (method default; ms_odir, dir_odir: lambda = mu; "
             "dir_l2: lambda)",
     .applies_to = "ts --objective ece | adaece, ws, cts_conf, cts_greedy, ms_odir, dir_odir and dir_l2"},
    {.key = "calib_bins",
     .help = "cws, cts_conf, bts: calibration bins B or auto (2..50); hist, scaling_binning: bins M",
     .applies_to = "cws, cts_conf, bts, hist and scaling_binning"},
    {.key = "follow",
     .help =
         "paper | code: where the weight-scaling / class-based TS authors' code departs from their paper, "
         "follow the code (ws: its 13-bin least-squares weight; cws: its interp bins, high-accuracy cap and empty-bin "
         "rule; cts_greedy --cts-search nudge: its accuracy "
         "check storing the leftover grid temperature 10.1); docs/calibrators.md",
     .applies_to = "ws, cws and cts_greedy"},
    {.key = "objective_bins",
     .help = "Bins M of the fit's ECE / adaECE objective and of --calib-bins auto (default: the evaluation bins "
             "--bins); the authors' code of the weight-scaling paper fits with 15 and reports with 10",
     .applies_to = "ts, ws, cws, cts_conf, bts and cts_greedy"},
    {.key = "iterations",
     .help = "cts_greedy: cycles over the classes (5 for grid, 1000 for nudge); vs, ms, cts_nll, ms_odir, dir_odir, "
             "dir_l2, dir_diag, sms: L-BFGS iterations at most per fit (1000); vs_tva, ms_odir_tva: Adam epochs over "
             "512-row batches (the authors' 200); loss-trained methods: L-BFGS max_iter "
             "or Adam steps of "
             "one stage (1000)",
     .applies_to =
         "cts_greedy, vs, ms, cts_nll, ms_odir, dir_odir, dir_l2, dir_diag, sms and the loss-trained methods"},
    {.key = "accuracy_constraint", .help = "cts_greedy: on | off (off = U-CTS)", .applies_to = "cts_greedy"},
    {.key = "cts_search",
     .help = "cts_greedy: grid (the paper) | nudge (the authors' code)",
     .applies_to = "cts_greedy"},
    {.key = "multiclass",
     .help = "platt, beta, bbq, enir, hist, iso, cir: top-label | one-vs-rest (one calibrator per class, rows "
             "renormalised; default: platt, beta, bbq, enir binary for K = 2 and top-label above; hist, iso, cir "
             "top-label)",
     .applies_to = "platt, beta, bbq, enir, hist, iso and cir"},
    {.key = "platt_targets",
     .help = "platt: zero-one (maximum likelihood of the labels) | smoothed (Platt's targets (N+ + 1)/(N+ + 2) and "
             "1/(N- + 2), as scikit-learn's sigmoid calibration)",
     .applies_to = "platt"},
    {.key = "odir_lambda",
     .help = "ms_odir, dir_odir: off-diagonal weight lambda (with --odir-mu; default: 5-fold CV)",
     .applies_to = "ms_odir and dir_odir"},
    {.key = "odir_mu",
     .help = "ms_odir, dir_odir: bias weight mu (with --odir-lambda)",
     .applies_to = "ms_odir and dir_odir"},
    {.key = "spline_knots",
     .help = "spline: knots of the natural cubic spline, >= 2 (the authors' 6)",
     .applies_to = "spline"},
    {.key = "spline_interpolation",
     .help = "spline: between the nodes, linear (default) | authors (the authors' code's swapped weights, "
             "recalibrate.py line 66)",
     .applies_to = "spline"},
    {.key = "tva_regularisation",
     .help = "vs_tva, ms_odir_tva: on (the authors' VS_reg_tva / Dir-ODIR_reg_tva: 0.1 (1/K) sum (w_j - 1)^2) | off "
             "(VS_tva / Dir-ODIR_tva)",
     .applies_to = "vs_tva and ms_odir_tva"},
    {.key = "l2_lambda",
     .help = "dir_l2, dir_diag: L2 weight lambda of dirichletcal's reg_lambda with reg_norm (default: dir_l2 5-fold "
             "CV over --grid, dir_diag 0)",
     .applies_to = "dir_l2 and dir_diag"},
    {.key = "lr",
     .help = "Learning rate of one stage (default 0.02; ls, fl: the schedule 0.005/200, 0.003/400, 0.001/400)",
     .applies_to = k_loss_trained,
     .training = true},
    {.key = "schedule", .help = "auto (on for ls, fl) | on | off", .applies_to = k_loss_trained, .training = true},
    {.key = "tolerance_grad",
     .help = "L-BFGS: stop when max |gradient| <= this (torch's 1e-7)",
     .applies_to = "the L-BFGS methods",
     .refusal_note = " (Adam runs every step)",
     .training = true},
    {.key = "tolerance_change",
     .help = "L-BFGS: stop when the loss or the step changes by less (torch's 1e-9; 0: run every iteration)",
     .applies_to = "the L-BFGS methods",
     .refusal_note = " (Adam runs every step)",
     .training = true},
    {.key = "ls_alpha", .help = "+ls: label-smoothing weight (0.05)", .applies_to = "+ls methods", .training = true},
    {.key = "fl_gamma", .help = "+fl: focal gamma (3)", .applies_to = "+fl methods", .training = true},
    {.key = "focal_gradient",
     .help = "+fl: full (the focal loss's gradient) | detached ((1-p)^gamma held constant, the SCTL code)",
     .applies_to = "+fl methods",
     .training = true},
    {.key = "lsplus_weight",
     .help = "+lsplus: a in (1 - a) CE + a KL (0.5)",
     .applies_to = "+lsplus methods",
     .training = true},
    {.key = "lsplus_perfect",
     .help = "+lsplus: prior of classes with accuracy 1: uniform | half | keep",
     .applies_to = "+lsplus methods",
     .training = true},
    {.key = "sctl_norm",
     .help = "+sctl: class-loss normalisation nd | mm | cm",
     .applies_to = "+sctl methods",
     .training = true},
    {.key = "sctl_solver",
     .help = "+sctl: (alpha, beta) from grid (calibench) | slsqp (NLopt, the authors' solver)",
     .applies_to = "+sctl methods",
     .training = true},
    {.key = "sctl_grid",
     .help = "+sctl: grid candidates per axis (256)",
     .applies_to = "+sctl methods",
     .training = true},
    {.key = "seed",
     .help = "pts, pts_sctl: seed of the initial network weights (1)",
     .applies_to = "pts and pts_sctl",
     .training = true},
    {.key = "pts_init",
     .help = "pts, pts_sctl: JSON file with the initial network ({\"layers\": [{\"weight\", \"bias\"}]})",
     .applies_to = "pts and pts_sctl",
     .training = true},
    {.key = "pts_top_k",
     .help = "pts, pts_sctl: sorted logits fed to the network (10; min(10, K))",
     .applies_to = "pts and pts_sctl",
     .training = true},
    {.key = "pts_layers",
     .help = "pts: hidden layers (2)",
     .applies_to = "pts",
     .refusal_note = " (pts_sctl's network is fixed)",
     .training = true},
    {.key = "pts_nodes",
     .help = "pts: units per hidden layer (5)",
     .applies_to = "pts",
     .refusal_note = " (pts_sctl's network is fixed)",
     .training = true},
    {.key = "weight_decay",
     .help = "pts, pts_sctl: Adam weight decay (pts 0.002, pts_sctl 0)",
     .applies_to = "pts and pts_sctl",
     .training = true},
};

// ---- value parsers: one wording, the option spelled as its CLI flag ------------------------------

/// The value as a double; input_error "--key must be WHAT (got 'x')" when it is not one.
double number(std::string_view key, const std::string& value, std::string_view what = "a number") {
  double v = 0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || ptr != value.data() + value.size() || value.empty())
    throw input_error(fmt::format("{} must be {} (got '{}')", option_flag(key), what, value));
  return v;
}

double positive(std::string_view key, const std::string& value) {
  constexpr std::string_view what = "a number > 0";
  const double v = number(key, value, what);
  if (!(v > 0) || !std::isfinite(v))
    throw input_error(fmt::format("{} must be {} (got '{}')", option_flag(key), what, value));
  return v;
}

double non_negative(std::string_view key, const std::string& value) {
  constexpr std::string_view what = "a finite number >= 0";
  const double v = number(key, value, what);
  if (!(v >= 0) || !std::isfinite(v))
    throw input_error(fmt::format("{} must be {} (got '{}')", option_flag(key), what, value));
  return v;
}

/// An integer in [lo, hi] (no sign, no fraction, no trailing text).
std::uint64_t integer(std::string_view key, const std::string& value, std::uint64_t lo, std::uint64_t hi,
                      std::string_view range) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || ptr != value.data() + value.size() || value.empty() || v < lo || v > hi)
    throw input_error(fmt::format("{} must be an integer in {} (got '{}')", option_flag(key), range, value));
  return v;
}

/// The index of `value` among `names`; input_error "--key must be a, b or c (got 'x')".
std::size_t choice(std::string_view key, const std::string& value, std::initializer_list<std::string_view> names) {
  std::size_t i = 0;
  for (const auto name : names) {
    if (value == name) return i;
    ++i;
  }
  std::vector<std::string_view> all(names);
  const std::string listed = all.size() == 2
                                 ? fmt::format("{} or {}", all[0], all[1])
                                 : fmt::format("{} or {}", fmt::join(all.begin(), all.end() - 1, ", "), all.back());
  throw input_error(fmt::format("{} must be {} (got '{}')", option_flag(key), listed, value));
}

calib_bins_option parse_calib_bins(const std::string& value) {
  calib_bins_option o;
  o.text = value;
  if (value == "auto") {
    o.automatic = true;
    return o;
  }
  const auto values = parse_grid(value, "--calib-bins");
  if (values.size() != 1 || values[0] < 1 || values[0] != std::floor(values[0]) || values[0] > 1e6)
    throw input_error(fmt::format(
        "--calib-bins must be a positive integer up to 1000000 or 'auto' (cws, cts_conf, bts) (got '{}')", value));
  o.count = static_cast<std::int64_t>(values[0]);
  return o;
}

/// Sets option `key` of `r` from its text (the key is known and applies to r.method).
void set_option(fit_request& r, std::string_view key, const std::string& v) {
  train_options& t = r.train;
  if (key == "objective") {
    r.objective = static_cast<fit_objective>(choice(key, v, {"nll", "ece", "adaece", "mse", "tva"}));
  } else if (key == "grid") {
    r.grid = v;
  } else if (key == "calib_bins") {
    r.calib_bins = parse_calib_bins(v);
  } else if (key == "follow") {
    r.follow_code = choice(key, v, {"paper", "code"}) == 1;
  } else if (key == "objective_bins") {
    r.objective_bins = static_cast<std::int32_t>(integer(key, v, 1, 1000000, "[1, 1000000]"));
  } else if (key == "iterations") {
    r.iterations = static_cast<std::int64_t>(integer(key, v, 0, 1000000, "[0, 1000000]"));
  } else if (key == "accuracy_constraint") {
    r.accuracy_constraint = choice(key, v, {"on", "off"}) == 0;
  } else if (key == "cts_search") {
    r.search = static_cast<class_search>(choice(key, v, {"grid", "nudge"}));
  } else if (key == "multiclass") {
    r.multiclass = static_cast<multiclass_rule>(choice(key, v, {"top-label", "one-vs-rest"}) + 1);
  } else if (key == "platt_targets") {
    r.platt_smoothed = choice(key, v, {"zero-one", "smoothed"}) == 1;
  } else if (key == "odir_lambda") {
    r.odir = map_penalty{non_negative(key, v), r.odir ? r.odir->mu : -1.0};
  } else if (key == "odir_mu") {
    r.odir = map_penalty{r.odir ? r.odir->lambda : -1.0, non_negative(key, v)};
  } else if (key == "spline_knots") {
    r.spline_knots = static_cast<std::int64_t>(integer(key, v, 2, 1000, "[2, 1000]"));
  } else if (key == "tva_regularisation") {
    r.tva_regularisation = choice(key, v, {"on", "off"}) == 0;
  } else if (key == "spline_interpolation") {
    r.spline_authors = choice(key, v, {"linear", "authors"}) == 1;
  } else if (key == "l2_lambda") {
    r.l2_lambda = non_negative(key, v);
  } else if (key == "lr") {
    t.lr = positive(key, v);
  } else if (key == "schedule") {
    t.schedule = static_cast<train_schedule>(choice(key, v, {"auto", "on", "off"}));
  } else if (key == "tolerance_grad") {
    t.tolerance_grad = non_negative(key, v);
  } else if (key == "tolerance_change") {
    t.tolerance_change = non_negative(key, v);
  } else if (key == "ls_alpha") {
    t.ls_alpha = number(key, v);
  } else if (key == "fl_gamma") {
    t.fl_gamma = number(key, v);
  } else if (key == "focal_gradient") {
    t.focal_detached = choice(key, v, {"full", "detached"}) == 1;
  } else if (key == "lsplus_weight") {
    t.lsplus_weight = number(key, v);
  } else if (key == "lsplus_perfect") {
    t.lsplus_rule = static_cast<lsplus_perfect>(choice(key, v, {"uniform", "half", "keep"}));
  } else if (key == "sctl_norm") {
    t.sctl.norm = static_cast<sctl_norm>(choice(key, v, {"nd", "mm", "cm"}));
  } else if (key == "sctl_solver") {
    t.sctl.solver = static_cast<sctl_solver>(choice(key, v, {"grid", "slsqp"}));
  } else if (key == "sctl_grid") {
    t.sctl.grid = static_cast<std::int64_t>(integer(key, v, 2, 4096, "[2, 4096]"));
  } else if (key == "seed") {
    t.seed = integer(key, v, 0, UINT64_MAX, "[0, 2^64)");
  } else if (key == "pts_init") {
    t.pts_init = v;
  } else if (key == "pts_top_k") {
    t.pts_top_k = static_cast<std::int64_t>(integer(key, v, 1, 1000000, "[1, 1000000]"));
  } else if (key == "pts_layers") {
    t.pts_layers = static_cast<std::int64_t>(integer(key, v, 1, 1000, "[1, 1000]"));
  } else if (key == "pts_nodes") {
    t.pts_nodes = static_cast<std::int64_t>(integer(key, v, 1, 1000000, "[1, 1000000]"));
  } else if (key == "weight_decay") {
    t.weight_decay = non_negative(key, v);
  }
}

const fit_option* find_option(std::string_view key) {
  for (const auto& o : k_options) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

/// input_error for an option that `row` does not read.
[[noreturn]] void refuse(const fit_option& o, const method_info& row) {
  const bool trained = row.loss_trained;
  const std::string_view applies = o.training && !trained ? k_loss_trained : o.applies_to;
  throw input_error(fmt::format("{} applies to {}, not {}{}", option_flag(o.key), applies, row.name,
                                o.training && !trained ? std::string_view() : o.refusal_note));
}

/// Checks that involve several options or the method (after every option was set).
void check_request(const fit_request& r, const method_info& row) {
  if (std::find(row.objectives.begin(), row.objectives.end(), r.objective) == row.objectives.end())
    throw input_error(fmt::format("--objective {} does not apply to {} ({})", objective_name(r.objective), row.name,
                                  row.objective_note));
  if (r.objective == fit_objective::adaece && r.metrics.adaptive != adaptive_rule::split)
    throw input_error(
        fmt::format("--objective adaece sweeps the equal-mass groups of --adaptive split "
                    "(docs/metrics.md); --adaptive {} applies to the reported metrics only: drop one "
                    "of the two",
                    adaptive_name(r.metrics.adaptive)));
  if (r.odir && (r.odir->lambda < 0 || r.odir->mu < 0))
    throw input_error("--odir-lambda and --odir-mu go together (or neither: cross-validation)");
  if (row.check != nullptr) row.check(r);
}

}  // namespace

bool fit_request::was_given(std::string_view key) const {
  return std::find(given.begin(), given.end(), key) != given.end();
}

const char* objective_name(fit_objective objective) {
  switch (objective) {
    case fit_objective::nll: return "nll";
    case fit_objective::ece: return "ece";
    case fit_objective::adaece: return "adaece";
    case fit_objective::mse: return "mse";
    case fit_objective::tva: return "tva";
  }
  return "?";
}

std::span<const fit_option> fit_option_table() { return k_options; }

std::string option_flag(std::string_view key) {
  std::string flag = "--" + std::string(key);
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

fit_request parse_fit_request(const std::string& method, const option_list& options, const metric_options& metrics,
                              backend_choice backend) {
  const method_info& row = method_named(method);
  fit_request r;
  r.method = row.name;
  r.metrics = metrics;
  r.evaluation_bins = metrics.num_bins;
  r.backend = backend;
  for (const auto& [key, value] : options) {
    const fit_option* o = find_option(key);
    if (o == nullptr) {
      std::vector<std::string_view> keys;
      for (const auto& known : k_options) keys.push_back(known.key);
      throw input_error(fmt::format("unknown option '{}' ({})", key, fmt::join(keys, ", ")));
    }
    if (r.was_given(key)) throw input_error(fmt::format("{} is given twice", option_flag(key)));
    if (key != "objective" && !row.takes(key)) refuse(*o, row);
    set_option(r, key, value);
    r.given.push_back(key);
  }
  if (r.iterations) r.train.iterations = *r.iterations;
  if (r.objective_bins) r.metrics.num_bins = *r.objective_bins;  // the fit's bins; its evaluation keeps its own
  check_request(r, row);
  return r;
}

nlohmann::json request_json(const fit_request& r) {
  const auto optional_number = [](double v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j{{"objective", objective_name(r.objective)},
                   {"grid", r.grid},
                   {"calib_bins", r.calib_bins.text},
                   {"iterations", r.iterations.value_or(-1)},
                   {"accuracy_constraint", r.accuracy_constraint ? "on" : "off"},
                   {"cts_search", r.search == class_search::nudge ? "nudge" : "grid"},
                   {"odir_lambda", r.odir ? nlohmann::json(r.odir->lambda) : nlohmann::json(nullptr)},
                   {"odir_mu", r.odir ? nlohmann::json(r.odir->mu) : nlohmann::json(nullptr)},
                   {"bins", r.evaluation_bins},
                   {"conventions", conventions_json(r.metrics)}};
  if (r.objective_bins) j["objective_bins"] = *r.objective_bins;
  if (r.was_given("follow")) j["follow"] = r.follow_code ? "code" : "paper";
  if (method_named(r.method).takes("spline_knots")) {
    j["spline_knots"] = r.spline_knots;
    j["spline_interpolation"] = r.spline_authors ? "authors" : "linear";
  }
  if (method_named(r.method).takes("l2_lambda"))
    j["l2_lambda"] = r.l2_lambda ? nlohmann::json(*r.l2_lambda) : nlohmann::json(nullptr);
  if (method_named(r.method).takes("tva_regularisation")) j["tva_regularisation"] = r.tva_regularisation ? "on" : "off";
  if (method_named(r.method).takes("platt_targets")) j["platt_targets"] = r.platt_smoothed ? "smoothed" : "zero-one";
  if (method_named(r.method).takes("multiclass")) {
    static constexpr const char* names[] = {"default", "top-label", "one-vs-rest"};
    j["multiclass"] = names[static_cast<int>(r.multiclass)];
  }
  if (!method_named(r.method).loss_trained) return j;
  const train_options& t = r.train;
  j["train"] = {{"lr", optional_number(t.lr)},
                {"schedule", train_schedule_name(t.schedule)},
                {"tolerance_grad", t.tolerance_grad},
                {"tolerance_change", t.tolerance_change},
                {"ls_alpha", t.ls_alpha},
                {"fl_gamma", t.fl_gamma},
                {"focal_gradient", t.focal_detached ? "detached" : "full"},
                {"lsplus_weight", t.lsplus_weight},
                {"lsplus_perfect", lsplus_perfect_name(t.lsplus_rule)},
                {"sctl_norm", sctl_norm_name(t.sctl.norm)},
                {"sctl_solver", t.sctl.solver == sctl_solver::slsqp ? "slsqp" : "grid"},
                {"sctl_grid", t.sctl.grid},
                {"seed", t.seed},
                {"pts_init", t.pts_init},
                {"pts_top_k", t.pts_top_k},
                {"pts_layers", t.pts_layers},
                {"pts_nodes", t.pts_nodes},
                {"weight_decay", optional_number(t.weight_decay)}};
  return j;
}

}  // namespace calibench
