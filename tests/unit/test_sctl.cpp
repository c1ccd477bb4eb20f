// Class-wise loss scaling (host/calibrators/trained/sctl.hpp) and LS+ priors (host/calibrators/trained/lsplus.hpp):
// normalisations at exact values, weights, the analytic gradient against finite differences, the grid fit against a
// brute-force grid and NLopt's SLSQP, determinism, the per-run scaler, errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "common/error.hpp"
#include "host/calibrators/trained/lsplus.hpp"
#include "host/calibrators/trained/sctl.hpp"
#include "kernels/sctl_math.hpp"

namespace calibench {
namespace {

// A few ulp of values of order 1: the normalisations divide sums of K <= 100 terms.
constexpr double k_exact_tol = 1e-14;
// Central differences with step 1e-6 on a smooth function of order 1: truncation ~1e-12 and
// cancellation ~1e-10 relative.
constexpr double k_gradient_tol = 1e-6;
// How far below SLSQP's or a fine grid's objective the fit may not fall short: rounding of a
// sum of K squared residuals.
constexpr double k_objective_slack = 1e-12;

std::uint64_t test_seed() {
  const char* s = std::getenv("CALIBENCH_TEST_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : 20240611ULL;
}

struct loss_pair {
  std::vector<double> l0, l1;
};

/// L0 ~ |N(1, spread)| per class, L1 = L0 + N(0, step) (a first optimiser step).
loss_pair random_losses(std::mt19937_64& rng, std::int64_t k, double spread, double step) {
  std::normal_distribution<double> base(1.0, spread), move(0.0, step);
  loss_pair p;
  for (std::int64_t i = 0; i < k; ++i) {
    p.l0.push_back(std::abs(base(rng)));
    p.l1.push_back(p.l0.back() + move(rng));
  }
  return p;
}

TEST(SctlNormalise, ExactValues) {
  const std::vector<double> l{1.0, 2.0, 3.0};
  const auto nd = sctl_normalise(l, sctl_norm::nd);  // mean 2, unbiased std 1
  const auto mm = sctl_normalise(l, sctl_norm::mm);
  const auto cm = sctl_normalise(l, sctl_norm::cm);
  const std::vector<double> want_nd{-1.0, 0.0, 1.0}, want_mm{0.0, 0.5, 1.0}, want_cm{-0.5, 0.0, 0.5};
  for (std::size_t i = 0; i < l.size(); ++i) {
    EXPECT_NEAR(nd[i], want_nd[i], k_exact_tol);
    EXPECT_NEAR(mm[i], want_mm[i], k_exact_tol);
    EXPECT_NEAR(cm[i], want_cm[i], k_exact_tol);
  }
  // K = 2: unbiased std of {0, 1} is 1/sqrt(2).
  const auto two = sctl_normalise(std::vector<double>{0.0, 1.0}, sctl_norm::nd);
  EXPECT_NEAR(two[0], -std::sqrt(0.5), k_exact_tol);
  EXPECT_NEAR(two[1], std::sqrt(0.5), k_exact_tol);
}

TEST(SctlNormalise, EqualLossesGiveZerosNotNaN) {
  for (const auto norm : {sctl_norm::nd, sctl_norm::mm, sctl_norm::cm}) {
    for (double v : sctl_normalise(std::vector<double>(7, 0.3), norm)) EXPECT_EQ(v, 0.0);
  }
  const auto w = sctl_weights(std::vector<double>(4, 0.0), 0.5, 1.7);
  for (double x : w) EXPECT_EQ(x, 0.0);
}

TEST(SctlWeight, ShapeAndBounds) {
  EXPECT_EQ(sctl_weight(0.0, 1.0, 1.5), 0.0);
  for (double n : {-1e6, -50.0, -3.0, -0.1, 0.1, 3.0, 50.0, 1e6}) {
    for (double a : {0.1, 0.5, 3.45}) {
      for (double b : {1.5, 1.8, 2.0}) {
        const double w = sctl_weight(n, a, b);
        ASSERT_TRUE(std::isfinite(w)) << n << " " << a << " " << b;
        EXPECT_LE(std::abs(w), b / 2.0);
        EXPECT_NEAR(w, -sctl_weight(-n, a, b), k_exact_tol) << "odd in the normalised loss";
        EXPECT_EQ(w > 0, n > 0);
      }
    }
  }
  const std::vector<double> l{2.0, 1.0}, w{0.5, -0.25};
  EXPECT_DOUBLE_EQ(sctl_weighted_loss(l, w), 1.5 * 2.0 + 0.75 * 1.0);
}

TEST(SctlBox, AlphaUpperBoundIsHalfLogK) {
  EXPECT_DOUBLE_EQ(sctl_default_box(2).alpha_hi, std::log(2.0) / 2.0);
  EXPECT_DOUBLE_EQ(sctl_default_box(1000).alpha_hi, std::log(1000.0) / 2.0);
  EXPECT_DOUBLE_EQ(sctl_default_box(10).alpha_lo, 0.1);
  EXPECT_DOUBLE_EQ(sctl_default_box(10).beta_lo, 1.5);
  EXPECT_DOUBLE_EQ(sctl_default_box(10).beta_hi, 2.0);
  EXPECT_THROW(sctl_default_box(1), error);
}

TEST(SctlObjective, GradientMatchesCentralDifferences) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> ua(0.15, 2.0), ub(1.5, 2.0);
  for (std::int64_t k : {2, 3, 10, 100}) {
    for (int rep = 0; rep < 20; ++rep) {
      const loss_pair p = random_losses(rng, k, 0.5, 0.05);
      const auto n1 = sctl_normalise(p.l1, sctl_norm::nd);
      const double a = ua(rng), b = ub(rng);
      const auto g = sctl_objective_gradient(p.l0, p.l1, n1, a, b);
      constexpr double h = 1e-6;
      const double ga = (sctl_objective(p.l0, p.l1, n1, a + h, b) - sctl_objective(p.l0, p.l1, n1, a - h, b)) / (2 * h);
      const double gb = (sctl_objective(p.l0, p.l1, n1, a, b + h) - sctl_objective(p.l0, p.l1, n1, a, b - h)) / (2 * h);
      EXPECT_NEAR(g[0], ga, k_gradient_tol * (1.0 + std::abs(ga))) << "seed " << seed << " k " << k << " rep " << rep;
      EXPECT_NEAR(g[1], gb, k_gradient_tol * (1.0 + std::abs(gb))) << "seed " << seed << " k " << k << " rep " << rep;
    }
  }
}

/// The smallest objective over a fine grid of the box, the slow obvious way.
double brute_force_minimum(const loss_pair& p, const std::vector<double>& n1, const sctl_box& box, int points) {
  double best = INFINITY;
  for (int i = 0; i < points; ++i) {
    const double a = box.alpha_lo + (box.alpha_hi - box.alpha_lo) * i / (points - 1);
    for (int j = 0; j < points; ++j) {
      const double b = box.beta_lo + (box.beta_hi - box.beta_lo) * j / (points - 1);
      best = std::min(best, sctl_objective(p.l0, p.l1, n1, a, b));
    }
  }
  return best;
}

TEST(SctlFit, NeverWorseThanGridBruteForceOrSlsqp) {
  const std::uint64_t seed = test_seed();
  std::mt19937_64 rng(seed + 1);
  for (std::int64_t k : {2, 3, 10, 100}) {
    for (double spread : {0.01, 0.3, 2.0}) {
      for (const auto norm : {sctl_norm::nd, sctl_norm::mm, sctl_norm::cm}) {
        const loss_pair p = random_losses(rng, k, spread, 0.2 * spread);
        sctl_fit_options o;
        o.norm = norm;
        const sctl_fit_result r = fit_sctl(p.l0, p.l1, o);
        const std::string where = "seed " + std::to_string(seed) + " k " + std::to_string(k) + " spread " +
                                  std::to_string(spread) + " norm " + sctl_norm_name(norm);
        EXPECT_GE(r.alpha, r.box.alpha_lo) << where;
        EXPECT_LE(r.alpha, r.box.alpha_hi) << where;
        EXPECT_GE(r.beta, r.box.beta_lo) << where;
        EXPECT_LE(r.beta, r.box.beta_hi) << where;
        EXPECT_DOUBLE_EQ(r.objective, sctl_objective(p.l0, p.l1, r.normalised, r.alpha, r.beta)) << where;
        EXPECT_LE(r.objective, r.grid_objective) << where;
        ASSERT_TRUE(r.slsqp_run);
        EXPECT_LE(r.objective, r.slsqp_objective + k_objective_slack * (1.0 + r.slsqp_objective)) << where;
        EXPECT_LE(r.objective, r.start_objective) << where;
        const double brute = brute_force_minimum(p, r.normalised, r.box, k <= 10 ? 600 : 200);
        EXPECT_LE(r.objective, brute + k_objective_slack * (1.0 + brute)) << where;
        ASSERT_EQ(r.weights.size(), static_cast<std::size_t>(k));
        for (std::int64_t i = 0; i < k; ++i)
          EXPECT_EQ(r.weights[i], sctl_weight(r.normalised[i], r.alpha, r.beta)) << where;
      }
    }
  }
}

TEST(SctlFit, StartIsClippedIntoTheBoxForSmallK) {
  // K = 3: ln(3)/2 = 0.549 < 1, so SLSQP starts from (0.549, 1.5) as SciPy clips it.
  const sctl_fit_result r = fit_sctl(std::vector<double>{0.2, 0.9, 1.4}, std::vector<double>{0.25, 0.8, 1.3}, {});
  EXPECT_DOUBLE_EQ(r.start_alpha, std::log(3.0) / 2.0);
  EXPECT_DOUBLE_EQ(r.start_beta, 1.5);
}

TEST(SctlFit, BitIdenticalAcrossThreadCounts) {
  std::mt19937_64 rng(test_seed() + 2);
  const loss_pair p = random_losses(rng, 100, 0.4, 0.1);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const sctl_fit_result one = fit_sctl(p.l0, p.l1, {});
  omp_set_num_threads(std::max(2, threads));
  const sctl_fit_result many = fit_sctl(p.l0, p.l1, {});
  omp_set_num_threads(threads);
  EXPECT_EQ(one.alpha, many.alpha);
  EXPECT_EQ(one.beta, many.beta);
  EXPECT_EQ(one.objective, many.objective);
  EXPECT_EQ(one.grid_alpha, many.grid_alpha);
  EXPECT_EQ(one.grid_beta, many.grid_beta);
  EXPECT_EQ(one.slsqp_objective, many.slsqp_objective);
}

TEST(SctlFit, RejectsBadInput) {
  const std::vector<double> ok{0.1, 0.2, 0.3};
  EXPECT_THROW(fit_sctl(std::vector<double>{}, std::vector<double>{}, {}), input_error);
  EXPECT_THROW(fit_sctl(std::vector<double>{0.5}, std::vector<double>{0.4}, {}), input_error);
  EXPECT_THROW(fit_sctl(ok, std::vector<double>{0.1, 0.2}, {}), input_error);
  EXPECT_THROW(fit_sctl(ok, std::vector<double>{0.1, NAN, 0.3}, {}), input_error);
  EXPECT_THROW(fit_sctl(std::vector<double>{0.1, INFINITY, 0.3}, ok, {}), input_error);
  sctl_fit_options tiny;
  tiny.grid = 1;
  EXPECT_THROW(fit_sctl(ok, ok, tiny), input_error);
  EXPECT_THROW(parse_sctl_norm("gn"), input_error);
}

TEST(SctlScaler, FirstEvaluationStartsSecondFitsThenFrozen) {
  std::mt19937_64 rng(test_seed() + 3);
  const loss_pair p = random_losses(rng, 10, 0.4, 0.05);
  const loss_pair later = random_losses(rng, 10, 0.4, 0.05);
  sctl_scaler s;
  std::vector<double> scale(10);

  const double first = s.evaluate(p.l0, scale);
  const auto w0 = sctl_weights(sctl_normalise(p.l0, sctl_norm::nd), 1.0, 1.5);  // unclipped start
  EXPECT_DOUBLE_EQ(first, sctl_weighted_loss(p.l0, w0));
  for (int i = 0; i < 10; ++i) EXPECT_DOUBLE_EQ(scale[i], 1.0 + w0[i]);
  EXPECT_FALSE(s.fitted());

  const double second = s.evaluate(p.l1, scale);
  ASSERT_TRUE(s.fitted());
  const sctl_fit_result direct = fit_sctl(p.l0, p.l1, {});
  EXPECT_EQ(s.alpha(), direct.alpha);
  EXPECT_EQ(s.beta(), direct.beta);
  EXPECT_DOUBLE_EQ(second, sctl_weighted_loss(p.l1, direct.weights));

  const double third = s.evaluate(later.l0, scale);
  const auto w2 = sctl_weights(sctl_normalise(later.l0, sctl_norm::nd), direct.alpha, direct.beta);
  EXPECT_DOUBLE_EQ(third, sctl_weighted_loss(later.l0, w2));
  EXPECT_EQ(s.alpha(), direct.alpha);
  EXPECT_EQ(s.evaluations(), 3);
  EXPECT_THROW(s.evaluate(std::vector<double>{1.0, 2.0}, std::span<double>(scale).first(2)), input_error);

  sctl_fit_options slsqp;
  slsqp.solver = sctl_solver::slsqp;
  sctl_scaler t(slsqp);
  t.evaluate(p.l0, scale);
  t.evaluate(p.l1, scale);
  EXPECT_EQ(t.alpha(), direct.slsqp_alpha);
  EXPECT_EQ(t.beta(), direct.slsqp_beta);
}

split_data small_split(std::int64_t k, const std::vector<std::vector<double>>& rows,
                       const std::vector<std::int32_t>& labels) {
  split_data s;
  s.name = "val";
  s.num_classes = k;
  s.num_samples = static_cast<std::int64_t>(rows.size());
  for (const auto& r : rows) s.values.insert(s.values.end(), r.begin(), r.end());
  s.labels = labels;
  return s;
}

TEST(LsplusPriors, AccuracyReplacementAndAbsentClasses) {
  // K = 4, labels 0 0 1 2 0 1. In t: class 0 two of three right, class 1 both right (perfect),
  // class 2 none right (the tie in row 3 goes to the lowest index, class 0), class 3 absent.
  // s differs in the last row only, which predicts 0 for label 1: class 1 is no longer perfect.
  const std::vector<std::int32_t> labels{0, 0, 1, 2, 0, 1};
  const split_data t =
      small_split(4, {{3, 1, 0, 0}, {3, 1, 0, 0}, {0, 5, 0, 0}, {1, 0, 1, 0}, {0, 2, 0, 0}, {0, 2, 0, 0}}, labels);
  const split_data s =
      small_split(4, {{3, 1, 0, 0}, {3, 1, 0, 0}, {0, 5, 0, 0}, {1, 0, 1, 0}, {0, 2, 0, 0}, {2, 0, 0, 0}}, labels);
  for (const auto rule : {lsplus_perfect::uniform, lsplus_perfect::half, lsplus_perfect::keep}) {
    const lsplus_priors p = compute_lsplus_priors(t, rule);
    ASSERT_EQ(p.classes.size(), 4u);
    EXPECT_EQ(p.classes[0].count, 3);
    EXPECT_EQ(p.classes[0].correct, 2);
    EXPECT_DOUBLE_EQ(p.classes[0].prior_true, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(p.classes[0].prior_other, (1.0 - 2.0 / 3.0) / 3.0);
    EXPECT_EQ(p.classes[1].accuracy, 1.0);
    const double want = rule == lsplus_perfect::uniform ? 0.25 : rule == lsplus_perfect::half ? 0.5 : 1.0;
    EXPECT_EQ(p.classes[1].prior_true, want);
    EXPECT_EQ(p.classes[1].replaced, rule != lsplus_perfect::keep);
    EXPECT_EQ(p.classes[2].correct, 0);
    EXPECT_EQ(p.classes[2].prior_true, 0.0);
    EXPECT_TRUE(std::isnan(p.classes[3].accuracy));
    EXPECT_EQ(p.classes[3].count, 0);
    EXPECT_EQ(p.classes[3].prior_true, 0.25);
    EXPECT_EQ(p.perfect, 1);
    EXPECT_EQ(p.absent, 1);
    for (const auto& c : p.classes) EXPECT_NEAR(c.prior_true + 3 * c.prior_other, 1.0, k_exact_tol);
  }
  const lsplus_priors q = compute_lsplus_priors(s, lsplus_perfect::uniform);
  EXPECT_EQ(q.classes[1].correct, 1);
  EXPECT_EQ(q.perfect, 0);
  EXPECT_THROW(parse_lsplus_perfect("one"), input_error);
}

}  // namespace
}  // namespace calibench
