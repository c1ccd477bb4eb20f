// The logit maps of vs, ms, cts_nll (host/calibrators/logit_map_fit.hpp): analytic NLL gradients against
// central finite differences, the NLL against a naive softmax of apply_logit_map, thread-count
// independence, and the fit's stopping rules.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/rng.hpp"
#include "host/calibrators/logit_map_fit.hpp"

namespace calibench {
namespace {

/// ||analytic - finite difference|| / ||analytic||: central differences with step k_fd_step
/// have truncation error ~ h^2 |f'''| ~ 1e-10 and rounding error ~ eps |f| / h ~ 1e-11, against
/// gradients of norm ~ 0.1..1.
constexpr double k_gradient_rtol = 1e-6;
constexpr double k_fd_step = 1e-5;
/// The NLL against a separate naive evaluation: both float64, summed in different orders.
constexpr double k_nll_rtol = 1e-13;

struct problem {
  std::int64_t n, k;
  std::vector<double> z;
  std::vector<std::int32_t> labels;
};

problem random_problem(std::int64_t n, std::int64_t k, std::uint64_t seed) {
  auto rng = make_stream(seed, 0);
  problem p{n, k, std::vector<double>(static_cast<std::size_t>(n * k)),
            std::vector<std::int32_t>(static_cast<std::size_t>(n))};
  for (auto& v : p.z) v = 3.0 * rng.normal();
  for (auto& y : p.labels) y = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
  return p;
}

/// The identity plus noise: a generic point away from the start.
std::vector<double> random_params(logit_map map, std::int64_t k, std::uint64_t seed) {
  auto rng = make_stream(seed, 1);
  auto params = logit_map_identity(map, k);
  for (auto& v : params) v += 0.3 * rng.normal();
  return params;
}

const char* map_name(logit_map m) {
  switch (m) {
    case logit_map::vector: return "vs";
    case logit_map::matrix: return "ms";
    case logit_map::class_temperature: return "cts_nll";
  }
  return "?";
}

double naive_nll(const std::vector<double>& q, const std::vector<std::int32_t>& labels, std::int64_t k) {
  double total = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    double m = -INFINITY, s = 0;
    for (std::int64_t j = 0; j < k; ++j) m = std::max(m, q[i * k + j]);
    for (std::int64_t j = 0; j < k; ++j) s += std::exp(q[i * k + j] - m);
    total += m + std::log(s) - q[i * k + labels[i]];
  }
  return total / static_cast<double>(labels.size());
}

class gradient_test : public ::testing::TestWithParam<std::tuple<logit_map, std::int64_t, std::int64_t>> {};

TEST_P(gradient_test, analytic_matches_central_differences) {
  const auto [map, k, n] = GetParam();
  const std::uint64_t seed = 1000 + static_cast<std::uint64_t>(k * 7 + n);
  SCOPED_TRACE(::testing::Message() << map_name(map) << " K=" << k << " N=" << n << " seed=" << seed);
  const problem p = random_problem(n, k, seed);
  auto params = random_params(map, k, seed);
  std::vector<double> grad, unused;
  const double value = logit_map_nll(map, params, p.z, p.labels, k, grad);
  EXPECT_NEAR(value, naive_nll(apply_logit_map(map, params, p.z, k), p.labels, k), k_nll_rtol * value);
  double diff2 = 0, norm2 = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const double keep = params[i];
    params[i] = keep + k_fd_step;
    const double up = logit_map_nll(map, params, p.z, p.labels, k, unused);
    params[i] = keep - k_fd_step;
    const double down = logit_map_nll(map, params, p.z, p.labels, k, unused);
    params[i] = keep;
    const double fd = (up - down) / (2 * k_fd_step);
    diff2 += (fd - grad[i]) * (fd - grad[i]);
    norm2 += grad[i] * grad[i];
  }
  EXPECT_LT(std::sqrt(diff2), k_gradient_rtol * std::sqrt(norm2));
}

INSTANTIATE_TEST_SUITE_P(maps, gradient_test,
                         ::testing::Combine(::testing::Values(logit_map::vector, logit_map::matrix,
                                                              logit_map::class_temperature),
                                            ::testing::Values(std::int64_t{2}, std::int64_t{3}, std::int64_t{10}),
                                            // 50 rows: one chunk; 2500: three chunks summed in order.
                                            ::testing::Values(std::int64_t{50}, std::int64_t{2500})));

TEST(gradient_fit, identity_parameters_are_the_uncalibrated_logits) {
  const problem p = random_problem(40, 5, 7);
  for (auto map : {logit_map::vector, logit_map::matrix, logit_map::class_temperature})
    EXPECT_EQ(apply_logit_map(map, logit_map_identity(map, 5), p.z, 5), p.z) << map_name(map);
}

TEST(gradient_fit, thread_count_does_not_change_the_fit) {
  const problem p = random_problem(5000, 10, 21);
  for (auto map : {logit_map::vector, logit_map::matrix, logit_map::class_temperature}) {
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto one = fit_logit_map(map, p.z, p.labels, 10, 50, "test");
    omp_set_num_threads(4);
    const auto four = fit_logit_map(map, p.z, p.labels, 10, 50, "test");
    omp_set_num_threads(threads);
    EXPECT_EQ(one.params, four.params) << map_name(map);
    EXPECT_EQ(one.nll, four.nll) << map_name(map);
    EXPECT_EQ(one.iterations, four.iterations) << map_name(map);
  }
}

TEST(gradient_fit, converges_to_a_stationary_point) {
  // Labels drawn from softmax(1.7 z): a finite optimum exists for every map.
  const std::int64_t n = 3000, k = 4;
  problem p = random_problem(n, k, 33);
  auto rng = make_stream(33, 2);
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> w(static_cast<std::size_t>(k));
    double s = 0;
    for (std::int64_t j = 0; j < k; ++j) s += w[j] = std::exp(1.7 * p.z[i * k + j]);
    double u = rng.uniform() * s;
    std::int32_t y = 0;
    while (y + 1 < k && u >= w[y]) u -= w[y++];
    p.labels[i] = y;
  }
  for (auto map : {logit_map::vector, logit_map::matrix, logit_map::class_temperature}) {
    const auto fit = fit_logit_map(map, p.z, p.labels, k, 1000, "test");
    std::vector<double> grad;
    const double value = logit_map_nll(map, fit.params, p.z, p.labels, k, grad);
    EXPECT_EQ(value, fit.nll) << map_name(map);
    double norm2 = 0, x2 = 0;
    for (double g : grad) norm2 += g * g;
    for (double x : fit.params) x2 += x * x;
    EXPECT_EQ(fit.stop, "gradient") << map_name(map);
    EXPECT_LE(std::sqrt(norm2), k_gradient_tolerance * std::max(1.0, std::sqrt(x2))) << map_name(map);
    EXPECT_LT(fit.nll, naive_nll(p.z, p.labels, k)) << map_name(map);
    EXPECT_GT(fit.iterations, 0) << map_name(map);
  }
}

TEST(gradient_fit, zero_iterations_returns_the_identity) {
  const problem p = random_problem(100, 3, 5);
  const auto fit = fit_logit_map(logit_map::vector, p.z, p.labels, 3, 0, "test");
  EXPECT_EQ(fit.params, logit_map_identity(logit_map::vector, 3));
  EXPECT_EQ(fit.iterations, 0);
  EXPECT_EQ(fit.stop, "iterations");
  EXPECT_DOUBLE_EQ(fit.nll, naive_nll(p.z, p.labels, 3));
}

/// The ODIR objective of ms_odir / dir_odir: mean NLL plus odir_value.
double odir_objective(const map_penalty& pen, const std::vector<double>& params, const problem& p,
                      std::vector<double>& grad) {
  const double nll = logit_map_nll(logit_map::matrix, params, p.z, p.labels, p.k, grad);
  return nll + odir_value(pen, params.data(), p.k, grad.data());
}

TEST(odir_penalty, value_is_the_normalised_off_diagonal_and_bias_sums) {
  // K = 3: W = [[1,2,3],[4,5,6],[7,8,9]], b = [1,-2,3]: off-diagonal squares 4+9+16+36+49+64 = 178,
  // bias squares 14; lambda/(K(K-1)) = 0.5/6, mu/K = 0.3/3.
  const std::vector<double> params{1, 2, 3, 4, 5, 6, 7, 8, 9, 1, -2, 3};
  std::vector<double> grad(params.size(), 0.0);
  const double v = odir_value({0.5, 0.3}, params.data(), 3, grad.data());
  EXPECT_NEAR(v, 0.5 / 6 * 178 + 0.3 / 3 * 14, 1e-13);
  EXPECT_EQ(grad[0], 0.0);  // the diagonal is not penalised
  EXPECT_NEAR(grad[1], 2 * 0.5 / 6 * 2, 1e-15);
  EXPECT_NEAR(grad[10], 2 * 0.3 / 3 * -2, 1e-15);
}

TEST(odir_penalty, objective_gradient_matches_central_differences) {
  for (std::int64_t k : {2, 3, 10}) {
    for (const map_penalty pen : {map_penalty{1e-2, 1e-2}, map_penalty{1.0, 0.1}, map_penalty{0.0, 3.0}}) {
      SCOPED_TRACE(::testing::Message() << "K=" << k << " lambda=" << pen.lambda << " mu=" << pen.mu);
      const problem p = random_problem(300, k, 500 + static_cast<std::uint64_t>(k));
      auto params = random_params(logit_map::matrix, k, 600 + static_cast<std::uint64_t>(k));
      std::vector<double> grad, unused;
      odir_objective(pen, params, p, grad);
      double diff2 = 0, norm2 = 0;
      for (std::size_t i = 0; i < params.size(); ++i) {
        const double keep = params[i];
        params[i] = keep + k_fd_step;
        const double up = odir_objective(pen, params, p, unused);
        params[i] = keep - k_fd_step;
        const double down = odir_objective(pen, params, p, unused);
        params[i] = keep;
        const double fd = (up - down) / (2 * k_fd_step);
        diff2 += (fd - grad[i]) * (fd - grad[i]);
        norm2 += grad[i] * grad[i];
      }
      EXPECT_LT(std::sqrt(diff2), k_gradient_rtol * std::sqrt(norm2));
    }
  }
}

TEST(odir_penalty, fit_reaches_a_stationary_point_of_the_penalised_objective) {
  const std::int64_t k = 5;
  const problem p = random_problem(400, k, 77);
  const map_penalty pen{0.1, 0.1};
  const auto fit = fit_logit_map(logit_map::matrix, p.z, p.labels, k, 1000, "test", pen);
  std::vector<double> grad;
  EXPECT_EQ(odir_objective(pen, fit.params, p, grad), fit.nll);
  double norm2 = 0, x2 = 0;
  for (double g : grad) norm2 += g * g;
  for (double x : fit.params) x2 += x * x;
  // Random labels make the objective flat (the penalty's curvature is lambda/(K(K-1)) = 0.005):
  // the fit may end by a failed line search a little above the gradient tolerance.
  EXPECT_NE(fit.stop, "iterations");
  EXPECT_LE(std::sqrt(norm2), 1e-6 * std::max(1.0, std::sqrt(x2)));
  // A heavier penalty leaves smaller off-diagonal entries.
  const auto heavy = fit_logit_map(logit_map::matrix, p.z, p.labels, k, 1000, "test", {100.0, 100.0});
  double off_light = 0, off_heavy = 0;
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t j = 0; j < k; ++j)
      if (i != j) {
        off_light += fit.params[i * k + j] * fit.params[i * k + j];
        off_heavy += heavy.params[i * k + j] * heavy.params[i * k + j];
      }
  EXPECT_LT(off_heavy, off_light);
}

TEST(odir_penalty, applies_to_the_matrix_map_only) {
  const problem p = random_problem(20, 3, 9);
  EXPECT_THROW(fit_logit_map(logit_map::vector, p.z, p.labels, 3, 10, "test", {0.1, 0.1}), error);
}

TEST(l2_penalty, value_is_the_normalised_reference_row_sum) {
  // K = 2 matrix map: A = [W | b] = [[1, 2, 5], [4, 3, -1]]; row 0 minus row 1 = [-3, -1, 6]:
  // squares 9 + 1 + 36 = 46, lambda/(K(K+1)) = 0.6/6.
  const map_penalty pen{0.6, 0.0, penalty_form::l2};
  const std::vector<double> matrix{1, 2, 4, 3, 5, -1};
  std::vector<double> grad(matrix.size(), 0.0);
  EXPECT_NEAR(l2_value(pen, logit_map::matrix, matrix.data(), 2, grad.data()), 0.1 * 46, 1e-14);
  EXPECT_NEAR(grad[0], 2 * 0.1 * -3, 1e-15);
  EXPECT_NEAR(grad[2], -2 * 0.1 * -3, 1e-15);  // the reference row takes the opposite
  // K = 3 vector map w = [1, 2, 3], b = [4, 5, 6]: rows 0 and 1 minus row 2 are
  // [1, 0, -3 | -2] and [0, 2, -3 | -1]: 1 + 9 + 4 + 4 + 9 + 1 = 28, lambda/12.
  const std::vector<double> vec{1, 2, 3, 4, 5, 6};
  std::vector<double> vgrad(vec.size(), 0.0);
  EXPECT_NEAR(l2_value(pen, logit_map::vector, vec.data(), 3, vgrad.data()), 0.6 / 12 * 28, 1e-14);
  EXPECT_NEAR(vgrad[2], 2 * 0.05 * 3 * 2, 1e-15);  // w_{K-1} appears in both rows
  // One class: nothing to penalise.
  const std::vector<double> one{2.0, 1.0};
  std::vector<double> ograd(2, 0.0);
  EXPECT_EQ(l2_value(pen, logit_map::matrix, one.data(), 1, ograd.data()), 0.0);
}

TEST(l2_penalty, objective_gradient_matches_central_differences) {
  for (const logit_map map : {logit_map::matrix, logit_map::vector}) {
    for (std::int64_t k : {2, 3, 10}) {
      SCOPED_TRACE(::testing::Message() << "K=" << k << " map=" << static_cast<int>(map));
      const map_penalty pen{0.7, 0.0, penalty_form::l2};
      const problem p = random_problem(300, k, 700 + static_cast<std::uint64_t>(k));
      auto params = random_params(map, k, 800 + static_cast<std::uint64_t>(k));
      const auto objective = [&](std::vector<double>& g) {
        const double nll = logit_map_nll(map, params, p.z, p.labels, k, g);
        return nll + l2_value(pen, map, params.data(), k, g.data());
      };
      std::vector<double> grad, unused;
      objective(grad);
      double diff2 = 0, norm2 = 0;
      for (std::size_t i = 0; i < params.size(); ++i) {
        const double keep = params[i];
        params[i] = keep + k_fd_step;
        const double up = objective(unused);
        params[i] = keep - k_fd_step;
        const double down = objective(unused);
        params[i] = keep;
        const double fd = (up - down) / (2 * k_fd_step);
        diff2 += (fd - grad[i]) * (fd - grad[i]);
        norm2 += grad[i] * grad[i];
      }
      EXPECT_LT(std::sqrt(diff2), k_gradient_rtol * std::sqrt(norm2));
    }
  }
}

TEST(l2_penalty, reference_row_form_keeps_the_probabilities_and_zeroes_the_last_row) {
  const std::int64_t k = 4;
  const problem p = random_problem(50, k, 31);
  const auto params = random_params(logit_map::matrix, k, 32);
  const auto ref = reference_row_form(params, k);
  for (std::int64_t j = 0; j < k; ++j) EXPECT_EQ(ref[(k - 1) * k + j], 0.0);
  EXPECT_EQ(ref[k * k + k - 1], 0.0);
  std::vector<double> g1, g2;
  EXPECT_NEAR(logit_map_nll(logit_map::matrix, params, p.z, p.labels, k, g1),
              logit_map_nll(logit_map::matrix, ref, p.z, p.labels, k, g2), 1e-12);
}

TEST(l2_penalty, fits_the_vector_map_and_a_heavier_weight_shrinks_it) {
  const std::int64_t k = 4;
  const problem p = random_problem(400, k, 41);
  const auto light = fit_logit_map(logit_map::vector, p.z, p.labels, k, 1000, "test", {0.01, 0, penalty_form::l2});
  const auto heavy = fit_logit_map(logit_map::vector, p.z, p.labels, k, 1000, "test", {100.0, 0, penalty_form::l2});
  std::vector<double> g1(light.params.size(), 0.0), g2(heavy.params.size(), 0.0);
  EXPECT_LT(l2_value({1.0, 0, penalty_form::l2}, logit_map::vector, heavy.params.data(), k, g1.data()),
            l2_value({1.0, 0, penalty_form::l2}, logit_map::vector, light.params.data(), k, g2.data()));
  EXPECT_THROW(fit_logit_map(logit_map::class_temperature, p.z, p.labels, k, 10, "test", {0.1, 0, penalty_form::l2}),
               error);
}

TEST(gradient_fit, non_finite_logits_are_an_input_error) {
  problem p = random_problem(20, 3, 9);
  p.z[31] = -INFINITY;
  EXPECT_THROW(fit_logit_map(logit_map::class_temperature, p.z, p.labels, 3, 10, "test"), input_error);
}

}  // namespace
TEST(sms_penalty, value_pulls_the_diagonal_to_one) {
  // K = 2: W = [[3, 2], [-1, 0.5]], b = [1, -2]: off-diagonal 4 + 1, diagonal (3-1)^2 + (0.5-1)^2
  // = 4.25, intercept 1 + 4; strengths as given (no normalisation).
  const map_penalty pen{0.3, 0.2, penalty_form::sms, 0.7};
  const std::vector<double> params{3, 2, -1, 0.5, 1, -2};
  std::vector<double> grad(params.size(), 0.0);
  EXPECT_NEAR(sms_value(pen, params.data(), 2, grad.data()), 0.3 * 5 + 0.7 * 4.25 + 0.2 * 5, 1e-14);
  EXPECT_NEAR(grad[0], 2 * 0.7 * 2, 1e-15);
  EXPECT_NEAR(grad[1], 2 * 0.3 * 2, 1e-15);
  EXPECT_NEAR(grad[3], 2 * 0.7 * -0.5, 1e-15);
  EXPECT_NEAR(grad[5], 2 * 0.2 * -2, 1e-15);
  // The identity with b = 0 has no penalty.
  const std::vector<double> identity{1, 0, 0, 1, 0, 0};
  std::vector<double> zero(6, 0.0);
  EXPECT_EQ(sms_value(pen, identity.data(), 2, zero.data()), 0.0);
  EXPECT_EQ(zero, std::vector<double>(6, 0.0));
}

TEST(sms_penalty, fit_is_stationary) {
  // The fitted parameters zero the penalised objective's gradient (to the fit's tolerance).
  for (std::int64_t k : {2, 5}) {
    SCOPED_TRACE(::testing::Message() << "K=" << k);
    const problem p = random_problem(400, k, 900 + static_cast<std::uint64_t>(k));
    const double kd = static_cast<double>(k);
    const map_penalty pen{kd * (kd - 1) / 400, kd / 400, penalty_form::sms, kd / 400};
    const auto r = fit_logit_map(logit_map::matrix, p.z, p.labels, k, 1000, "unit", pen);
    std::vector<double> grad;
    logit_map_nll(logit_map::matrix, r.params, p.z, p.labels, k, grad);
    sms_value(pen, r.params.data(), k, grad.data());
    double norm = 0;
    for (double g : grad) norm = std::max(norm, std::abs(g));
    EXPECT_LT(norm, 1e-7);
  }
}

}  // namespace calibench
