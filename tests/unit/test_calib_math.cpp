// Shared per-element math: bin rules at exact edges, softmax top-label statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/calib_math.hpp"

namespace calibench {
namespace {

/// searchsorted(edges[1:M], v, side) written the slow, obvious way.
std::int32_t searchsorted_bin(double v, std::int32_t m, bool right_closed) {
  std::int32_t b = 0;
  for (std::int32_t i = 1; i < m; ++i) {
    const double e = static_cast<double>(i) / static_cast<double>(m);
    if (right_closed ? e < v : e <= v) ++b;
  }
  return b;
}

TEST(BinIndex, ExactEdgesGoWhereTheComparisonPutsThem) {
  for (std::int32_t m : {1, 2, 3, 5, 7, 10, 15, 25, 100, 1000}) {
    for (std::int32_t i = 0; i <= m; ++i) {
      const double edge = static_cast<double>(i) / static_cast<double>(m);
      for (double v : {edge, std::nextafter(edge, 0.0), std::nextafter(edge, 1.0)}) {
        if (v < 0.0 || v > 1.0) continue;
        EXPECT_EQ(bin_index(binning::right_closed, v, m), searchsorted_bin(v, m, true)) << "m=" << m << " v=" << v;
        EXPECT_EQ(bin_index(binning::left_closed, v, m), searchsorted_bin(v, m, false)) << "m=" << m << " v=" << v;
      }
    }
  }
}

TEST(BinIndex, FastVariantAgreesEverywhere) {
  for (std::int32_t m : {1, 2, 3, 5, 7, 10, 15, 22, 25, 100, 1000, 4097}) {
    std::vector<double> values{0.0, 1.0, std::nextafter(1.0, 0.0), 5e-324, 0.5};
    for (std::int32_t i = 0; i <= m; ++i) {
      const double edge = static_cast<double>(i) / static_cast<double>(m);
      for (int k = -3; k <= 3; ++k) {
        double v = edge;
        for (int s = 0; s < (k < 0 ? -k : k); ++s) v = std::nextafter(v, k < 0 ? 0.0 : 1.0);
        values.push_back(v);
      }
    }
    for (int r = 0; r < 20000; ++r) values.push_back(static_cast<double>((r * 2654435761u) % 1000003u) / 1000003.0);
    for (double v : values) {
      if (v < 0.0 || v > 1.0) continue;
      ASSERT_EQ(bin_index_fast<binning::right_closed>(v, m), bin_index(binning::right_closed, v, m))
          << "m=" << m << " v=" << v;
      ASSERT_EQ(bin_index_fast<binning::left_closed>(v, m), bin_index(binning::left_closed, v, m))
          << "m=" << m << " v=" << v;
    }
  }
}

/// The other libraries' rules written the slow, obvious way from their definitions
/// (docs/metrics.md): torchmetrics = bucketize(v, linspace(0, 1, M+1), right=True) - 1 over
/// M + 1 slots; digitize-linspace = digitize(v, linspace(0, 1, M)) - 1, numpy's linspace being
/// i * (1 / (M-1)) with the last point exactly 1; guo-strict = (lo, hi] with 0 in no slot.
std::int32_t slow_slot(binning rule, double v, std::int32_t m) {
  std::int32_t count = 0;
  switch (rule) {
    case binning::torchmetrics:
      for (std::int32_t i = 0; i <= m; ++i) count += static_cast<double>(i) / static_cast<double>(m) <= v ? 1 : 0;
      return count - 1;
    case binning::digitize_linspace:
      for (std::int32_t i = 0; i < m; ++i) {
        const double d =
            (m == 1) ? 0.0 : (i == m - 1 ? 1.0 : static_cast<double>(i) * (1.0 / static_cast<double>(m - 1)));
        count += d <= v ? 1 : 0;
      }
      return count - 1;
    case binning::guo_strict:
      for (std::int32_t i = 0; i < m; ++i) {
        const double lo = static_cast<double>(i) / static_cast<double>(m);
        const double hi = static_cast<double>(i + 1) / static_cast<double>(m);
        if (lo < v && v <= hi) return i;
      }
      return -1;
    default: return searchsorted_bin(v, m, rule == binning::right_closed);
  }
}

TEST(BinIndex, EveryRuleMatchesItsDefinitionAtEdges) {
  for (std::int32_t m : {1, 2, 3, 5, 7, 10, 14, 15, 25, 100, 1000}) {
    std::vector<double> values{0.0, 1.0, 5e-324, std::nextafter(1.0, 0.0)};
    for (std::int32_t i = 0; i <= m; ++i) {
      for (double edge : {static_cast<double>(i) / static_cast<double>(m),
                          m > 1 ? static_cast<double>(i) * (1.0 / static_cast<double>(m - 1)) : 0.0,
                          m > 1 ? static_cast<double>(i) / static_cast<double>(m - 1) : 0.0}) {
        for (double v : {edge, std::nextafter(edge, 0.0), std::nextafter(edge, 1.0)}) values.push_back(v);
      }
    }
    for (double v : values) {
      if (v < 0.0 || v > 1.0) continue;
      for (binning rule : {binning::right_closed, binning::left_closed, binning::guo_strict, binning::torchmetrics,
                           binning::digitize_linspace}) {
        ASSERT_EQ(bin_index(rule, v, m), slow_slot(rule, v, m))
            << "rule=" << static_cast<int>(rule) << " m=" << m << " v=" << v;
      }
      ASSERT_EQ(bin_index_fast<binning::torchmetrics>(v, m), bin_index(binning::torchmetrics, v, m)) << m << " " << v;
      ASSERT_EQ(bin_index_fast<binning::digitize_linspace>(v, m), bin_index(binning::digitize_linspace, v, m))
          << m << " " << v;
      if (v > 0.0) {
        ASSERT_EQ(bin_index(binning::guo_strict, v, m), bin_index(binning::right_closed, v, m));
      }
    }
  }
}

TEST(BinIndex, OtherLibrariesKnownValues) {
  // torchmetrics: 1.0 alone in the extra slot M; 0 in slot 0.
  EXPECT_EQ(bin_index(binning::torchmetrics, 1.0, 15), 15);
  EXPECT_EQ(bin_index(binning::torchmetrics, std::nextafter(1.0, 0.0), 15), 14);
  EXPECT_EQ(bin_index(binning::torchmetrics, 0.0, 15), 0);
  EXPECT_EQ(bin_slots(binning::torchmetrics, 15), 16);
  // digitize-linspace, M = 15: 14 bins of width 1/14 plus {1.0} in slot 14.
  EXPECT_EQ(bin_index(binning::digitize_linspace, 1.0, 15), 14);
  EXPECT_EQ(bin_index(binning::digitize_linspace, 0.5, 15), 7);  // 7/14 exactly: left-closed
  EXPECT_EQ(bin_index(binning::digitize_linspace, std::nextafter(0.5, 0.0), 15), 6);
  EXPECT_EQ(bin_slots(binning::digitize_linspace, 15), 15);
  // guo-strict: 0 in no slot.
  EXPECT_EQ(bin_index(binning::guo_strict, 0.0, 15), -1);
  EXPECT_EQ(bin_index(binning::guo_strict, 0.2, 15), 2);
  const auto last = bin_slot_bounds(binning::torchmetrics, 15, 15);
  EXPECT_EQ(last.lo, 1.0);
  EXPECT_EQ(last.hi, 1.0);
}

TEST(BinIndex, KnownValues) {
  // 0.2 == 3/15 in double: right-closed puts it in bin 3 (0-based 2), left-closed in bin 4.
  EXPECT_EQ(bin_index(binning::right_closed, 0.2, 15), 2);
  EXPECT_EQ(bin_index(binning::left_closed, 0.2, 15), 3);
  EXPECT_EQ(bin_index(binning::right_closed, 0.0, 15), 0);
  EXPECT_EQ(bin_index(binning::left_closed, 0.0, 15), 0);
  EXPECT_EQ(bin_index(binning::right_closed, 1.0, 15), 14);
  EXPECT_EQ(bin_index(binning::left_closed, 1.0, 15), 14);
  // ceil(M c) - 1 arithmetic disagrees here: 0.7 * 10 = 7.000000000000001 in double.
  EXPECT_EQ(bin_index(binning::right_closed, 0.7, 10), searchsorted_bin(0.7, 10, true));
  EXPECT_EQ(bin_index(binning::right_closed, 0.7, 10), 6);
}

TEST(SoftmaxTopLabel, TiesTakeTheLowestIndexAndLargeLogitsStayFinite) {
  const std::vector<double> row{1.0, 3.0, 3.0, -2.0};
  const auto t = softmax_top_label<double>(row.data(), 4, 2);
  EXPECT_EQ(t.pred, 1);
  const double s = std::exp(-2.0) + 1 + 1 + std::exp(-5.0);
  EXPECT_DOUBLE_EQ(t.confidence, 1.0 / s);
  EXPECT_DOUBLE_EQ(t.log_p_label, -std::log(s));

  const std::vector<double> huge{1e4, -1e4, 0.0};
  const auto h = softmax_top_label<double>(huge.data(), 3, 1);
  EXPECT_EQ(h.pred, 0);
  EXPECT_EQ(h.confidence, 1.0);
  EXPECT_DOUBLE_EQ(h.log_p_label, -2e4);
}

TEST(SoftmaxTopLabel, InverseTemperatureScalesLogits) {
  const std::vector<float> row{0.5f, 2.0f, -1.0f};
  const auto t = softmax_top_label<double>(row.data(), 3, 0, 0.5);
  const double s = std::exp(0.25 - 1.0) + 1.0 + std::exp(-0.5 - 1.0);
  EXPECT_NEAR(t.confidence, 1.0 / s, 1e-15);
  EXPECT_NEAR(t.log_p_label, 0.25 - 1.0 - std::log(s), 1e-15);
}

}  // namespace
}  // namespace calibench

namespace calibench {
namespace {

/// Relative error in units of the last place.
double ulps(double got, double want) {
  return std::fabs(got - want) / (std::nextafter(std::fabs(want), INFINITY) - std::fabs(want));
}

TEST(FastMath, ExpNonpositiveIsWithinTwoUlps) {
  double worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const double x = -700.0 * static_cast<double>(i) / 2000000.0;
    worst = std::max(worst, ulps(exp_nonpositive(x), std::exp(x)));
  }
  for (double x : {0.0, -1e-300, -1e-17, -0.5 * 0.6931471805599453, -0.6931471805599453, -1.0, -2.0, -700.0}) {
    worst = std::max(worst, ulps(exp_nonpositive(x), std::exp(x)));
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(exp_nonpositive(0.0), 1.0);
  EXPECT_GT(exp_nonpositive(-1e4), 0.0);
  EXPECT_LT(exp_nonpositive(-1e4), 1e-300);
}

TEST(FastMath, LogPositiveIsWithinTwoUlps) {
  double worst = 0;
  for (int i = 1; i <= 2000000; ++i) {
    const double x = std::ldexp(1.0 + static_cast<double>(i) / 2000000.0, (i % 200) - 100);
    worst = std::max(worst, ulps(log_positive(x), std::log(x)));
  }
  for (double x : {1.0, 2.0, 0.5, 1.4142135623730951, 1.4142135623730954, 1e-300, 1e300, 3.0, 10.0, 1000.0, 4e-320,
                   1e-310, 5e-324}) {
    const double want = std::log(x);
    if (want != 0.0) worst = std::max(worst, ulps(log_positive(x), want));
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(log_positive(1.0), 0.0);
}

}  // namespace
}  // namespace calibench
