// GPU tests of the CUDA sweep backend: every family against the CPU backend through the public
// interface (host/sweep/backend.hpp) on the same seeded inputs (normal logits, ties, duplicated rows,
// +-100 logits) of several shapes, plus chunking, large candidate counts, determinism and
// errors. Skipped with a reason when the CUDA backend is not built or no device answers.
// The base seed is printed on failure and can be overridden with CALIBENCH_TEST_SEED.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/rng.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/device.hpp"
#include "tests/support/datasets.hpp"
#include "tests/support/gpu.hpp"
#if defined(CALIBENCH_HAVE_CUDA)
#include "host/sweep/cuda_testing.hpp"
#endif

namespace calibench {
namespace {

/// Per-sample disagreement of confidence, log p_label and Brier between the backends: both work
/// in double from the same float logits and differ only by exp's last ulp (CUDA vs glibc), FMA
/// contraction on the device, the summation order of S and Q (warp tree vs SIMD lanes) and where
/// the recurrence is re-anchored; together well under 1e-13 per sample, relative to 1.
constexpr double k_term_tolerance = 1e-12;
/// A sample can change bin between backends only if its confidence lies this close to an edge
/// i/M, and two samples can swap order only if their confidences are this close: the bound on
/// the per-sample disagreement above (the recurrence and sums of many tiny exps reach ~1e-13).
constexpr double k_edge_window = 1e-12;

using test_support::base_seed;
using test_support::dataset;
using test_support::make_dataset;

/// Reference confidence of one row with per-class inverse temperatures.
template <class InvOf>
double confidence_of(const float* z, std::int64_t k, InvOf&& inv_of) {
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < k; ++j) m = std::max(m, static_cast<double>(z[j]) * inv_of(j));
  double s = 0;
  for (std::int64_t j = 0; j < k; ++j) s += std::exp(static_cast<double>(z[j]) * inv_of(j) - m);
  return 1.0 / s;
}

/// Reference confidences of one candidate (N values), computed only when a comparison needs
/// them to bound edge flips or group swaps: most runs never call it.
using confidence_fn = std::function<std::vector<double>(std::int64_t g)>;

/// Candidate g's confidences for a scalar inverse temperature per sample: inv(g, i).
template <class Inv>
confidence_fn scalar_confidences(const dataset& d, Inv inv) {
  return [&d, inv](std::int64_t g) {
    std::vector<double> c(static_cast<std::size_t>(d.n));
    for (std::int64_t i = 0; i < d.n; ++i) {
      const double b = inv(g, i);
      c[i] = confidence_of(d.logits.data() + i * d.k, d.k, [&](std::int64_t) { return b; });
    }
    return c;
  };
}

/// Samples whose confidence lies within the window of an interior bin edge.
std::int64_t near_edges(const double* conf, std::int64_t n, std::int32_t m) {
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int32_t e = 1; e < m; ++e)
      if (std::fabs(conf[i] - static_cast<double>(e) / m) <= k_edge_window) {
        ++count;
        break;
      }
  return count;
}

/// Samples that could swap across an equal-mass group boundary: at each boundary whose two
/// neighbours are within twice the window, every sample within twice the window of them.
std::int64_t near_group_boundaries(const double* conf, std::int64_t n, std::int32_t m) {
  std::vector<double> s(conf, conf + n);
  std::sort(s.begin(), s.end());
  std::int64_t count = 0, pos = 0;
  for (std::int32_t g = 0; g + 1 < m; ++g) {
    pos += n / m + (g < n % m ? 1 : 0);
    if (pos <= 0 || pos >= n) continue;
    const double lo = s[pos - 1], hi = s[pos];
    if (hi - lo > 2 * k_edge_window) continue;
    const auto first = std::lower_bound(s.begin(), s.end(), lo - 2 * k_edge_window);
    const auto last = std::upper_bound(s.begin(), s.end(), hi + 2 * k_edge_window);
    count += last - first;
  }
  return count;
}

/// CUDA result against CPU result. `conf` gives reference confidences that bound how many
/// samples may sit on a bin edge or a group boundary (none when it is empty).
void expect_same(const sweep_result& cpu, const sweep_result& gpu, const confidence_fn& conf, std::int64_t n,
                 const sweep_options& o, const std::string& what) {
  ASSERT_EQ(gpu.num_candidates, cpu.num_candidates) << what;
  ASSERT_EQ(gpu.num_bins, cpu.num_bins) << what;
  ASSERT_EQ(gpu.bin_count.size(), cpu.bin_count.size()) << what;
  const std::int32_t m = o.num_bins;
  const double nd = static_cast<double>(n);
  for (std::int64_t g = 0; g < cpu.num_candidates; ++g) {
    const std::string at = what + ", candidate " + std::to_string(g);
    std::vector<double> reference;  // filled on first need
    auto reference_of = [&]() -> const double* {
      if (!conf) return nullptr;
      if (reference.empty()) reference = conf(g);
      return reference.data();
    };
    std::int64_t moved = 0, total_cpu = 0, total_gpu = 0;
    double correct_cpu = 0, correct_gpu = 0;
    for (std::int32_t b = 0; b < m; ++b) {
      const auto idx = static_cast<std::size_t>(g * m + b);
      moved += std::llabs(gpu.bin_count[idx] - cpu.bin_count[idx]);
      total_cpu += cpu.bin_count[idx];
      total_gpu += gpu.bin_count[idx];
      correct_cpu += cpu.bin_sum_correct[idx];
      correct_gpu += gpu.bin_sum_correct[idx];
    }
    const std::int64_t flips = moved / 2;
    ASSERT_EQ(total_gpu, total_cpu) << at;
    ASSERT_EQ(correct_gpu, correct_cpu) << at;
    if (flips > 0) {
      const double* c = reference_of();
      const std::int64_t allowed_flips = c != nullptr ? near_edges(c, n, m) : 0;
      ASSERT_LE(flips, allowed_flips) << at << ": bin counts differ beyond samples on bin edges";
    }
    if (flips == 0) {
      for (std::int32_t b = 0; b < m; ++b) {
        const auto idx = static_cast<std::size_t>(g * m + b);
        const double cnt = static_cast<double>(std::max<std::int64_t>(cpu.bin_count[idx], 1));
        EXPECT_NEAR(gpu.bin_sum_confidence[idx], cpu.bin_sum_confidence[idx], k_term_tolerance * cnt)
            << at << " bin " << b;
        EXPECT_EQ(gpu.bin_sum_correct[idx], cpu.bin_sum_correct[idx]) << at << " bin " << b;
      }
      EXPECT_NEAR(gpu.mce[g], cpu.mce[g], 2 * k_term_tolerance) << at;
    }
    // A sample that changes bin moves |correct - confidence| <= 1 between two bins: 2/N of ECE.
    EXPECT_NEAR(gpu.ece[g], cpu.ece[g], k_term_tolerance + 2.0 * static_cast<double>(flips) / nd) << at;
    if (std::isinf(cpu.nll[g])) {
      EXPECT_EQ(gpu.nll[g], cpu.nll[g]) << at;
    } else {
      EXPECT_NEAR(gpu.nll[g], cpu.nll[g], k_term_tolerance * (1 + std::fabs(cpu.nll[g]))) << at;
    }
    EXPECT_NEAR(gpu.brier[g], cpu.brier[g], k_term_tolerance) << at;
    EXPECT_EQ(gpu.accuracy[g], cpu.accuracy[g]) << at;
    if (!o.adaece) {
      EXPECT_TRUE(std::isnan(gpu.adaece[g])) << at;
      continue;
    }
    // A swap across a group boundary moves at most 1/size of accuracy in two groups.
    std::int64_t swaps = 0;
    if (std::fabs(gpu.adaece[g] - cpu.adaece[g]) > k_term_tolerance) {
      const double* c = reference_of();
      swaps = c != nullptr ? near_group_boundaries(c, n, m) : 0;
    }
    const std::int64_t groups = std::min<std::int64_t>(m, n);
    const std::int64_t smallest = std::max<std::int64_t>(1, n / m);
    EXPECT_NEAR(gpu.adaece[g], cpu.adaece[g],
                k_term_tolerance + 2.0 * static_cast<double>(swaps) / static_cast<double>(groups * smallest))
        << at;
  }
}

void expect_identical(const sweep_result& a, const sweep_result& b, const std::string& what) {
  EXPECT_EQ(a.bin_count, b.bin_count) << what;
  EXPECT_EQ(a.bin_sum_confidence, b.bin_sum_confidence) << what;
  EXPECT_EQ(a.bin_sum_correct, b.bin_sum_correct) << what;
  EXPECT_EQ(a.ece, b.ece) << what;
  EXPECT_EQ(a.mce, b.mce) << what;
  EXPECT_EQ(a.nll, b.nll) << what;
  EXPECT_EQ(a.brier, b.brier) << what;
  EXPECT_EQ(a.accuracy, b.accuracy) << what;
  ASSERT_EQ(a.adaece.size(), b.adaece.size()) << what;
  for (std::size_t g = 0; g < a.adaece.size(); ++g) {
    if (std::isnan(a.adaece[g])) {
      EXPECT_TRUE(std::isnan(b.adaece[g])) << what << " candidate " << g;
    } else {
      EXPECT_EQ(a.adaece[g], b.adaece[g]) << what << " candidate " << g;
    }
  }
}

const sweep_options k_option_sets[] = {{15, binning::right_closed, true}, {10, binning::left_closed, true}};

struct shape {
  std::int64_t n, k;
  bool mixed;
};

std::vector<shape> all_shapes() {
  std::vector<shape> s;
  for (std::int64_t n : {1, 100, 5000, 25000})
    for (std::int64_t k : {2, 10, 100, 1000})
      for (bool mixed : {false, true}) s.push_back({n, k, mixed});
  return s;
}

std::string shape_name(const shape& s) {
  return "n" + std::to_string(s.n) + "_k" + std::to_string(s.k) + (s.mixed ? "_mixed" : "");
}
void PrintTo(const shape& s, std::ostream* os) { *os << shape_name(s); }

class GpuSweep : public ::testing::TestWithParam<shape> {
 protected:
  std::uint64_t seed(std::uint64_t family) const {
    const auto p = GetParam();
    return base_seed() + 1000 * family + static_cast<std::uint64_t>(p.n * 7 + p.k) + (p.mixed ? 1 : 0);
  }
};

TEST_P(GpuSweep, Temperature) {
  CALIBENCH_REQUIRE_GPU();
  const auto p = GetParam();
  const std::uint64_t s = seed(1);
  SCOPED_TRACE("seed " + std::to_string(s) + " (CALIBENCH_TEST_SEED=" + std::to_string(base_seed()) + ")");
  const auto d = make_dataset(p.n, p.k, s, p.mixed);
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  auto rc = cpu->prepare(d.view());
  auto rg = gpu->prepare(d.view());
  const std::vector<double> temps{0.3, 0.7, 1.0, 1.7, 4.0, 25.0};
  const auto conf = scalar_confidences(d, [temps](std::int64_t g, std::int64_t) { return 1.0 / temps[g]; });
  for (const auto& o : k_option_sets)
    expect_same(cpu->temperature(*rc, temps, o), gpu->temperature(*rg, temps, o), conf, d.n, o, "temperature");
  // G = 1.
  const std::vector<double> one{1.3};
  const auto conf_one = scalar_confidences(d, [](std::int64_t, std::int64_t) { return 1.0 / 1.3; });
  expect_same(cpu->temperature(*rc, one, k_option_sets[0]), gpu->temperature(*rg, one, k_option_sets[0]), conf_one, d.n,
              k_option_sets[0], "temperature, one candidate");
}

TEST_P(GpuSweep, InverseTemperature) {
  CALIBENCH_REQUIRE_GPU();
  const auto p = GetParam();
  const std::uint64_t s = seed(2);
  SCOPED_TRACE("seed " + std::to_string(s) + " (CALIBENCH_TEST_SEED=" + std::to_string(base_seed()) + ")");
  const auto d = make_dataset(p.n, p.k, s, p.mixed);
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  auto rc = cpu->prepare(d.view());
  auto rg = gpu->prepare(d.view());
  // 70 points cross two re-anchoring points of the recurrence; a single point is G = 1.
  for (const inverse_temperature_grid grid :
       {inverse_temperature_grid{0.2, 0.05, 70}, inverse_temperature_grid{1.3, 0.0, 1}}) {
    const auto conf = scalar_confidences(d, [grid](std::int64_t g, std::int64_t) { return grid.at(g); });
    for (const auto& o : k_option_sets)
      expect_same(cpu->inverse_temperature(*rc, grid, o), gpu->inverse_temperature(*rg, grid, o), conf, d.n, o,
                  "inverse temperature, " + std::to_string(grid.count) + " points");
  }
}

TEST_P(GpuSweep, Weight) {
  CALIBENCH_REQUIRE_GPU();
  const auto p = GetParam();
  const std::uint64_t s = seed(3);
  SCOPED_TRACE("seed " + std::to_string(s) + " (CALIBENCH_TEST_SEED=" + std::to_string(base_seed()) + ")");
  const auto d = make_dataset(p.n, p.k, s, p.mixed);
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  auto rc = cpu->prepare(d.view());
  auto rg = gpu->prepare(d.view());
  const std::vector<double> weights{0.0, 0.1, 0.5, 0.93, 1.0};
  const confidence_fn conf = [&](std::int64_t g) {
    auto c = scalar_confidences(d, [](std::int64_t, std::int64_t) { return 1.0; })(0);
    for (auto& v : c) v = weights[g] * v + (1 - weights[g]) / static_cast<double>(d.k);
    return c;
  };
  for (const auto& o : k_option_sets)
    expect_same(cpu->weight(*rc, weights, o), gpu->weight(*rg, weights, o), conf, d.n, o, "weight");
}

TEST_P(GpuSweep, BinTemperature) {
  CALIBENCH_REQUIRE_GPU();
  const auto p = GetParam();
  const std::uint64_t s = seed(4);
  SCOPED_TRACE("seed " + std::to_string(s) + " (CALIBENCH_TEST_SEED=" + std::to_string(base_seed()) + ")");
  const auto d = make_dataset(p.n, p.k, s, p.mixed);
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  auto rc = cpu->prepare(d.view());
  auto rg = gpu->prepare(d.view());
  std::vector<std::int32_t> sample_bin(static_cast<std::size_t>(d.n));
  for (std::int64_t i = 0; i < d.n; ++i) sample_bin[i] = static_cast<std::int32_t>((i * 7) % 4);
  const std::vector<double> bin_temps{1.3, 0.8, 2.5, 1.0};
  const std::vector<double> temps{0.5, 1.0, 3.0};
  const sweep_options o = k_option_sets[0];
  for (std::int32_t target = 0; target < 4; ++target) {
    const bin_temperature_problem problem{sample_bin, bin_temps, target};
    const auto conf = scalar_confidences(d, [&, target](std::int64_t g, std::int64_t i) {
      return 1.0 / (sample_bin[i] == target ? temps[g] : bin_temps[sample_bin[i]]);
    });
    expect_same(cpu->bin_temperature(*rc, problem, temps, o), gpu->bin_temperature(*rg, problem, temps, o), conf, d.n,
                o, "bin temperature, target " + std::to_string(target));
  }
}

TEST_P(GpuSweep, ClassTemperature) {
  CALIBENCH_REQUIRE_GPU();
  const auto p = GetParam();
  const std::uint64_t s = seed(5);
  SCOPED_TRACE("seed " + std::to_string(s) + " (CALIBENCH_TEST_SEED=" + std::to_string(base_seed()) + ")");
  const auto d = make_dataset(p.n, p.k, s, p.mixed);
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  auto rc = cpu->prepare(d.view());
  auto rg = gpu->prepare(d.view());
  auto rng = make_stream(s, 1);
  std::vector<double> temps(static_cast<std::size_t>(d.k));
  for (auto& t : temps) t = 0.5 + 1.5 * rng.uniform();
  const sweep_options o = k_option_sets[0];
  auto sc = cpu->class_temperature(*rc, temps, o);
  auto sg = gpu->class_temperature(*rg, temps, o);
  const std::vector<double> candidates{0.1, 0.6, 1.0, 2.2, 9.0};
  // Enough commits to pass the periodic full refresh (every K commits) for small K.
  const std::int64_t steps = std::min<std::int64_t>(d.k + 3, 12);
  for (std::int64_t step = 0; step < steps; ++step) {
    const auto cls = static_cast<std::int32_t>((step * 5) % d.k);
    const confidence_fn conf = [&, cls](std::int64_t g) {
      std::vector<double> c(static_cast<std::size_t>(d.n));
      for (std::int64_t i = 0; i < d.n; ++i)
        c[i] = confidence_of(d.logits.data() + i * d.k, d.k,
                             [&](std::int64_t j) { return 1.0 / (j == cls ? candidates[g] : temps[j]); });
      return c;
    };
    expect_same(sc->sweep(cls, candidates), sg->sweep(cls, candidates), conf, d.n, o,
                "class temperature step " + std::to_string(step) + " class " + std::to_string(cls));
    temps[cls] = candidates[static_cast<std::size_t>(step) % candidates.size()];
    sc->set(cls, temps[cls]);
    sg->set(cls, temps[cls]);
    EXPECT_EQ(sg->temperatures(), temps);
  }
}

TEST_P(GpuSweep, ProbabilitySets) {
  CALIBENCH_REQUIRE_GPU();
  const auto p = GetParam();
  const std::uint64_t s = seed(6);
  SCOPED_TRACE("seed " + std::to_string(s) + " (CALIBENCH_TEST_SEED=" + std::to_string(base_seed()) + ")");
  const auto d = make_dataset(p.n, p.k, s, p.mixed);
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  const std::int64_t g_count = 3;
  std::vector<float> probs;
  std::vector<double> conf_all;
  for (std::int64_t g = 0; g < g_count; ++g) {
    const double b = 0.5 + static_cast<double>(g);
    for (std::int64_t i = 0; i < d.n; ++i) {
      const float* z = d.logits.data() + i * d.k;
      double m = -std::numeric_limits<double>::infinity(), sum = 0;
      for (std::int64_t j = 0; j < d.k; ++j) m = std::max(m, z[j] * b);
      for (std::int64_t j = 0; j < d.k; ++j) sum += std::exp(z[j] * b - m);
      float best = 0;
      for (std::int64_t j = 0; j < d.k; ++j) {
        const auto v = static_cast<float>(std::exp(z[j] * b - m) / sum);
        probs.push_back(v);
        best = std::max(best, v);
      }
      conf_all.push_back(best);
    }
  }
  const confidence_fn conf = [&](std::int64_t g) {
    return std::vector<double>(conf_all.begin() + g * d.n, conf_all.begin() + (g + 1) * d.n);
  };
  for (const auto& o : k_option_sets)
    expect_same(cpu->probability_sets(probs, d.labels, g_count, d.k, o),
                gpu->probability_sets(probs, d.labels, g_count, d.k, o), conf, d.n, o, "probability sets");
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuSweep, ::testing::ValuesIn(all_shapes()),
                         [](const ::testing::TestParamInfo<shape>& param) { return shape_name(param.param); });

/// Chunking (forced small, and not a multiple of the recurrence's anchor spacing) must not
/// change a single bit: the tile size of the reductions is fixed and every recurrence unit
/// starts at its anchor.
TEST(GpuSweepChunks, ForcedChunksGiveIdenticalResults) {
  CALIBENCH_REQUIRE_GPU();
#if defined(CALIBENCH_HAVE_CUDA)
  for (std::int64_t k : {10, 37}) {
    const std::uint64_t s = base_seed() + 7000 + static_cast<std::uint64_t>(k);
    SCOPED_TRACE("seed " + std::to_string(s) + " k " + std::to_string(k));
    const auto d = make_dataset(300, k, s, true);
    auto cpu = make_cpu_backend();
    auto gpu = make_cuda_backend();
    auto rc = cpu->prepare(d.view());
    auto rg = gpu->prepare(d.view());
    const sweep_options o{15, binning::right_closed, true};
    const std::int64_t g_count = 200;
    std::vector<double> temps, weights;
    for (std::int64_t g = 0; g < g_count; ++g) {
      temps.push_back(0.2 + 0.03 * static_cast<double>(g));
      weights.push_back(static_cast<double>(g) / static_cast<double>(g_count - 1));
    }
    const inverse_temperature_grid grid{0.1, 0.013, g_count};
    std::vector<std::int32_t> sample_bin(static_cast<std::size_t>(d.n));
    for (std::int64_t i = 0; i < d.n; ++i) sample_bin[i] = static_cast<std::int32_t>(i % 3);
    const std::vector<double> bin_temps{1.5, 0.7, 2.0};
    const bin_temperature_problem problem{sample_bin, bin_temps, 1};
    std::vector<double> class_temps(static_cast<std::size_t>(k), 1.2);
    std::vector<float> probs;
    for (std::int64_t g = 0; g < 5; ++g)
      for (std::int64_t i = 0; i < d.n; ++i) {
        double sum = 0;
        const float* z = d.logits.data() + i * k;
        const double m = *std::max_element(z, z + k);
        for (std::int64_t j = 0; j < k; ++j) sum += std::exp((z[j] - m) / (1.0 + static_cast<double>(g)));
        for (std::int64_t j = 0; j < k; ++j)
          probs.push_back(static_cast<float>(std::exp((z[j] - m) / (1.0 + static_cast<double>(g))) / sum));
      }

    auto run_all = [&]() {
      std::vector<sweep_result> out;
      out.push_back(gpu->temperature(*rg, temps, o));
      out.push_back(gpu->inverse_temperature(*rg, grid, o));
      out.push_back(gpu->weight(*rg, weights, o));
      out.push_back(gpu->bin_temperature(*rg, problem, temps, o));
      auto session = gpu->class_temperature(*rg, class_temps, o);
      out.push_back(session->sweep(static_cast<std::int32_t>(k / 2), temps));
      out.push_back(gpu->probability_sets(probs, d.labels, 5, k, o));
      return out;
    };
    const auto whole = run_all();
    const std::int64_t before = cuda_sweep_testing::set_max_chunk_candidates(7);
    const auto chunked = run_all();
    cuda_sweep_testing::set_max_chunk_candidates(before);
    const char* names[] = {"temperature", "inverse temperature", "weight", "bin temperature", "class", "probs"};
    for (std::size_t f = 0; f < whole.size(); ++f) expect_identical(whole[f], chunked[f], names[f]);

    const auto conf_inv = scalar_confidences(d, [grid](std::int64_t g, std::int64_t) { return grid.at(g); });
    expect_same(cpu->inverse_temperature(*rc, grid, o), chunked[1], conf_inv, d.n, o, "inverse temperature, chunked");
    const auto conf_t = scalar_confidences(d, [temps](std::int64_t g, std::int64_t) { return 1.0 / temps[g]; });
    expect_same(cpu->temperature(*rc, temps, o), chunked[0], conf_t, d.n, o, "temperature, chunked");
  }
#endif
}

TEST(GpuSweepChunks, HundredThousandCandidates) {
  CALIBENCH_REQUIRE_GPU();
  const std::uint64_t s = base_seed() + 8000;
  SCOPED_TRACE("seed " + std::to_string(s));
  const auto d = make_dataset(100, 10, s, true);
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  auto rc = cpu->prepare(d.view());
  auto rg = gpu->prepare(d.view());
  const sweep_options o{15, binning::right_closed, true};
  const inverse_temperature_grid grid{0.05, 0.0001, 100000};
  const auto conf = scalar_confidences(d, [grid](std::int64_t g, std::int64_t) { return grid.at(g); });
  expect_same(cpu->inverse_temperature(*rc, grid, o), gpu->inverse_temperature(*rg, grid, o), conf, d.n, o,
              "inverse temperature, 100000 points");
  std::vector<double> temps(100000);
  for (std::size_t g = 0; g < temps.size(); ++g) temps[g] = 0.1 + 1e-4 * static_cast<double>(g);
  const auto conf_t = scalar_confidences(d, [&temps](std::int64_t g, std::int64_t) { return 1.0 / temps[g]; });
  expect_same(cpu->temperature(*rc, temps, o), gpu->temperature(*rg, temps, o), conf_t, d.n, o,
              "temperature, 100000 candidates");
}

/// Rows wider than the recurrence's registers (K > 1024) take the exact-exp path; one bin and
/// thousands of bins (the reduction's shared memory beyond the default 48 KiB) are edge cases.
TEST(GpuSweepEdges, WideRowsAndExtremeBinCounts) {
  CALIBENCH_REQUIRE_GPU();
  const std::uint64_t s = base_seed() + 8500;
  SCOPED_TRACE("seed " + std::to_string(s));
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  {
    const auto d = make_dataset(60, 1500, s, true);
    auto rc = cpu->prepare(d.view());
    auto rg = gpu->prepare(d.view());
    const sweep_options o{15, binning::right_closed, true};
    const inverse_temperature_grid grid{0.3, 0.02, 40};
    expect_same(cpu->inverse_temperature(*rc, grid, o), gpu->inverse_temperature(*rg, grid, o),
                scalar_confidences(d, [grid](std::int64_t g, std::int64_t) { return grid.at(g); }), d.n, o,
                "inverse temperature, K = 1500");
  }
  const auto d = make_dataset(700, 10, s + 1, true);
  auto rc = cpu->prepare(d.view());
  auto rg = gpu->prepare(d.view());
  const std::vector<double> temps{0.5, 1.0, 2.0};
  const auto conf = scalar_confidences(d, [temps](std::int64_t g, std::int64_t) { return 1.0 / temps[g]; });
  for (const sweep_options o :
       {sweep_options{1, binning::right_closed, true}, sweep_options{5000, binning::left_closed, true},
        sweep_options{15, binning::right_closed, false}})
    expect_same(cpu->temperature(*rc, temps, o), gpu->temperature(*rg, temps, o), conf, d.n, o,
                "temperature, " + std::to_string(o.num_bins) + " bins, adaece " + (o.adaece ? "on" : "off"));
}

/// Probability inputs carry log 0 = -inf (one-hot rows): every family and the class step agree
/// with the CPU backend, and nothing turns into NaN.
TEST(GpuSweepEdges, MinusInfinityLogits) {
  CALIBENCH_REQUIRE_GPU();
  const float ninf = -std::numeric_limits<float>::infinity();
  dataset d{6,
            3,
            {0.0f, ninf, ninf, ninf, -0.2f, ninf, -1.0f, -0.5f, -2.0f, ninf, ninf, 0.0f, -0.1f, ninf, -3.0f, 0.0f, ninf,
             ninf},
            {0, 1, 2, 2, 2, 1}};
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  auto rc = cpu->prepare(d.view());
  auto rg = gpu->prepare(d.view());
  const sweep_options o{15, binning::right_closed, true};
  const std::vector<double> candidates{0.1, 0.5, 1.0, 2.0, 9.0};
  expect_same(cpu->temperature(*rc, candidates, o), gpu->temperature(*rg, candidates, o), nullptr, d.n, o,
              "temperature");
  const inverse_temperature_grid grid{0.1, 0.3, 40};
  expect_same(cpu->inverse_temperature(*rc, grid, o), gpu->inverse_temperature(*rg, grid, o), nullptr, d.n, o,
              "inverse temperature");
  std::vector<double> temps{1.0, 0.7, 1.5};
  auto sc = cpu->class_temperature(*rc, temps, o);
  auto sg = gpu->class_temperature(*rg, temps, o);
  for (std::int32_t cls = 0; cls < 3; ++cls) {
    expect_same(sc->sweep(cls, candidates), sg->sweep(cls, candidates), nullptr, d.n, o,
                "class " + std::to_string(cls));
    sc->set(cls, candidates[static_cast<std::size_t>(cls)]);
    sg->set(cls, candidates[static_cast<std::size_t>(cls)]);
  }
}

TEST(GpuSweepDeterminism, RepeatedSweepsAreBitIdentical) {
  CALIBENCH_REQUIRE_GPU();
  const auto d = make_dataset(5000, 100, base_seed() + 9000, true);
  auto gpu = make_cuda_backend();
  auto rg = gpu->prepare(d.view());
  const inverse_temperature_grid grid{0.1, 0.01, 300};
  expect_identical(gpu->inverse_temperature(*rg, grid, {}), gpu->inverse_temperature(*rg, grid, {}), "recurrence");
  const std::vector<double> temps{0.4, 1.0, 2.5};
  expect_identical(gpu->temperature(*rg, temps, {}), gpu->temperature(*rg, temps, {}), "temperature");
}

TEST(GpuSweepInterface, NameAndErrors) {
  CALIBENCH_REQUIRE_GPU();
  const auto d = make_dataset(10, 3, 1, false);
  auto gpu = make_cuda_backend();
  EXPECT_EQ(gpu->name().rfind("cuda (", 0), 0U) << gpu->name();
  auto rg = gpu->prepare(d.view());
  EXPECT_THROW(gpu->temperature(*rg, std::vector<double>{1.0, 0.0}, {}), input_error);
  EXPECT_THROW(gpu->temperature(*rg, std::vector<double>{NAN}, {}), input_error);
  EXPECT_THROW(gpu->weight(*rg, std::vector<double>{1.5}, {}), input_error);
  EXPECT_THROW(gpu->inverse_temperature(*rg, {1.0, -0.1, 20}, {}), input_error);
  EXPECT_THROW(gpu->class_temperature(*rg, std::vector<double>{1.0, 1.0}, {}), input_error);
  auto session = gpu->class_temperature(*rg, std::vector<double>{1.0, 1.0, 1.0}, {});
  EXPECT_THROW(session->sweep(3, std::vector<double>{1.0}), input_error);
  EXPECT_THROW(session->set(0, -1.0), input_error);
  auto cpu = make_cpu_backend();
  auto rc = cpu->prepare(d.view());
  EXPECT_THROW(gpu->temperature(*rc, std::vector<double>{1.0}, {}), error);
  // Empty candidate lists give empty results, as on the CPU.
  const auto empty = gpu->temperature(*rg, std::vector<double>{}, {});
  EXPECT_EQ(empty.num_candidates, 0);
  EXPECT_TRUE(empty.ece.empty());
  // Labels outside [0, K) are rejected before they reach a kernel.
  dataset bad = d;
  bad.labels[4] = 3;
  EXPECT_THROW(gpu->prepare(bad.view()), input_error);
}

}  // namespace
}  // namespace calibench
