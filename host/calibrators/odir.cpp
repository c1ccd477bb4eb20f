// ODIR-regularised matrix maps (Kull et al. 2019, docs/calibrators.md): ms_odir is matrix
// scaling of the logits and dir_odir Dirichlet calibration (matrix scaling of log p), both
// with the off-diagonal and intercept penalty; (lambda, mu) from --odir-lambda/--odir-mu or by
// 5-fold cross-validation of the held-out NLL over lambda = mu candidates.
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
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
double held_out_nll(const std::vector<double>& z, const std::vector<std::int32_t>& labels, std::int64_t k,
                    const std::vector<std::int64_t>& fold, std::int64_t iterations, const std::string& where,
                    const odir_penalty& pen) {
  const auto n = static_cast<std::int64_t>(labels.size());
  double total = 0;
  for (std::int64_t f = 0; f < k_odir_folds; ++f) {
    std::vector<double> z_fit, z_held;
    std::vector<std::int32_t> y_fit, y_held;
    for (std::int64_t i = 0; i < n; ++i) {
      const bool held = fold[static_cast<std::size_t>(i)] == f;
      auto& zs = held ? z_held : z_fit;
      zs.insert(zs.end(), z.begin() + i * k, z.begin() + (i + 1) * k);
      (held ? y_held : y_fit).push_back(labels[static_cast<std::size_t>(i)]);
    }
    const auto r = fit_logit_map(logit_map::matrix, z_fit, y_fit, k, iterations, where, pen);
    std::vector<double> gradient;
    total += logit_map_nll(logit_map::matrix, r.params, z_held, y_held, k, gradient);
  }
  return total / static_cast<double>(k_odir_folds);
}

/// Cross-validates lambda = mu over the request's grid; fills the record's candidates and
/// returns the penalty with the lowest held-out NLL (the first on ties; NaN never wins).
odir_penalty cross_validate(const fit_input& in, const std::vector<double>& z, std::int64_t iterations,
                            const std::string& where, odir_record& record) {
  const std::string& method = in.request.method;
  const std::int64_t k = in.val.num_classes, n = in.val.num_samples;
  if (n < k_odir_folds)
    throw input_error(
        fmt::format("{}: {} needs at least {} validation samples for its cross-validation "
                    "(or give --odir-lambda and --odir-mu)",
                    where, method, k_odir_folds));
  const std::vector<double> grid =
      parse_grid(in.request.grid.empty() ? default_odir_grid(k) : in.request.grid, "--grid");
  for (double c : grid) {
    if (!(c >= 0) || !std::isfinite(c))
      throw input_error(fmt::format("--grid: {} candidates lambda = mu must be finite and >= 0 (got {})", method, c));
  }
  const std::vector<std::int64_t> fold = odir_folds(n);
  double best = k_inf;
  odir_penalty chosen;
  for (double c : grid) {
    const odir_penalty pen{c, c};
    const double mean = held_out_nll(z, in.val.labels, k, fold, iterations, where, pen);
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

fitted fit_odir(const fit_input& in, bool log_softmax) {
  const split_data& val = in.val;
  const std::int64_t k = val.num_classes;
  const std::string where = val.file + ": " + val.values_path();
  const std::int64_t iterations = in.request.iterations.value_or(k_default_lbfgs_iterations);
  const std::vector<double> z = finite_logits(logit_map_input(val, log_softmax), val, in.request.method);
  odir_record record;
  record.penalty = in.request.odir ? *in.request.odir : cross_validate(in, z, iterations, where, record);
  const auto r = fit_logit_map(logit_map::matrix, z, val.labels, k, iterations, where, record.penalty);
  std::vector<double> gradient;
  const double final_nll = logit_map_nll(logit_map::matrix, r.params, z, val.labels, k, gradient);
  record.objective = r.nll;
  auto m = std::make_shared<affine_logit_map>(in.request.method, logit_map::matrix, log_softmax);
  m->set_fit(r, k, final_nll);
  m->set_odir(std::move(record));
  return {m, {}};
}

method_info odir_method(std::string name, bool log_softmax) {
  method_info m;
  m.name = name;
  m.options = {"grid", "iterations", "odir_lambda", "odir_mu"};
  m.fit = [log_softmax](const fit_input& in) { return fit_odir(in, log_softmax); };
  m.load = [name, log_softmax](const nlohmann::json& p, const std::string& where) {
    return affine_logit_map::load(name, logit_map::matrix, log_softmax, true, p, where);
  };
  return m;
}

}  // namespace

std::vector<method_info> odir_methods() { return {odir_method("ms_odir", false), odir_method("dir_odir", true)}; }

}  // namespace calibench
