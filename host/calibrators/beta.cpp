// Beta calibration (beta; Kull, Silva Filho and Flach, AISTATS 2017; docs/calibrators.md): the
// map sigma(a ln p - b ln(1 - p) + c) of one probability p per row, fitted by unregularised
// maximum likelihood, with betacal 1.1.0's rule for a negative slope (betacal/python
// beta_calibration.py, commit cfbe464: fit (a, b, c); if a < 0 refit (b, c) with a = 0, else if
// b < 0 refit (a, c) with b = 0). p is clipped to [eps, 1 - eps] (float64 eps) as betacal does.
// K = 2: p = P(class 1) and the map gives the new P(class 1) (the prediction may change);
// K > 2: p is the top-label confidence, the map gives the new confidence, the other classes are
// rescaled and the prediction is kept (platt's and hist / iso's rule). Float64.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <span>
#include <utility>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/logistic.hpp"
#include "host/calibrators/one_vs_rest.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

enum class beta_mode { binary, top_label };

constexpr std::string_view mode_name(beta_mode m) { return m == beta_mode::binary ? "binary" : "top-label"; }

constexpr std::int64_t k_max_newton_steps = 200;

/// Parameters (a, b, c) of sigma(a x0 + b x1 + c), x0 = ln p, x1 = -ln(1 - p).
using beta_params = std::array<double, 3>;

/// The features x0 = ln p, x1 = -ln(1 - p) of each row (p clipped as betacal clips it) and its
/// 0/1 target (binary: label == 1; top-label: correct).
struct beta_data {
  std::vector<double> x0, x1, target;
};

beta_data data_of(const split_data& split, const scored_split& base, beta_mode mode) {
  const std::int64_t n = split.num_samples;
  constexpr double eps = std::numeric_limits<double>::epsilon();
  beta_data d{std::vector<double>(static_cast<std::size_t>(n)), std::vector<double>(static_cast<std::size_t>(n)),
              std::vector<double>(static_cast<std::size_t>(n))};
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = split.values.data() + i * split.num_classes;
    double p = 0;
    if (mode == beta_mode::binary) {
      p = split.is_probs ? row[1] : sigmoid(row[1] - row[0]);
      d.target[i] = split.labels[i] == 1 ? 1.0 : 0.0;
    } else {
      p = base.confidence[i];
      d.target[i] = base.prediction[i] == split.labels[i] ? 1.0 : 0.0;
    }
    p = std::clamp(p, eps, 1.0 - eps);
    d.x0[i] = std::log(p);
    d.x1[i] = -std::log(1.0 - p);
  }
  return d;
}

double linear(const beta_data& d, std::size_t i, const beta_params& w) {
  return w[0] * d.x0[i] + w[1] * d.x1[i] + w[2];
}

/// Mean negative log-likelihood, its gradient and Hessian in (a, b, c).
struct beta_objective {
  double value = 0;
  std::array<double, 3> g{};
  std::array<std::array<double, 3>, 3> h{};
};

beta_objective objective_at(const beta_data& d, const beta_params& w) {
  beta_objective o;
  for (std::size_t i = 0; i < d.x0.size(); ++i) {
    const double t = linear(d, i, w), y = d.target[i], p = sigmoid(t), q = p * (1.0 - p);
    const std::array<double, 3> x{d.x0[i], d.x1[i], 1.0};
    o.value += softplus(t) - y * t;
    for (int r = 0; r < 3; ++r) {
      o.g[r] += (p - y) * x[r];
      for (int c = 0; c < 3; ++c) o.h[r][c] += q * x[r] * x[c];
    }
  }
  const double n = static_cast<double>(d.x0.size());
  o.value /= n;
  for (int r = 0; r < 3; ++r) {
    o.g[r] /= n;
    for (int c = 0; c < 3; ++c) o.h[r][c] /= n;
  }
  return o;
}

/// Solves H dx = -g over the free parameters (Gaussian elimination with partial pivoting on the
/// free block); false when that block is singular.
bool newton_direction(const beta_objective& o, const std::array<bool, 3>& free, std::array<double, 3>& dx) {
  std::array<int, 3> idx{};
  int m = 0;
  for (int r = 0; r < 3; ++r) {
    if (free[r]) idx[m++] = r;
  }
  double a[3][4] = {};
  for (int r = 0; r < m; ++r) {
    for (int c = 0; c < m; ++c) a[r][c] = o.h[idx[r]][idx[c]];
    a[r][m] = -o.g[idx[r]];
  }
  for (int col = 0; col < m; ++col) {
    int pivot = col;
    for (int r = col + 1; r < m; ++r) {
      if (std::abs(a[r][col]) > std::abs(a[pivot][col])) pivot = r;
    }
    if (!(std::abs(a[pivot][col]) > 0) || !std::isfinite(a[pivot][col])) return false;
    for (int c = 0; c <= m; ++c) std::swap(a[col][c], a[pivot][c]);
    for (int r = col + 1; r < m; ++r) {
      const double f = a[r][col] / a[col][col];
      for (int c = col; c <= m; ++c) a[r][c] -= f * a[col][c];
    }
  }
  dx = {0.0, 0.0, 0.0};
  for (int r = m - 1; r >= 0; --r) {
    double v = a[r][m];
    for (int c = r + 1; c < m; ++c) v -= a[r][c] * dx[idx[c]];
    dx[idx[r]] = v / a[r][r];
  }
  return true;
}

struct beta_fit {
  beta_params w{};
  std::int64_t steps = 0;
  double nll = 0;
  std::string stop;
};

/// Damped Newton over the free parameters from the identity (1, 1, 0) (sigma(logit p) = p) with
/// platt's Armijo backtracking and stopping rules; a fixed parameter stays 0.
beta_fit newton(const beta_data& d, const std::array<bool, 3>& free) {
  beta_fit f;
  for (int r = 0; r < 3; ++r) f.w[r] = free[r] && r < 2 ? 1.0 : 0.0;
  beta_objective o = objective_at(d, f.w);
  f.stop = "iterations";
  for (; f.steps < k_max_newton_steps; ++f.steps) {
    std::array<double, 3> dx{};
    if (!newton_direction(o, free, dx)) {
      for (int r = 0; r < 3; ++r) dx[r] = free[r] ? -o.g[r] : 0.0;  // the weights underflowed: gradient
    }
    double slope = 0;
    for (int r = 0; r < 3; ++r) slope += o.g[r] * dx[r];
    if (-slope <= 1e-24) {
      f.stop = "converged";
      break;
    }
    double tau = 1;
    auto at = [&](double t) {
      beta_params w = f.w;
      for (int r = 0; r < 3; ++r) w[r] += t * dx[r];
      return w;
    };
    beta_objective next = objective_at(d, at(tau));
    const double rounding = 1e-15 * std::max(1.0, std::abs(o.value));
    const auto armijo = [&] { return next.value <= o.value + 1e-4 * tau * slope + rounding; };
    while (!armijo() && tau > 1e-12) {
      tau *= 0.5;
      next = objective_at(d, at(tau));
    }
    if (!armijo()) {
      f.stop = "line_search";
      break;
    }
    f.w = at(tau);
    o = next;
  }
  f.nll = o.value;
  return f;
}

class beta_map final : public calibration_map {
 public:
  beta_map(beta_mode mode, beta_params w, std::string form, std::int64_t iterations, double final_nll, std::string stop)
      : mode_(mode),
        w_(w),
        form_(std::move(form)),
        iterations_(iterations),
        final_nll_(final_nll),
        stop_(std::move(stop)) {}

  nlohmann::json params() const override {
    return {{"a", w_[0]},
            {"b", w_[1]},
            {"c", w_[2]},
            {"form", form_},
            {"multiclass", mode_name(mode_)},
            {"iterations_run", iterations_},
            {"final_nll", final_nll_},
            {"stop", stop_}};
  }

  scored_split apply(const split_data& split) const override {
    if (mode_ == beta_mode::binary && split.num_classes != 2)
      throw input_error(fmt::format("{}: {}: beta was fitted binary (K = 2) but this split has K = {}", split.file,
                                    split.values_path(), split.num_classes));
    scored_split base = uncalibrated(split);
    const beta_data d = data_of(split, base, mode_);
    const auto n = static_cast<std::size_t>(split.num_samples);
    if (mode_ == beta_mode::binary) {
      std::vector<double> z(2 * n, 0.0);  // logits [0, t]: softmax gives sigma(t) for class 1
      for (std::size_t i = 0; i < n; ++i) z[2 * i + 1] = linear(d, i, w_);
      return score_split(derived(split, std::move(z), false));
    }
    std::vector<double> top(n);
    for (std::size_t i = 0; i < n; ++i) top[i] = sigmoid(linear(d, i, w_));
    return rescale_top_label(std::move(base), top);
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    const beta_params w{p.at("a").get<double>(), p.at("b").get<double>(), p.at("c").get<double>()};
    const auto mode = p.at("multiclass").get<std::string>();
    if (!std::all_of(w.begin(), w.end(), [](double v) { return std::isfinite(v); }))
      throw input_error(fmt::format("{}: beta needs finite a, b and c", where));
    if (mode != mode_name(beta_mode::binary) && mode != mode_name(beta_mode::top_label))
      throw input_error(fmt::format("{}: beta multiclass must be binary or top-label (got '{}')", where, mode));
    return std::make_shared<beta_map>(mode == "binary" ? beta_mode::binary : beta_mode::top_label, w,
                                      p.value("form", std::string("abc")), p.value("iterations_run", std::int64_t{0}),
                                      p.value("final_nll", 0.0), p.value("stop", std::string()));
  }

 private:
  beta_mode mode_;
  beta_params w_;
  std::string form_;  ///< "abc", or "bc" / "ac" after betacal's refit with a = 0 / b = 0
  std::int64_t iterations_;
  double final_nll_;
  std::string stop_;
};

/// Refuses validation data whose maximum-likelihood fit does not exist or is not unique: one
/// target only, or a single probability value.
void check_fittable(const beta_data& d, const std::string& where, const char* target) {
  const auto ones = std::count_if(d.target.begin(), d.target.end(), [](double t) { return t > 0.5; });
  if (ones == 0 || ones == static_cast<std::ptrdiff_t>(d.target.size()))
    throw input_error(
        fmt::format("{}: every one of the {} validation rows has target {} ({}): the fit needs both "
                    "outcomes",
                    where, d.target.size(), ones > 0 ? 1 : 0, target));
  const auto [lo, hi] = std::minmax_element(d.x0.begin(), d.x0.end());
  if (*lo == *hi)
    throw input_error(
        fmt::format("{}: every validation probability is {}: the slopes are not identifiable", where, std::exp(*lo)));
  // A threshold on p that separates the targets makes the likelihood's supremum 1, at infinite
  // slopes (as for platt).
  constexpr double inf = std::numeric_limits<double>::infinity();
  double low[2] = {inf, inf}, high[2] = {-inf, -inf};
  for (std::size_t i = 0; i < d.x0.size(); ++i) {
    const int t = d.target[i] > 0.5 ? 1 : 0;
    low[t] = std::min(low[t], d.x0[i]);
    high[t] = std::max(high[t], d.x0[i]);
  }
  if (high[0] <= low[1] || high[1] <= low[0])
    throw input_error(
        fmt::format("{}: the validation probabilities separate the targets (target 0 in [{}, {}], "
                    "target 1 in [{}, {}]): the maximum-likelihood fit does not exist",
                    where, std::exp(low[0]), std::exp(high[0]), std::exp(low[1]), std::exp(high[1])));
}

/// The maximum-likelihood fit with betacal's rule; input_error (naming `where`) when the
/// parameters grow without bound.
beta_fit fit_beta_data(const beta_data& d, const std::string& where, std::string& form) {
  beta_fit f = newton(d, {true, true, true});
  form = "abc";
  if (f.w[0] < 0) {  // betacal: drop ln p and refit
    f = newton(d, {false, true, true});
    form = "bc";
  } else if (f.w[1] < 0) {  // betacal: drop -ln(1 - p) and refit
    f = newton(d, {true, false, true});
    form = "ac";
  }
  const double largest = std::max({std::abs(f.w[0]), std::abs(f.w[1]), std::abs(f.w[2])});
  if (largest > 1e6)  // separated by an interval of p (a or b < 0): the fit runs off
    throw input_error(
        fmt::format("{}: the parameters grow without bound ({} after {} Newton steps): the validation "
                    "probabilities separate the targets, so the maximum-likelihood fit does not exist",
                    where, largest, f.steps));
  return f;
}

/// The features of one probability, clipped as betacal clips it.
std::pair<double, double> features_of(double p) {
  constexpr double eps = std::numeric_limits<double>::epsilon();
  const double q = std::clamp(p, eps, 1.0 - eps);
  return {std::log(q), -std::log(1.0 - q)};
}

/// One class's map (--multiclass one-vs-rest): sigma(a ln p - b ln(1 - p) + c) of p_j.
class beta_score_map final : public score_map {
 public:
  beta_score_map(beta_fit f, std::string form) : f_(std::move(f)), form_(std::move(form)) {}
  double at(double p) const override {
    const auto [x0, x1] = features_of(p);
    return sigmoid(f_.w[0] * x0 + f_.w[1] * x1 + f_.w[2]);
  }
  nlohmann::json params() const override {
    return {{"a", f_.w[0]},        {"b", f_.w[1]},   {"c", f_.w[2]}, {"form", form_}, {"iterations_run", f_.steps},
            {"final_nll", f_.nll}, {"stop", f_.stop}};
  }

 private:
  beta_fit f_;
  std::string form_;
};

std::shared_ptr<const calibration_map> load_beta(const nlohmann::json& p, const std::string& where) {
  if (!is_one_vs_rest(p)) return beta_map::load(p, where);
  return load_one_vs_rest(
      p, where,
      [](const nlohmann::json& c, const std::string& w) {
        beta_fit f;
        f.w = {c.at("a").get<double>(), c.at("b").get<double>(), c.at("c").get<double>()};
        if (!std::all_of(f.w.begin(), f.w.end(), [](double v) { return std::isfinite(v); }))
          throw input_error(fmt::format("{}: beta needs finite a, b and c", w));
        f.steps = c.value("iterations_run", std::int64_t{0});
        f.nll = c.value("final_nll", 0.0);
        f.stop = c.value("stop", std::string());
        return std::make_shared<beta_score_map>(std::move(f), c.value("form", std::string("abc")));
      },
      "beta");
}

fitted fit_beta(const fit_input& in) {
  const split_data& val = in.val;
  if (in.request.multiclass == multiclass_rule::one_vs_rest) {
    return fit_one_vs_rest(
        in, class_score::probability,
        [](std::span<const double> p, std::span<const std::uint8_t> hit, const std::string& where) {
          beta_data d;
          for (std::size_t i = 0; i < p.size(); ++i) {
            const auto [x0, x1] = features_of(p[i]);
            d.x0.push_back(x0);
            d.x1.push_back(x1);
            d.target.push_back(hit[i]);
          }
          check_fittable(d, where, "this class");
          std::string form;
          beta_fit f = fit_beta_data(d, where, form);
          return std::make_shared<beta_score_map>(std::move(f), std::move(form));
        },
        "beta");
  }
  const bool top = in.request.multiclass == multiclass_rule::top_label || val.num_classes > 2;
  const beta_mode mode = top ? beta_mode::top_label : beta_mode::binary;
  const beta_data d = data_of(val, uncalibrated(val), mode);
  const std::string where = fmt::format("{}: {}: beta ({})", val.file, val.values_path(), mode_name(mode));
  check_fittable(d, where, mode == beta_mode::binary ? "label 1" : "a correct prediction");
  std::string form;
  const beta_fit f = fit_beta_data(d, where, form);
  return {std::make_shared<beta_map>(mode, f.w, form, f.steps, f.nll, f.stop), {}};
}

}  // namespace

std::vector<method_info> beta_methods() {
  method_info m;
  m.name = "beta";
  m.options = {"multiclass"};
  m.fit = fit_beta;
  m.load = load_beta;
  return {m};
}

}  // namespace calibench
