// CPU sweep backend against the metric suite: every family's per-candidate results must
// equal compute_metrics on the candidate's probabilities, built here the slow way in double.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/error.hpp"
#include "common/rng.hpp"
#include "host/metrics/metrics.hpp"
#include "host/sweep/backend.hpp"
#include "tests/support/datasets.hpp"

namespace calibench {
namespace {

/// Both sides accumulate in double from the same float logits; the sweep's softmax sums
/// are reassociated (SIMD) and use the recurrence, so agreement is to a few ulps of the
/// per-sample terms, summed over N <= 3000 samples.
constexpr double k_sweep_tolerance = 1e-9;

using test_support::dataset;

/// The shared seeded sets (tests/support/datasets.hpp); `ties`: the adversarial rows.
dataset random_dataset(std::int64_t n, std::int64_t k, std::uint64_t seed, bool ties) {
  return test_support::make_dataset(n, k, seed, ties);
}

/// The candidate's scored split from per-row scaled logits u (N x K, double).
scored_split from_scaled(const dataset& d, const std::vector<double>& u) {
  scored_split s;
  s.num_samples = d.n;
  s.num_classes = d.k;
  s.labels = d.labels;
  s.probs.resize(u.size());
  s.confidence.resize(static_cast<std::size_t>(d.n));
  s.prediction.resize(static_cast<std::size_t>(d.n));
  s.log_p_label.resize(static_cast<std::size_t>(d.n));
  for (std::int64_t i = 0; i < d.n; ++i) {
    const auto t = softmax_top_label<double>(u.data() + i * d.k, d.k, d.labels[i]);
    for (std::int64_t j = 0; j < d.k; ++j) s.probs[i * d.k + j] = std::exp(u[i * d.k + j] - t.max_logit) / t.sum_exp;
    s.confidence[i] = t.confidence;
    s.prediction[i] = t.pred;
    s.log_p_label[i] = t.log_p_label;
  }
  return s;
}

void expect_candidate(const sweep_result& r, std::int64_t g, const scored_split& s, const sweep_options& o,
                      const std::string& what) {
  const metric_options mo = metric_options::with_bins(o.num_bins, o.bin_rule);
  const metric_set m = compute_metrics(s, mo);
  const auto bins = reliability_bins(s, mo);
  const std::int32_t slots = mo.slots();
  ASSERT_EQ(r.num_bins, slots) << what;
  for (std::int32_t b = 0; b < slots; ++b) {
    ASSERT_EQ(r.bin_count[g * slots + b], bins[b].count) << what << " candidate " << g << " bin " << b;
    EXPECT_NEAR(r.bin_sum_confidence[g * slots + b], bins[b].sum_confidence, k_sweep_tolerance) << what;
    EXPECT_EQ(r.bin_sum_correct[g * slots + b], bins[b].sum_correct) << what;
  }
  EXPECT_NEAR(r.ece[g], m.ece, k_sweep_tolerance) << what << " candidate " << g;
  EXPECT_NEAR(r.mce[g], m.mce, k_sweep_tolerance) << what << " candidate " << g;
  if (o.adaece) {
    EXPECT_NEAR(r.adaece[g], m.adaece, k_sweep_tolerance) << what << " candidate " << g;
  }
  if (std::isinf(m.nll)) {
    EXPECT_EQ(r.nll[g], m.nll) << what << " candidate " << g;  // a stored probability of 0 on a label
  } else {
    EXPECT_NEAR(r.nll[g], m.nll, k_sweep_tolerance * (1 + std::fabs(m.nll))) << what << " candidate " << g;
  }
  EXPECT_NEAR(r.brier[g], m.brier, k_sweep_tolerance) << what << " candidate " << g;
  EXPECT_DOUBLE_EQ(r.accuracy[g], m.accuracy) << what << " candidate " << g;
}

std::vector<double> scaled_by(const dataset& d, const std::vector<double>& inv_per_row_class) {
  std::vector<double> u(d.logits.size());
  for (std::size_t i = 0; i < u.size(); ++i) u[i] = static_cast<double>(d.logits[i]) * inv_per_row_class[i];
  return u;
}

struct shape {
  std::int64_t n, k;
  bool ties;
};
const shape k_shapes[] = {{1, 2, false},   {7, 3, true},      {14, 2, false},
                          {500, 10, true}, {3000, 37, false}, {300, 200, true}};

class SweepCpu : public ::testing::TestWithParam<shape> {};

TEST_P(SweepCpu, TemperatureFamiliesMatchTheMetricSuite) {
  const auto [n, k, ties] = GetParam();
  const auto d = random_dataset(n, k, 100 + static_cast<std::uint64_t>(n * k), ties);
  auto backend = make_cpu_backend();
  auto res = backend->prepare(d.view());
  for (const sweep_options o :
       {sweep_options{15, binning::right_closed, true}, sweep_options{7, binning::left_closed, true},
        sweep_options{15, binning::guo_strict, true}, sweep_options{10, binning::torchmetrics, true},
        sweep_options{15, binning::digitize_linspace, true}}) {
    const std::vector<double> temps{0.3, 0.7, 1.0, 1.7, 4.0, 25.0};
    const auto r = backend->temperature(*res, temps, o);
    for (std::size_t g = 0; g < temps.size(); ++g) {
      std::vector<double> inv(d.logits.size(), 1.0 / temps[g]);
      expect_candidate(r, static_cast<std::int64_t>(g), from_scaled(d, scaled_by(d, inv)), o, "temperature");
    }
    // 70 points: crosses two re-anchoring points of the recurrence.
    const inverse_temperature_grid grid{0.2, 0.05, 70};
    const auto ri = backend->inverse_temperature(*res, grid, o);
    for (std::int64_t g = 0; g < grid.count; g += 3) {
      std::vector<double> inv(d.logits.size(), grid.at(g));
      expect_candidate(ri, g, from_scaled(d, scaled_by(d, inv)), o, "inverse temperature");
    }
  }
}

TEST_P(SweepCpu, WeightFamilyMatchesTheMetricSuite) {
  const auto [n, k, ties] = GetParam();
  const auto d = random_dataset(n, k, 200 + static_cast<std::uint64_t>(n * k), ties);
  auto backend = make_cpu_backend();
  auto res = backend->prepare(d.view());
  const sweep_options o{15, binning::right_closed, true};
  const std::vector<double> weights{0.0, 0.1, 0.5, 0.93, 1.0};
  const auto r = backend->weight(*res, weights, o);
  const auto base = from_scaled(d, scaled_by(d, std::vector<double>(d.logits.size(), 1.0)));
  for (std::size_t g = 0; g < weights.size(); ++g) {
    scored_split s = base;
    const double a = weights[g], u = (1 - a) / static_cast<double>(k);
    for (auto& p : s.probs) p = a * p + u;
    for (std::int64_t i = 0; i < n; ++i) {
      s.confidence[i] = s.probs[i * k + base.prediction[i]];  // the prediction does not move
      s.log_p_label[i] = std::log(s.probs[i * k + d.labels[i]]);
    }
    expect_candidate(r, static_cast<std::int64_t>(g), s, o, "weight");
  }
}

TEST_P(SweepCpu, BinTemperatureFamilyMatchesTheMetricSuite) {
  const auto [n, k, ties] = GetParam();
  const auto d = random_dataset(n, k, 300 + static_cast<std::uint64_t>(n * k), ties);
  auto backend = make_cpu_backend();
  auto res = backend->prepare(d.view());
  const sweep_options o{15, binning::right_closed, true};
  std::vector<std::int32_t> sample_bin(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) sample_bin[i] = static_cast<std::int32_t>((i * 7) % 4);
  const std::vector<double> bin_temps{1.3, 0.8, 2.5, 1.0};
  const std::vector<double> temps{0.5, 1.0, 3.0};
  for (std::int32_t target = 0; target < 4; ++target) {
    const auto r = backend->bin_temperature(*res, {sample_bin, bin_temps, target}, temps, o);
    for (std::size_t g = 0; g < temps.size(); ++g) {
      std::vector<double> inv(d.logits.size());
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < k; ++j)
          inv[i * k + j] = 1.0 / (sample_bin[i] == target ? temps[g] : bin_temps[sample_bin[i]]);
      expect_candidate(r, static_cast<std::int64_t>(g), from_scaled(d, scaled_by(d, inv)), o, "bin temperature");
    }
  }
}

TEST_P(SweepCpu, ClassTemperatureSessionMatchesTheMetricSuite) {
  const auto [n, k, ties] = GetParam();
  const auto d = random_dataset(n, k, 400 + static_cast<std::uint64_t>(n * k), ties);
  auto backend = make_cpu_backend();
  auto res = backend->prepare(d.view());
  const sweep_options o{15, binning::right_closed, true};
  auto rng = make_stream(7, 1);
  std::vector<double> temps(static_cast<std::size_t>(k));
  for (auto& t : temps) t = 0.5 + 1.5 * rng.uniform();
  auto session = backend->class_temperature(*res, temps, o);
  const std::vector<double> candidates{0.1, 0.6, 1.0, 2.2, 9.0};
  // Enough commits to pass the periodic full refresh (every K commits).
  const std::int64_t steps = std::min<std::int64_t>(k + 3, 12);
  for (std::int64_t step = 0; step < steps; ++step) {
    const auto cls = static_cast<std::int32_t>((step * 5) % k);
    const auto r = session->sweep(cls, candidates);
    for (std::size_t g = 0; g < candidates.size(); ++g) {
      std::vector<double> inv(d.logits.size());
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < k; ++j) inv[i * k + j] = 1.0 / (j == cls ? candidates[g] : temps[j]);
      expect_candidate(r, static_cast<std::int64_t>(g), from_scaled(d, scaled_by(d, inv)), o,
                       "class temperature step " + std::to_string(step));
    }
    temps[cls] = candidates[static_cast<std::size_t>(step) % candidates.size()];
    session->set(cls, temps[cls]);
    EXPECT_EQ(session->temperatures(), temps);
  }
}

/// Probability inputs hold log 0 = -inf wherever a stored probability is 0 (one-hot rows of
/// confident models): every temperature family agrees with the metric suite, a class whose
/// rivals are all at -inf keeps all the mass for every candidate of the class step, and nothing
/// turns into NaN.
TEST(SweepCpuEdges, MinusInfinityLogits) {
  const float ninf = -std::numeric_limits<float>::infinity();
  dataset d{6,
            3,
            {0.0f, ninf, ninf, ninf, -0.2f, ninf, -1.0f, -0.5f, -2.0f, ninf, ninf, 0.0f, -0.1f, ninf, -3.0f, 0.0f, ninf,
             ninf},
            {0, 1, 2, 2, 2, 1}};
  auto backend = make_cpu_backend();
  auto res = backend->prepare(d.view());
  const sweep_options o{15, binning::right_closed, true};
  const std::vector<double> candidates{0.1, 0.5, 1.0, 2.0, 9.0};
  const auto rt = backend->temperature(*res, candidates, o);
  for (std::size_t g = 0; g < candidates.size(); ++g)
    expect_candidate(rt, static_cast<std::int64_t>(g),
                     from_scaled(d, scaled_by(d, std::vector<double>(d.logits.size(), 1.0 / candidates[g]))), o,
                     "temperature");
  const inverse_temperature_grid grid{0.1, 0.3, 40};
  const auto ri = backend->inverse_temperature(*res, grid, o);
  for (std::int64_t g = 0; g < grid.count; ++g)
    expect_candidate(ri, g, from_scaled(d, scaled_by(d, std::vector<double>(d.logits.size(), grid.at(g)))), o,
                     "inverse temperature");
  std::vector<double> temps{1.0, 0.7, 1.5};
  auto session = backend->class_temperature(*res, temps, o);
  for (std::int32_t cls = 0; cls < 3; ++cls) {
    const auto r = session->sweep(cls, candidates);
    for (std::size_t g = 0; g < candidates.size(); ++g) {
      std::vector<double> inv(d.logits.size());
      for (std::int64_t i = 0; i < d.n; ++i)
        for (std::int64_t j = 0; j < d.k; ++j) inv[i * d.k + j] = 1.0 / (j == cls ? candidates[g] : temps[j]);
      expect_candidate(r, static_cast<std::int64_t>(g), from_scaled(d, scaled_by(d, inv)), o,
                       "class " + std::to_string(cls));
    }
    temps[cls] = candidates[static_cast<std::size_t>(cls)];
    session->set(cls, temps[cls]);
  }
}

TEST_P(SweepCpu, ProbabilitySetsMatchTheMetricSuite) {
  const auto [n, k, ties] = GetParam();
  const auto d = random_dataset(n, k, 500 + static_cast<std::uint64_t>(n * k), ties);
  auto backend = make_cpu_backend();
  const std::int64_t g_count = 3;
  std::vector<float> probs;
  std::vector<scored_split> expected;
  for (std::int64_t g = 0; g < g_count; ++g) {
    std::vector<double> inv(d.logits.size(), 0.5 + static_cast<double>(g));
    auto s = from_scaled(d, scaled_by(d, inv));
    // The sweep reads float probabilities: make the reference see the same values.
    for (auto& p : s.probs) p = static_cast<double>(static_cast<float>(p));
    for (std::int64_t i = 0; i < n; ++i) {
      std::int32_t pred = 0;
      for (std::int64_t j = 1; j < k; ++j)
        if (s.probs[i * k + j] > s.probs[i * k + pred]) pred = static_cast<std::int32_t>(j);
      s.prediction[i] = pred;
      s.confidence[i] = s.probs[i * k + pred];
      s.log_p_label[i] = std::log(s.probs[i * k + d.labels[i]]);
    }
    for (double p : s.probs) probs.push_back(static_cast<float>(p));
    expected.push_back(std::move(s));
  }
  const sweep_options o{10, binning::left_closed, true};
  const auto r = backend->probability_sets(probs, d.labels, g_count, k, o);
  for (std::int64_t g = 0; g < g_count; ++g) expect_candidate(r, g, expected[g], o, "probability sets");
}

std::string shape_name(const ::testing::TestParamInfo<shape>& p) {
  return "n" + std::to_string(p.param.n) + "_k" + std::to_string(p.param.k) + (p.param.ties ? "_ties" : "");
}
INSTANTIATE_TEST_SUITE_P(Shapes, SweepCpu, ::testing::ValuesIn(k_shapes), shape_name);

TEST(SweepCpuDeterminism, ThreadCountDoesNotChangeResults) {
  const auto d = random_dataset(5000, 20, 9, false);
  auto backend = make_cpu_backend();
  auto res = backend->prepare(d.view());
  const inverse_temperature_grid grid{0.1, 0.01, 300};
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = backend->inverse_temperature(*res, grid, {});
  omp_set_num_threads(3);
  const auto three = backend->inverse_temperature(*res, grid, {});
  omp_set_num_threads(before);
  EXPECT_EQ(one.ece, three.ece);
  EXPECT_EQ(one.adaece, three.adaece);
  EXPECT_EQ(one.nll, three.nll);
  EXPECT_EQ(one.bin_sum_confidence, three.bin_sum_confidence);
}

TEST(SweepCpuErrors, BadCandidatesAreInputErrors) {
  const auto d = random_dataset(10, 3, 1, false);
  auto backend = make_cpu_backend();
  auto res = backend->prepare(d.view());
  EXPECT_THROW(backend->temperature(*res, std::vector<double>{1.0, 0.0}, {}), input_error);
  EXPECT_THROW(backend->temperature(*res, std::vector<double>{NAN}, {}), input_error);
  EXPECT_THROW(backend->weight(*res, std::vector<double>{1.5}, {}), input_error);
  EXPECT_THROW(backend->inverse_temperature(*res, {1.0, -0.1, 20}, {}), input_error);
  EXPECT_THROW(backend->class_temperature(*res, std::vector<double>{1.0, 1.0}, {}), input_error);
  EXPECT_THROW(make_backend("gpu"), input_error);
  auto bad = random_dataset(10, 3, 2, false);
  bad.labels[4] = 3;  // == K
  EXPECT_THROW(backend->prepare(bad.view()), input_error);
  const std::vector<float> probs(30, 1.0f / 3.0f);
  EXPECT_THROW(backend->probability_sets(probs, bad.labels, 1, 3, {}), input_error);
}

}  // namespace
}  // namespace calibench
