// Mix-n-Match's multiclass isotonic calibrators (Zhang, Kailkhura and Han, ICML 2020;
// zhang64-llnl/Mix-n-Match-Calibration, util_calibration.py at d0dbd5a and demo_calibration.py
// at 330b487; docs/calibrators.md): `irova` fits one isotonic regression per class on
// (p_ij, [y_i = j]), `irm` one on all N K pairs pooled, `irova_ts` is irova on the probabilities
// of temperature scaling fitted by the mean squared error (the demo's "TS + IROvA"). Each maps
// p_ij to iso(p_ij) + 1e-9 p_ij, as the code does, and then divides every row by its sum (the
// code returns the unnormalised rows; calibench's outputs are probabilities). The prediction is
// the argmax of the calibrated row. Isotonic regression as scikit-learn's (isotonic_fit.hpp).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/isotonic_fit.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

/// The code's strictly increasing term: iso(p) + 1e-9 p keeps ties broken by p.
constexpr double k_tie_break = 1e-9;

enum class pooling { per_class, pooled };

/// Softmax of z / t row by row (z N x K row-major; t = 1: the uncalibrated probabilities).
std::vector<double> softmax_at(const std::vector<double>& z, std::int64_t k, double t) {
  std::vector<double> p(z.size());
  const auto n = static_cast<std::int64_t>(z.size()) / k;
#pragma omp parallel for schedule(static) if (z.size() > (std::size_t{1} << 18))
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = z.data() + i * k;
    double m = -INFINITY;
    for (std::int64_t j = 0; j < k; ++j) m = std::max(m, row[j]);
    double s = 0;
    for (std::int64_t j = 0; j < k; ++j) s += (p[i * k + j] = std::exp((row[j] - m) / t));
    for (std::int64_t j = 0; j < k; ++j) p[i * k + j] /= s;
  }
  return p;
}

/// Mix-n-Match's mse_t: mean over the N K entries of (softmax(z / t) - onehot)^2; per-row sums
/// added in row order (the same value for any number of threads).
double mse_at(const std::vector<double>& z, const std::vector<std::int32_t>& labels, std::int64_t k, double t) {
  const std::vector<double> p = softmax_at(z, k, t);
  const auto n = static_cast<std::int64_t>(labels.size());
  std::vector<double> rows(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static) if (p.size() > (std::size_t{1} << 18))
  for (std::int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double d = p[i * k + j] - (j == labels[i] ? 1.0 : 0.0);
      s += d * d;
    }
    rows[i] = s;
  }
  double total = 0;
  for (double r : rows) total += r;
  return total / static_cast<double>(n * k);
}

/// The temperature in Mix-n-Match's bounds [0.05, 5] minimising mse_at: the best of 60
/// log-spaced temperatures, then golden-section search between its neighbours (to the last
/// bits). Mix-n-Match runs L-BFGS-B from t = 1 (tol 1e-12); both find the same minimum when
/// the objective has one in the bounds, which the tests check.
std::pair<double, double> fit_temperature_mse(const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                                              std::int64_t k) {
  constexpr int grid = 60;
  constexpr double lo_t = 0.05, hi_t = 5.0;
  auto t_of = [&](int i) { return lo_t * std::pow(hi_t / lo_t, static_cast<double>(i) / (grid - 1)); };
  int best = 0;
  double best_value = INFINITY;
  for (int i = 0; i < grid; ++i) {
    const double v = mse_at(z, labels, k, t_of(i));
    if (v < best_value) best = i, best_value = v;
  }
  double a = t_of(std::max(best - 1, 0)), b = t_of(std::min(best + 1, grid - 1));
  const double r = (std::sqrt(5.0) - 1.0) / 2.0;
  double c = b - r * (b - a), d = a + r * (b - a);
  double fc = mse_at(z, labels, k, c), fd = mse_at(z, labels, k, d);
  for (int it = 0; it < 200 && b - a > 1e-15 * b; ++it) {
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - r * (b - a), fc = mse_at(z, labels, k, c);
    } else {
      a = c, c = d, fc = fd, d = a + r * (b - a), fd = mse_at(z, labels, k, d);
    }
  }
  const double t = fc < fd ? c : d;
  const double v = std::min(fc, fd);
  return v < best_value ? std::pair{t, v} : std::pair{t_of(best), best_value};
}

class mixnmatch_map final : public calibration_map {
 public:
  mixnmatch_map(pooling pool, double temperature, double mse, std::vector<isotonic_knots> maps)
      : pool_(pool), temperature_(temperature), mse_(mse), maps_(std::move(maps)) {}

  nlohmann::json params() const override {
    nlohmann::json j = nlohmann::json::object();
    if (temperature_ != 1.0 || mse_ >= 0) {
      j["temperature"] = temperature_;
      j["temperature_mse"] = mse_;
    }
    if (pool_ == pooling::pooled) {
      j["x"] = maps_.front().x;
      j["y"] = maps_.front().y;
      return j;
    }
    j["classes"] = nlohmann::json::array();
    for (const auto& m : maps_) j["classes"].push_back({{"x", m.x}, {"y", m.y}});
    return j;
  }

  scored_split apply(const split_data& split) const override {
    const std::int64_t k = split.num_classes;
    if (pool_ == pooling::per_class && static_cast<std::int64_t>(maps_.size()) != k)
      throw input_error(fmt::format("{}: {}: this calibrator has {} per-class maps but the split has K = {}",
                                    split.file, split.values_path(), maps_.size(), k));
    std::vector<double> p =
        temperature_ == 1.0 ? uncalibrated(split).probs : softmax_at(logits_of(split), k, temperature_);
    const auto n = split.num_samples;
#pragma omp parallel for schedule(static) if (p.size() > (std::size_t{1} << 16))
    for (std::int64_t i = 0; i < n; ++i) {
      double* row = p.data() + i * k;
      double s = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        const isotonic_knots& m = pool_ == pooling::pooled ? maps_.front() : maps_[static_cast<std::size_t>(j)];
        s += (row[j] = isotonic_at(m, row[j]) + k_tie_break * row[j]);
      }
      for (std::int64_t j = 0; j < k; ++j) row[j] /= s;
    }
    return score_split(derived(split, std::move(p), true));
  }

  static std::shared_ptr<const calibration_map> load(pooling pool, bool with_temperature, const nlohmann::json& p,
                                                     const std::string& where, const char* method) {
    double t = 1.0, mse = -1.0;
    if (with_temperature) {
      t = p.at("temperature").get<double>();
      mse = p.value("temperature_mse", -1.0);
      if (!(t > 0) || !std::isfinite(t))
        throw input_error(fmt::format("{}: {} needs a finite temperature > 0 (got {})", where, method, t));
    }
    std::vector<isotonic_knots> maps;
    if (pool == pooling::pooled) {
      maps.push_back({p.at("x").get<std::vector<double>>(), p.at("y").get<std::vector<double>>()});
    } else {
      for (const auto& c : p.at("classes"))
        maps.push_back({c.at("x").get<std::vector<double>>(), c.at("y").get<std::vector<double>>()});
      if (maps.size() < 2) throw input_error(fmt::format("{}: {} needs one map per class (K >= 2)", where, method));
    }
    for (const auto& m : maps) check_knots(m, where, method);
    return std::make_shared<mixnmatch_map>(pool, t, mse, std::move(maps));
  }

 private:
  pooling pool_;
  double temperature_;
  double mse_;  ///< irova_ts: the fitted temperature's mean squared error; -1 otherwise
  std::vector<isotonic_knots> maps_;
};

/// The isotonic maps of probabilities p (N x K) against the one-hot labels.
std::vector<isotonic_knots> fit_maps(const std::vector<double>& p, const split_data& val, pooling pool) {
  const std::int64_t n = val.num_samples, k = val.num_classes;
  if (pool == pooling::pooled) {
    std::vector<std::uint8_t> hit(static_cast<std::size_t>(n * k));
    for (std::int64_t i = 0; i < n; ++i) hit[i * k + val.labels[i]] = 1;
    return {fit_isotonic(p, hit)};
  }
  std::vector<isotonic_knots> maps(static_cast<std::size_t>(k));
#pragma omp parallel
  {
    std::vector<double> x(static_cast<std::size_t>(n));
    std::vector<std::uint8_t> hit(static_cast<std::size_t>(n));
#pragma omp for schedule(dynamic)
    for (std::int64_t j = 0; j < k; ++j) {
      for (std::int64_t i = 0; i < n; ++i) {
        x[i] = p[i * k + j];
        hit[i] = val.labels[i] == j ? 1 : 0;
      }
      maps[static_cast<std::size_t>(j)] = fit_isotonic(x, hit);
    }
  }
  return maps;
}

fitted fit_irova(const fit_input& in) {
  return {std::make_shared<mixnmatch_map>(pooling::per_class, 1.0, -1.0,
                                          fit_maps(uncalibrated(in.val).probs, in.val, pooling::per_class)),
          {}};
}

fitted fit_irm(const fit_input& in) {
  return {std::make_shared<mixnmatch_map>(pooling::pooled, 1.0, -1.0,
                                          fit_maps(uncalibrated(in.val).probs, in.val, pooling::pooled)),
          {}};
}

fitted fit_irova_ts(const fit_input& in) {
  const split_data& val = in.val;
  // log p of a probability dump: a zero is -inf, which softmax(z / T) turns back into 0.
  const std::vector<double> z = logits_of(val);
  const auto [t, mse] = fit_temperature_mse(z, val.labels, val.num_classes);
  return {std::make_shared<mixnmatch_map>(pooling::per_class, t, mse,
                                          fit_maps(softmax_at(z, val.num_classes, t), val, pooling::per_class)),
          {}};
}

}  // namespace

std::vector<method_info> mixnmatch_isotonic_methods() {
  method_info irova, irm, irova_ts;
  irova.name = "irova";
  irova.fit = fit_irova;
  irova.load = [](const nlohmann::json& p, const std::string& where) {
    return mixnmatch_map::load(pooling::per_class, false, p, where, "irova");
  };
  irm.name = "irm";
  irm.fit = fit_irm;
  irm.load = [](const nlohmann::json& p, const std::string& where) {
    return mixnmatch_map::load(pooling::pooled, false, p, where, "irm");
  };
  irova_ts.name = "irova_ts";
  irova_ts.fit = fit_irova_ts;
  irova_ts.load = [](const nlohmann::json& p, const std::string& where) {
    return mixnmatch_map::load(pooling::per_class, true, p, where, "irova_ts");
  };
  return {irova, irm, irova_ts};
}

}  // namespace calibench
