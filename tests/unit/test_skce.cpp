// The SKCE module (host/metrics/skce.hpp): the median selection under any memory cap, a hand
// case, the edge rules and the refusals. Values against the float64 reference: tests/e2e/test_skce.py.
#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/rng.hpp"
#include "host/metrics/skce.hpp"

namespace calibench {
namespace {

std::vector<double> random_rows(std::int64_t n, std::int64_t k, std::uint64_t seed, int levels) {
  splitmix64 rng(seed);
  std::vector<double> p(static_cast<std::size_t>(n * k));
  for (std::int64_t i = 0; i < n; ++i) {
    double sum = 0;
    for (std::int64_t j = 0; j < k; ++j) sum += p[i * k + j] = 1.0 + static_cast<double>(rng.below(levels));
    for (std::int64_t j = 0; j < k; ++j) p[i * k + j] /= sum;
  }
  return p;
}

TEST(Skce, MedianSelectionDoesNotDependOnTheMemoryCap) {
  // Few levels: many tied distances, so the refinement passes meet ties at every cap.
  for (const int levels : {3, 1000}) {
    const auto p = random_rows(157, 4, 7 + static_cast<std::uint64_t>(levels), levels);
    const double full = median_tv_distance(p, 4);
    for (const std::int64_t cap : {1, 2, 7, 100}) EXPECT_EQ(median_tv_distance(p, 4, cap), full) << cap;
    // Brute force over all N^2 entries.
    std::vector<double> d;
    for (int i = 0; i < 157; ++i)
      for (int j = 0; j < 157; ++j) {
        double s = 0;
        for (int c = 0; c < 4; ++c) s += std::abs(p[i * 4 + c] - p[j * 4 + c]);
        d.push_back(s / 2);
      }
    std::sort(d.begin(), d.end());
    const std::size_t m = d.size();
    EXPECT_EQ(full, d[(m - 1) / 2] / 2 + d[m / 2] / 2) << levels;
  }
}

TEST(Skce, HandCase) {
  // N = 2, K = 2: p = (1, 0) labelled 0 and (0, 1) labelled 1. d = 1; the N^2 entries are
  // 0, 0, 1, 1: median 0.5 = nu, k_12 = exp(-2). w_12 = [0 == 1] - p_1[1] - p_2[0] + <p_1, p_2> = 0,
  // so skce = 0; both rows are perfectly calibrated.
  const std::vector<double> p{1, 0, 0, 1};
  const std::vector<std::int32_t> y{0, 1};
  const auto r = compute_skce(p, y, 2, true);
  EXPECT_EQ(r.bandwidth, 0.5);
  EXPECT_EQ(r.skce, 0.0);
  // Swapped labels: w_12 = 0 - 1 - 1 + 0 = -2, h = -2 exp(-2).
  const auto wrong = compute_skce(p, std::vector<std::int32_t>{1, 0}, 2, false);
  EXPECT_NEAR(wrong.skce, -2 * std::exp(-2.0), 1e-15);
  EXPECT_TRUE(std::isnan(wrong.pvalue));
}

TEST(Skce, EdgeRulesAndRefusals) {
  const auto one = compute_skce(std::vector<double>{0.3, 0.7}, std::vector<std::int32_t>{1}, 2, true);
  EXPECT_TRUE(std::isnan(one.skce) && std::isnan(one.pvalue));
  EXPECT_EQ(one.bandwidth, 1.0);  // N = 1
  const std::vector<double> same{0.2, 0.8, 0.2, 0.8, 0.2, 0.8};
  EXPECT_EQ(compute_skce(same, std::vector<std::int32_t>{0, 1, 1}, 2, false).bandwidth, 1.0);  // every row equal
  EXPECT_THROW(compute_skce(same, std::vector<std::int32_t>{0, 2, 1}, 2, false), input_error);
  EXPECT_THROW(compute_skce(same, std::vector<std::int32_t>{0, 1}, 2, false), input_error);
  EXPECT_THROW(compute_skce(std::vector<double>{0.5, NAN}, std::vector<std::int32_t>{0}, 2, false), input_error);
}

}  // namespace
}  // namespace calibench
