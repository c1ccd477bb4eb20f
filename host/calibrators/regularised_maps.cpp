// The regularised affine maps (Kull et al. 2019; dirichletcal; docs/calibrators.md):
// - ms_odir: matrix scaling of the logits, dir_odir: Dirichlet calibration (matrix scaling of
//   log p), both with the ODIR off-diagonal and intercept penalty; (lambda, mu) from
//   --odir-lambda/--odir-mu or by 5-fold cross-validation of the held-out NLL over lambda = mu;
// - dir_l2: Dirichlet calibration with dirichletcal's L2 penalty on [W | b] in reference-row
//   form; lambda from --l2-lambda or by the same cross-validation;
// - dir_diag: dirichletcal's DiagonalDirichletCalibrator, the vector map of log p, with the L2
//   penalty when --l2-lambda is given (dirichletcal's default: none).
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/progress.hpp"
#include "common/rng.hpp"
#include "host/calibrators/logit_maps.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/io/grid.hpp"

namespace calibench {
namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

/// Default candidates: 10^e K (K - 1) for e = -2, -1, 0, 1, 2. The penalty is normalised by
/// K (K - 1) (dirichletcal's reg_norm), so these are per-entry weights 10^-2 .. 10^2 (the low
/// end of the paper's unnormalised grid for its 100-class sets); a fixed grid such as 1e-4 .. 1
/// is far too weak at K = 100 (test NLL 10.6 against ts's 2.1 on a CIFAR-100-shaped dump), and
/// per-entry weights of 10^4 and more made the fits too ill-conditioned to converge reliably.
std::string default_odir_grid(std::int64_t k) {
  const double scale = static_cast<double>(k) * static_cast<double>(k - 1);
  return fmt::format("{:.17g},{:.17g},{:.17g},{:.17g},{:.17g}", 1e-2 * scale, 1e-1 * scale, 1.0 * scale, 1e1 * scale,
                     1e2 * scale);
}

/// dir_l2's default candidates: 10^e K (K + 1) for e = -4 .. 0, per-entry weights 10^-4 .. 1
/// of the normalised penalty. The L2 penalty pulls [W | b] towards 0, the uniform prediction,
/// not towards the identity as ODIR's does, so its useful weights are smaller.
std::string default_l2_grid(std::int64_t k) {
  const double scale = static_cast<double>(k) * static_cast<double>(k + 1);
  return fmt::format("{:.17g},{:.17g},{:.17g},{:.17g},{:.17g}", 1e-4 * scale, 1e-3 * scale, 1e-2 * scale, 1e-1 * scale,
                     scale);
}

/// What a family fits: the map, its input, its penalty.
struct regularised_family {
  logit_map map;
  bool log_softmax;
  penalty_form form;
};

/// Fold of each of n rows: a Fisher-Yates shuffle of 0..n-1 (for i = n-1 down to 1, swap
/// positions i and below(i + 1) of splitmix64(seed 15)), cut into k_odir_folds contiguous
/// blocks, the first n mod 5 of them one row longer (sklearn KFold's sizes).
std::vector<std::int64_t> odir_folds(std::int64_t n) {
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  splitmix64 rng(k_odir_fold_seed);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(perm[static_cast<std::size_t>(i)],
              perm[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  std::vector<std::int64_t> fold(static_cast<std::size_t>(n));
  std::int64_t pos = 0;
  for (std::int64_t f = 0; f < k_odir_folds; ++f) {
    const std::int64_t size = n / k_odir_folds + (f < n % k_odir_folds ? 1 : 0);
    for (std::int64_t r = 0; r < size; ++r) fold[static_cast<std::size_t>(perm[static_cast<std::size_t>(pos++)])] = f;
  }
  return fold;
}

/// The mean held-out NLL of penalty `pen` over the folds.
double held_out_nll(logit_map map, const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                    std::int64_t k, const std::vector<std::int64_t>& fold, std::int64_t iterations,
                    const std::string& where, const map_penalty& pen, progress& shown) {
  const auto n = static_cast<std::int64_t>(labels.size());
  double total = 0;
  for (std::int64_t f = 0; f < k_odir_folds; ++f, shown.step()) {
    std::vector<double> z_fit, z_held;
    std::vector<std::int32_t> y_fit, y_held;
    for (std::int64_t i = 0; i < n; ++i) {
      const bool held = fold[static_cast<std::size_t>(i)] == f;
      auto& zs = held ? z_held : z_fit;
      zs.insert(zs.end(), z.begin() + i * k, z.begin() + (i + 1) * k);
      (held ? y_held : y_fit).push_back(labels[static_cast<std::size_t>(i)]);
    }
    const auto r = fit_logit_map(map, z_fit, y_fit, k, iterations, where, pen);
    std::vector<double> gradient;
    total += logit_map_nll(map, r.params, z_held, y_held, k, gradient);
  }
  return total / static_cast<double>(k_odir_folds);
}

/// Cross-validates the request's grid (odir: lambda = mu; l2: lambda); fills the record's
/// candidates and returns the penalty with the lowest held-out NLL (the first on ties; NaN never wins).
map_penalty cross_validate(const fit_input& in, const regularised_family& family, const std::vector<double>& z,
                           std::int64_t iterations, const std::string& where, odir_record& record) {
  const std::string& method = in.request.method;
  const bool odir = family.form == penalty_form::odir;
  const std::int64_t k = in.val.num_classes, n = in.val.num_samples;
  if (n < k_odir_folds)
    throw input_error(fmt::format("{}: {} needs at least {} validation samples for its cross-validation (or give {})",
                                  where, method, k_odir_folds, odir ? "--odir-lambda and --odir-mu" : "--l2-lambda"));
  const std::string fallback = odir ? default_odir_grid(k) : default_l2_grid(k);
  const std::vector<double> grid = parse_grid(in.request.grid.empty() ? fallback : in.request.grid, "--grid");
  for (double c : grid) {
    if (!(c >= 0) || !std::isfinite(c))
      throw input_error(fmt::format("--grid: {} candidates {} must be finite and >= 0 (got {})", method,
                                    odir ? "lambda = mu" : "lambda", c));
  }
  const std::vector<std::int64_t> fold = odir_folds(n);
  double best = k_inf;
  map_penalty chosen{0, 0, family.form};
  progress shown(method + " cross-validation", static_cast<std::int64_t>(grid.size()) * k_odir_folds, "folds");
  for (double c : grid) {
    const map_penalty pen{c, odir ? c : 0.0, family.form};
    shown.detail(fmt::format("penalty {}", c));
    const double mean = held_out_nll(family.map, z, in.val.labels, k, fold, iterations, where, pen, shown);
    record.cv_lambdas.push_back(pen.lambda);
    record.cv_mus.push_back(pen.mu);
    record.cv_nll.push_back(mean);
    if (mean < best) {
      best = mean;
      chosen = pen;
    }
  }
  if (!(best < k_inf)) throw input_error(fmt::format("{}: {}: no candidate has a finite held-out NLL", where, method));
  return chosen;
}

/// The fixed penalty of the request, if it gives one.
std::optional<map_penalty> given_penalty(const fit_request& r, penalty_form form) {
  if (form == penalty_form::odir) return r.odir;
  if (r.l2_lambda) return map_penalty{*r.l2_lambda, 0.0, form};
  return std::nullopt;
}

fitted fit_regularised(const fit_input& in, const regularised_family& family, bool cross_validates) {
  const split_data& val = in.val;
  const std::int64_t k = val.num_classes;
  const std::string where = val.file + ": " + val.values_path();
  const std::int64_t iterations = in.request.iterations.value_or(k_default_lbfgs_iterations);
  const std::vector<double> z = finite_logits(logit_map_input(val, family.log_softmax), val, in.request.method);
  odir_record record;
  const auto given = given_penalty(in.request, family.form);
  if (given)
    record.penalty = *given;
  else if (cross_validates)
    record.penalty = cross_validate(in, family, z, iterations, where, record);
  else
    record.penalty = {0, 0, family.form};
  auto r = fit_logit_map(family.map, z, val.labels, k, iterations, where, record.penalty);
  if (family.form == penalty_form::l2 && family.map == logit_map::matrix) r.params = reference_row_form(r.params, k);
  std::vector<double> gradient;
  const double final_nll = logit_map_nll(family.map, r.params, z, val.labels, k, gradient);
  record.objective = r.nll;
  auto m = std::make_shared<affine_logit_map>(in.request.method, family.map, family.log_softmax);
  m->set_fit(r, k, final_nll);
  m->set_odir(std::move(record));
  return {m, {}};
}

/// `cross_validates`: without a fixed penalty, the penalty is cross-validated (else 0).
method_info regularised_method(std::string name, regularised_family family, bool cross_validates) {
  method_info m;
  m.name = name;
  if (family.form == penalty_form::odir)
    m.options = {"grid", "iterations", "odir_lambda", "odir_mu"};
  else if (cross_validates)
    m.options = {"grid", "iterations", "l2_lambda"};
  else
    m.options = {"iterations", "l2_lambda"};
  m.fit = [family, cross_validates](const fit_input& in) { return fit_regularised(in, family, cross_validates); };
  m.load = [name, family](const nlohmann::json& p, const std::string& where) {
    return affine_logit_map::load(name, family.map, family.log_softmax, family.form, p, where);
  };
  return m;
}

}  // namespace

std::vector<method_info> regularised_map_methods() {
  return {regularised_method("ms_odir", {logit_map::matrix, false, penalty_form::odir}, true),
          regularised_method("dir_odir", {logit_map::matrix, true, penalty_form::odir}, true),
          regularised_method("dir_l2", {logit_map::matrix, true, penalty_form::l2}, true),
          regularised_method("dir_diag", {logit_map::vector, true, penalty_form::l2}, false)};
}

}  // namespace calibench
