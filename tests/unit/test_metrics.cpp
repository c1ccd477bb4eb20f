// CPU metric suite: hand-worked examples, brute-force checks of the fast paths, thread-count
// independence, and the reproducible bootstrap generator.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "common/rng.hpp"
#include "host/metrics/bootstrap.hpp"
#include "host/metrics/families.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {
namespace {

/// Hand-worked values are sums of a few terms: exact up to a few ulps.
constexpr double k_hand_tolerance = 1e-12;

scored_split probs_split(std::vector<double> probs, std::vector<std::int32_t> labels, std::int64_t k) {
  split_data d;
  d.num_samples = static_cast<std::int64_t>(labels.size());
  d.num_classes = k;
  d.is_probs = true;
  d.values = std::move(probs);
  d.labels = std::move(labels);
  return score_split(std::move(d));
}

scored_split random_logit_split(std::int64_t n, std::int64_t k, std::uint64_t seed, double scale) {
  auto rng = make_stream(seed, 0);
  split_data d;
  d.num_samples = n;
  d.num_classes = k;
  d.values.resize(static_cast<std::size_t>(n * k));
  d.labels.resize(static_cast<std::size_t>(n));
  for (auto& v : d.values) v = scale * rng.normal();
  for (auto& y : d.labels) y = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
  return score_split(std::move(d));
}

// Four samples, two classes; every value below is worked out in the comments.
TEST(Metrics, HandWorkedExample) {
  // confidences .9 (correct), .8 (wrong), .6 (correct), .7 (correct); predictions 0, 0, 0, 1.
  const auto s = probs_split({0.9, 0.1, 0.8, 0.2, 0.6, 0.4, 0.3, 0.7}, {0, 1, 0, 1}, 2);
  const auto m = compute_metrics(s, metric_options::with_bins(5, binning::right_closed));
  EXPECT_EQ(m.n, 4);
  EXPECT_EQ(m.k, 2);
  EXPECT_NEAR(m.accuracy, 0.75, k_hand_tolerance);
  // bins (.4,.6]: {.6 ok}; (.6,.8]: {.8 wrong, .7 ok}; (.8,1]: {.9 ok} -> (.4 + .5 + .1) / 4
  EXPECT_NEAR(m.ece, 0.25, k_hand_tolerance);
  EXPECT_NEAR(m.mce, 0.4, k_hand_tolerance);
  // Brier: .02 + 1.28 + .32 + .18 = 1.8 over 4 samples.
  EXPECT_NEAR(m.brier, 0.45, k_hand_tolerance);
  EXPECT_NEAR(m.nll, -(std::log(0.9) + std::log(0.2) + std::log(0.6) + std::log(0.7)) / 4, k_hand_tolerance);
  // class 0: TP 2, predicted 3, actual 2; class 1: TP 1, predicted 1, actual 2.
  EXPECT_NEAR(m.precision, (2.0 / 3.0 + 1.0) / 2.0, k_hand_tolerance);
  EXPECT_NEAR(m.recall, (1.0 + 0.5) / 2.0, k_hand_tolerance);
  EXPECT_NEAR(m.f1, (0.8 + 2.0 / 3.0) / 2.0, k_hand_tolerance);
  // one-vs-rest: 3 of 4 positive/negative pairs ordered right for either class.
  EXPECT_NEAR(m.auroc, 0.75, k_hand_tolerance);
  // retention accuracies 1, 1, .75, .75, .75 -> trapezoid 3.375 / 4.
  EXPECT_NEAR(m.r_auc, 0.84375, k_hand_tolerance);
  // SCE: class 0 column .9 (y = 0), .8, .6 (y = 0), .3 -> bin gaps +.1, -.8, +.4, -.3: ECE_0 .4;
  // class 1 column .1, .2 (y = 1), .4, .7 (y = 1) -> (0, .2] gap +.7, (.2, .4] -.4, (.6, .8] +.3:
  // ECE_1 .35; SCE = .375.
  EXPECT_NEAR(m.sce, 0.375, k_hand_tolerance);

  // adaECE with two groups: {.6, .7} both correct -> .35; {.8, .9} one correct -> .35.
  const auto two = compute_metrics(s, metric_options::with_bins(2, binning::right_closed));
  EXPECT_NEAR(two.adaece, 0.35, k_hand_tolerance);
}

// The under/over split of the example above, per class and per bin (the class-based TS paper's
// equations 3-5 and Figure 1d).
TEST(Metrics, ClasswiseBreakdownHandWorked) {
  const auto s = probs_split({0.9, 0.1, 0.8, 0.2, 0.6, 0.4, 0.3, 0.7}, {0, 1, 0, 1}, 2);
  const auto options = metric_options::with_bins(5, binning::right_closed);
  const auto b = breakdown_classwise(s, options);
  ASSERT_EQ(b.classes.size(), 2U);
  EXPECT_EQ(b.classes[0].count, 2);
  EXPECT_EQ(b.classes[1].count, 2);
  EXPECT_EQ(b.classes[0].accuracy, 1.0);
  EXPECT_EQ(b.classes[1].accuracy, 0.5);
  // class 0: under (.1 + .4) / 4, over (.8 + .3) / 4; class 1: under (.7 + .3) / 4, over .4 / 4.
  EXPECT_NEAR(b.classes[0].under, 0.125, k_hand_tolerance);
  EXPECT_NEAR(b.classes[0].over, 0.275, k_hand_tolerance);
  EXPECT_NEAR(b.classes[0].ece, 0.4, k_hand_tolerance);
  EXPECT_NEAR(b.classes[1].under, 0.25, k_hand_tolerance);
  EXPECT_NEAR(b.classes[1].over, 0.1, k_hand_tolerance);
  EXPECT_NEAR(b.classes[1].ece, 0.35, k_hand_tolerance);
  // Per bin, mean over the two classes of the terms |B_ij|/N max(0, +-(A_ij - C_ij)).
  const std::vector<double> under{0.0875, 0.0, 0.05, 0.0375, 0.0125}, over{0.0, 0.0875, 0.0, 0.1, 0.0};
  ASSERT_EQ(b.bin_under.size(), 5U);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_NEAR(b.bin_under[i], under[i], k_hand_tolerance) << i;
    EXPECT_NEAR(b.bin_over[i], over[i], k_hand_tolerance) << i;
  }
  // The per-class ECE is the one SCE averages, to the bit.
  EXPECT_EQ((b.classes[0].ece + b.classes[1].ece) / 2, compute_metrics(s, options).sce);
  // Under `sum` the bins are summed over classes instead: twice the mean.
  auto summed = options;
  summed.reduction = classwise_reduction::sum;
  const auto bs = breakdown_classwise(s, summed);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(bs.bin_under[i], 2 * b.bin_under[i]) << i;
}

// The radix sort of the classwise metrics gives std::sort's (value, index) order exactly: ties
// (heavy quantisation), zeros of both signs, subnormals, ones, every length around the
// std::sort cut-over.
TEST(Metrics, RadixSortEqualsStdSort) {
  auto rng = make_stream(21, 0);
  detail::radix_scratch scratch;
  std::vector<std::pair<double, std::int64_t>> got;
  for (const std::int64_t n : {0, 1, 2, 511, 512, 513, 4096, 70001}) {
    for (int variant = 0; variant < 4; ++variant) {
      std::vector<double> v(static_cast<std::size_t>(n));
      for (auto& x : v) {
        const double u = rng.uniform();
        switch (variant) {
          case 0: x = u; break;
          case 1: x = std::floor(u * 8.0) / 8.0; break;  // many ties, exact zeros and 7/8
          case 2: x = u < 0.2 ? 0.0 : (u < 0.3 ? -0.0 : (u < 0.4 ? 5e-324 * std::floor(u * 100) : 1.0)); break;
          default: x = std::exp(-745.0 * u); break;  // every exponent down to subnormals
        }
      }
      std::vector<std::pair<double, std::int64_t>> want(v.size());
      for (std::int64_t i = 0; i < n; ++i) want[i] = {v[i], i};
      std::sort(want.begin(), want.end());
      detail::sort_values(v, got, scratch);
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got[i].second, want[i].second) << "n " << n << " variant " << variant << " at " << i;
        ASSERT_EQ(std::signbit(got[i].first), std::signbit(want[i].first));
      }
    }
  }
}

TEST(Metrics, RetentionCurveAndClassAccuracy) {
  // The hand-worked example above: retention accuracies 1, 1, .75, .75, .75 at k = 0..4.
  const auto s = probs_split({0.9, 0.1, 0.8, 0.2, 0.6, 0.4, 0.3, 0.7}, {0, 1, 0, 1}, 2);
  EXPECT_EQ(retention_curve(s, 5), (std::vector<double>{1.0, 1.0, 0.75, 0.75, 0.75}));
  // Three points: k = round(0), round(2), round(4).
  EXPECT_EQ(retention_curve(s, 3), (std::vector<double>{1.0, 0.75, 0.75}));
  // class 0: samples 0 and 2, both right; class 1: sample 1 wrong, sample 3 right.
  EXPECT_EQ(class_accuracy(s), (std::vector<double>{1.0, 0.5}));
  const auto one_class = probs_split({0.3, 0.7, 0.2, 0.8}, {1, 1}, 2);
  EXPECT_TRUE(std::isnan(class_accuracy(one_class)[0]));
}

TEST(Metrics, ConfidenceOnAnEdgeFollowsTheBinRule) {
  // One sample with confidence exactly 0.2 = 3/15, wrong prediction.
  const auto s = probs_split({0.2, 0.2, 0.2, 0.2, 0.2}, {4}, 5);
  const auto right = reliability_bins(s, metric_options::with_bins(15, binning::right_closed));
  const auto left = reliability_bins(s, metric_options::with_bins(15, binning::left_closed));
  EXPECT_EQ(right[2].count, 1);
  EXPECT_EQ(left[3].count, 1);
}

TEST(Metrics, ArraySplitSizes) {
  // numpy.array_split(range(7), 3) -> sizes 3, 2, 2; (range(2), 5) -> 1, 1, 0, 0, 0
  EXPECT_EQ(array_split_size(7, 3, 0), 3);
  EXPECT_EQ(array_split_size(7, 3, 1), 2);
  EXPECT_EQ(array_split_size(7, 3, 2), 2);
  EXPECT_EQ(array_split_size(2, 5, 1), 1);
  EXPECT_EQ(array_split_size(2, 5, 2), 0);
}

TEST(Metrics, OrderInversionsMatchBruteForce) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    auto rng = make_stream(seed, 0);
    const std::int64_t n = 300;
    std::vector<double> a(n), b(n);
    for (std::int64_t i = 0; i < n; ++i) {
      // Few distinct values, so ties in a, in b and in both are common.
      a[i] = static_cast<double>(rng.below(20));
      b[i] = static_cast<double>(rng.below(20));
    }
    std::int64_t discordant = 0;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) discordant += (a[i] - a[j]) * (b[i] - b[j]) < 0 ? 1 : 0;
    EXPECT_DOUBLE_EQ(order_inversions(a, b), static_cast<double>(discordant) / (n * (n - 1) / 2.0)) << "seed " << seed;
  }
  EXPECT_EQ(order_inversions(std::vector<double>{0.5}, std::vector<double>{0.1}), 0.0);
}

TEST(Metrics, ResultsDoNotDependOnThreadCount) {
  const auto s = random_logit_split(3000, 70, 11, 3.0);
  // Every field, the on-request skce and skce_pvalue included; the bootstrap with the default selection.
  metric_options every;
  every.selected.bits = ~std::uint32_t{0};
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = compute_metrics(s, every);
  const auto boot_one = bootstrap_metrics(s, {}, {8, 5, 0.9});
  const auto split_one = breakdown_classwise(s, {});
  omp_set_num_threads(4);
  const auto four = compute_metrics(s, every);
  const auto boot_four = bootstrap_metrics(s, {}, {8, 5, 0.9});
  const auto split_four = breakdown_classwise(s, {});
  omp_set_num_threads(before);
  // The same bits (NaN where both are NaN: the intervals of the metrics not selected).
  const auto same = [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); };
  for (const auto& f : metric_fields()) {
    EXPECT_FALSE(std::isnan(one.*(f.member))) << f.name;
    EXPECT_EQ(one.*(f.member), four.*(f.member)) << f.name;
  }
  EXPECT_EQ(split_one.bin_under, split_four.bin_under);
  EXPECT_EQ(split_one.bin_over, split_four.bin_over);
  for (std::size_t j = 0; j < split_one.classes.size(); ++j) {
    EXPECT_EQ(split_one.classes[j].under, split_four.classes[j].under) << j;
    EXPECT_EQ(split_one.classes[j].over, split_four.classes[j].over) << j;
  }
  for (std::size_t i = 0; i < boot_one.intervals.size(); ++i) {
    EXPECT_TRUE(same(boot_one.intervals[i].low, boot_four.intervals[i].low)) << i;
    EXPECT_TRUE(same(boot_one.intervals[i].high, boot_four.intervals[i].high)) << i;
  }
}

TEST(Bootstrap, GeneratorIsPinned) {
  // Values from the Python transcription of docs/metrics.md (seed 7, resample 0, N 1000).
  const auto rows = bootstrap_indices(1000, 7, 0);
  const std::vector<std::int64_t> expected{524, 401, 173, 396, 481};
  EXPECT_EQ(std::vector<std::int64_t>(rows.begin(), rows.begin() + 5), expected);
}

TEST(Bootstrap, LinearQuantileMatchesNumpy) {
  // numpy.quantile([1, 2, 4, 8], .025) = 1.075, (.975) = 7.7
  const std::vector<double> v{1, 2, 4, 8};
  EXPECT_NEAR(linear_quantile(v, 0.025), 1.075, 1e-15);
  EXPECT_NEAR(linear_quantile(v, 0.975), 7.7, 1e-14);
  EXPECT_EQ(linear_quantile(v, 1.0), 8.0);
  EXPECT_TRUE(std::isnan(linear_quantile({}, 0.5)));
}

TEST(Bootstrap, IntervalsBracketThePointEstimate) {
  const auto s = random_logit_split(2000, 10, 3, 2.0);
  const auto m = compute_metrics(s, {});
  const auto b = bootstrap_metrics(s, {}, {200, 1, 0.95});
  const auto fields = metric_fields();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].on_request) continue;  // not selected by default (skce: tests/e2e/test_skce.py)
    const double v = m.*(fields[i].member);
    EXPECT_LE(b.intervals[i].low, b.intervals[i].high) << fields[i].name;
    // Accuracy-type metrics are near-symmetric here; ECE-type ones are biased upwards on
    // resamples, so only check that the interval is not absurdly far from the estimate.
    EXPECT_LT(b.intervals[i].low - v, 0.05) << fields[i].name;
    EXPECT_LT(v - b.intervals[i].high, 0.05) << fields[i].name;
  }
}

TEST(Metrics, SingleSampleAndSingleClassPresent) {
  const auto s = probs_split({0.3, 0.7}, {1}, 2);
  const auto m = compute_metrics(s, {});
  EXPECT_EQ(m.accuracy, 1.0);
  EXPECT_TRUE(std::isnan(m.auroc));  // no class has both positives and negatives
  EXPECT_NEAR(m.ece, 0.3, k_hand_tolerance);
  EXPECT_NEAR(m.adaece, 0.3, k_hand_tolerance);
  EXPECT_EQ(m.precision, 1.0);  // only class 1 is present in y or predictions
}

}  // namespace
}  // namespace calibench
