// Structured matrix scaling (sms; Berta, Holzmueller, Jordan and Bach 2025, as probmetrics
// 1.3.0's get_calibrator("sms") = SMSCalibrator() computes it; docs/calibrators.md and the port
// note docs/ports/sms.md): probmetrics' fast temperature scaling (30 bisection steps on the sign
// of dNLL/dbeta), the "ts-mix" features x = log((1 - c) softmax(beta l) + c / K) with
// c = 1 / (N + 1), then the matrix map softmax(W x + b) fitted by the mean NLL plus the ridge
// penalty (K(K-1)/N) sum_{i != j} W_ij^2 + (K/N) sum_i (W_ii - 1)^2 + (K/N) |b|^2 (penalty_form::sms),
// minimised in float64 by the logit-map L-BFGS. probmetrics runs the same objective in float32 with
// torchmin's BFGS and stops up to 1e-2 away in probability; calibench converges it.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/logit_maps.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

/// probmetrics' clip of log p: log(float32 tiny) evaluated in float32 (not ln 2^-126 in double).
constexpr double k_log_tiny32 = -87.3365478515625;
/// The bisection of u = log beta: probmetrics' interval [-16, 16] and its 30 steps.
constexpr double k_log_beta_bound = 16;
constexpr int k_bisection_steps = 30;

/// l = max(log_softmax(z), log tiny32), row-major N x K (log p for probability dumps; a
/// probability of 0 gives the clip).
std::vector<double> clipped_log_probs(const split_data& split) {
  std::vector<double> l = logit_map_input(split, true);
  for (double& v : l)
    if (v < k_log_tiny32) v = k_log_tiny32;
  return finite_logits(std::move(l), split, "sms");
}

/// dNLL/dbeta of temperature scaling softmax(beta l) at beta: mean_i sum_k l_ik softmax_k - mean_i l_{i, y_i}.
double ts_derivative(const std::vector<double>& l, const std::vector<std::int32_t>& labels, std::int64_t k,
                     double beta) {
  double expected = 0, observed = 0;
  std::vector<double> e(static_cast<std::size_t>(k));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const double* row = l.data() + static_cast<std::int64_t>(i) * k;
    double m = beta * row[0];
    for (std::int64_t j = 1; j < k; ++j) m = std::max(m, beta * row[j]);
    double sum = 0, weighted = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      e[j] = std::exp(beta * row[j] - m);
      sum += e[j];
      weighted += row[j] * e[j];
    }
    expected += weighted / sum;
    observed += row[labels[i]];
  }
  const auto n = static_cast<double>(labels.size());
  return expected / n - observed / n;
}

/// probmetrics' TemperatureScalingCalibrator._fit_bisection: a = -16, b = 16; 30 times c = a +
/// (b - a)/2, b = c where the derivative at e^c is > 0, else a = c; beta = e^((a + b)/2).
double bisect_inverse_temperature(const std::vector<double>& l, const std::vector<std::int32_t>& labels,
                                  std::int64_t k) {
  double a = -k_log_beta_bound, b = k_log_beta_bound;
  for (int step = 0; step < k_bisection_steps; ++step) {
    const double c = a + 0.5 * (b - a);
    if (ts_derivative(l, labels, k, std::exp(c)) > 0)
      b = c;
    else
      a = c;
  }
  return std::exp(0.5 * (a + b));
}

/// x = log((1 - c) softmax(beta l) + c / K), as logaddexp(log1p(-c) + log_softmax(beta l), log(c / K)).
std::vector<double> ts_mix_features(const std::vector<double>& l, std::int64_t k, double beta, double c) {
  std::vector<double> x(l.size());
  const double log_keep = std::log1p(-c), log_floor = std::log(c / static_cast<double>(k));
  for (std::size_t r = 0; r < l.size() / static_cast<std::size_t>(k); ++r) {
    const double* row = l.data() + r * k;
    double* out = x.data() + r * k;
    double m = beta * row[0];
    for (std::int64_t j = 1; j < k; ++j) m = std::max(m, beta * row[j]);
    double sum = 0;
    for (std::int64_t j = 0; j < k; ++j) sum += std::exp(beta * row[j] - m);
    const double lse = m + std::log(sum);
    for (std::int64_t j = 0; j < k; ++j) {
      const double a = log_keep + beta * row[j] - lse, hi = std::max(a, log_floor), lo = std::min(a, log_floor);
      out[j] = hi + std::log1p(std::exp(lo - hi));
    }
  }
  return x;
}

/// A fitted sms calibrator: the temperature and mixture of its features, the matrix map and the fit's record.
struct sms_state {
  double inverse_temperature = 1, mix_weight = 0;
  std::int64_t fit_rows = 0, classes = 0;
  std::vector<double> params;  ///< [W row-major, b] (logit_map::matrix)
  map_penalty penalty;
  double objective = 0, nll = 0;
  std::int64_t iterations = 0;
  std::string stop;
};

class sms_map final : public calibration_map {
 public:
  explicit sms_map(sms_state s) : s_(std::move(s)) {}

  nlohmann::json params() const override {
    const std::int64_t k = s_.classes;
    return {{"temperature", 1.0 / s_.inverse_temperature},
            {"inverse_temperature", s_.inverse_temperature},
            {"mix_weight", s_.mix_weight},
            {"fit_rows", s_.fit_rows},
            {"matrix", std::vector<double>(s_.params.begin(), s_.params.begin() + k * k)},
            {"biases", std::vector<double>(s_.params.begin() + k * k, s_.params.end())},
            {"lambda_off_diagonal", s_.penalty.lambda},
            {"lambda_diagonal", s_.penalty.diagonal},
            {"lambda_intercept", s_.penalty.mu},
            {"final_objective", s_.objective},
            {"final_nll", s_.nll},
            {"iterations_run", s_.iterations},
            {"stop", s_.stop}};
  }

  scored_split apply(const split_data& split) const override {
    const std::int64_t k = split.num_classes;
    if (static_cast<std::int64_t>(s_.params.size()) != k * k + k)
      throw input_error(fmt::format("{}: {}: sms was fitted with {} parameters, K = {} needs {}", split.file,
                                    split.values_path(), s_.params.size(), k, k * k + k));
    const std::vector<double> x = ts_mix_features(clipped_log_probs(split), k, s_.inverse_temperature, s_.mix_weight);
    return score_split(derived(split, apply_logit_map(logit_map::matrix, s_.params, x, k), false));
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    sms_state s;
    s.inverse_temperature = p.at("inverse_temperature").get<double>();
    s.mix_weight = p.at("mix_weight").get<double>();
    s.fit_rows = p.value("fit_rows", std::int64_t{0});
    const auto w = p.at("matrix").get<std::vector<double>>();
    const auto b = p.at("biases").get<std::vector<double>>();
    if (!(s.inverse_temperature > 0) || !std::isfinite(s.inverse_temperature))
      throw input_error(
          fmt::format("{}: sms needs a finite inverse_temperature > 0 (got {})", where, s.inverse_temperature));
    if (!(s.mix_weight > 0 && s.mix_weight < 1))
      throw input_error(fmt::format("{}: sms needs a mix_weight in (0, 1) (got {})", where, s.mix_weight));
    if (b.empty() || w.size() != b.size() * b.size())
      throw input_error(
          fmt::format("{}: sms needs a K x K matrix and K biases (got {} and {})", where, w.size(), b.size()));
    s.classes = static_cast<std::int64_t>(b.size());
    s.params = w;
    s.params.insert(s.params.end(), b.begin(), b.end());
    for (std::size_t i = 0; i < s.params.size(); ++i)
      if (!std::isfinite(s.params[i])) throw input_error(fmt::format("{}: sms parameter {} is not finite", where, i));
    s.penalty = {p.value("lambda_off_diagonal", 0.0), p.value("lambda_intercept", 0.0), penalty_form::sms,
                 p.value("lambda_diagonal", 0.0)};
    s.objective = p.value("final_objective", 0.0);
    s.nll = p.value("final_nll", 0.0);
    s.iterations = p.value("iterations_run", std::int64_t{0});
    s.stop = p.value("stop", std::string());
    return std::make_shared<sms_map>(std::move(s));
  }

 private:
  sms_state s_;
};

fitted fit_sms(const fit_input& in) {
  const split_data& val = in.val;
  const std::int64_t k = val.num_classes, n = val.num_samples;
  const std::string where = val.file + ": " + val.values_path();
  if (k < 2) throw input_error(fmt::format("{}: sms needs K >= 2 classes (got {})", where, k));
  const std::vector<double> l = clipped_log_probs(val);
  sms_state s;
  s.fit_rows = n;
  s.classes = k;
  s.inverse_temperature = bisect_inverse_temperature(l, val.labels, k);
  s.mix_weight = 1.0 / static_cast<double>(n + 1);
  const std::vector<double> x = ts_mix_features(l, k, s.inverse_temperature, s.mix_weight);
  const double kd = static_cast<double>(k), nd = static_cast<double>(n);
  s.penalty = {kd * (kd - 1) / nd, kd / nd, penalty_form::sms, kd / nd};
  const auto r = fit_logit_map(logit_map::matrix, x, val.labels, k,
                               in.request.iterations.value_or(k_default_lbfgs_iterations), where, s.penalty);
  s.params = r.params;
  s.objective = r.nll;
  s.iterations = r.iterations;
  s.stop = r.stop;
  std::vector<double> gradient;
  s.nll = logit_map_nll(logit_map::matrix, r.params, x, val.labels, k, gradient);
  return {std::make_shared<sms_map>(std::move(s)), {}};
}

}  // namespace

std::vector<method_info> structured_matrix_methods() {
  method_info m;
  m.name = "sms";
  m.options = {"iterations"};
  m.fit = fit_sms;
  m.load = sms_map::load;
  return {m};
}

}  // namespace calibench
