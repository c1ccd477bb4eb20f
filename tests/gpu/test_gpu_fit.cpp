// GPU tests of `calibench fit`: every method fitted with the CUDA backend gives the CPU
// backend's parameters on the same seeded data. Skipped with a reason without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "host/calibrators/calibrator.hpp"
#include "host/sweep/device.hpp"
#include "common/rng.hpp"
#include "host/sweep/backend.hpp"

namespace calibench {
namespace {

/// Both backends compute in double; grid choices must be identical and continuous
/// parameters (NLL fits run on the host for both) agree to rounding.
constexpr double k_param_tolerance = 1e-12;

split_data synthetic_val(std::int64_t n, std::int64_t k, std::uint64_t seed) {
  auto rng = make_stream(seed, 0);
  split_data s;
  s.file = "synthetic";
  s.name = "val";
  s.num_samples = n;
  s.num_classes = k;
  s.value_type = "float32";
  s.values.resize(static_cast<std::size_t>(n * k));
  s.labels.resize(static_cast<std::size_t>(n));
  // float32-representable logits: the sweeps read float32, the host fits read double.
  for (auto& v : s.values) v = static_cast<double>(static_cast<float>(3.0 * rng.normal()));
  for (std::int64_t i = 0; i < n; ++i) {
    // Labels follow the logits at temperature 2 half of the time, uniform otherwise.
    const double* z = s.values.data() + i * k;
    std::int64_t best = 0;
    for (std::int64_t j = 1; j < k; ++j) best = z[j] > z[best] ? j : best;
    s.labels[i] = static_cast<std::int32_t>(rng.uniform() < 0.6 ? best : static_cast<std::int64_t>(rng.below(k)));
  }
  return s;
}

void expect_same(const calibrator& a, const calibrator& b, const std::string& what) {
  EXPECT_EQ(a.method, b.method) << what;
  EXPECT_NEAR(a.temperature, b.temperature, k_param_tolerance * a.temperature) << what;
  EXPECT_EQ(a.weight, b.weight) << what;
  EXPECT_EQ(a.edges, b.edges) << what;
  EXPECT_EQ(a.weights, b.weights) << what;
  ASSERT_EQ(a.temperatures.size(), b.temperatures.size()) << what;
  for (std::size_t i = 0; i < a.temperatures.size(); ++i)
    EXPECT_NEAR(a.temperatures[i], b.temperatures[i], k_param_tolerance * a.temperatures[i]) << what << " [" << i << "]";
  EXPECT_EQ(a.iterations_run, b.iterations_run) << what;
}

TEST(GpuFit, EveryMethodMatchesTheCpuBackend) {
  const device_report dev = discover_devices();
  if (!dev.cuda_built) GTEST_SKIP() << "CUDA backend not built";
  if (dev.device_count == 0) GTEST_SKIP() << "no CUDA device: " << dev.reason;
  auto cpu = make_cpu_backend();
  auto cuda = make_cuda_backend();
  struct config {
    std::string method, objective, search, calib_bins;
  };
  const std::vector<config> configs{{"ts", "nll", "grid", "15"},         {"ts", "ece", "grid", "15"},
                                    {"ts", "adaece", "grid", "15"},      {"ws", "nll", "grid", "15"},
                                    {"cws", "nll", "grid", "15"},        {"cws", "nll", "grid", "auto"},
                                    {"cts_conf", "nll", "grid", "15"},   {"bts", "nll", "grid", "15"},
                                    {"cts_greedy", "nll", "grid", "15"}, {"cts_greedy", "nll", "nudge", "15"}};
  for (const auto& [n, k, seed] : {std::tuple{3000, 10, 5u}, std::tuple{2000, 100, 6u}}) {
    const split_data val = synthetic_val(n, k, seed);
    for (const auto& c : configs) {
      fit_options o;
      o.method = c.method;
      o.objective = c.objective;
      o.cts_search = c.search;
      o.calib_bins = c.calib_bins;
      const std::string what = c.method + " " + c.objective + " " + c.search + " " + c.calib_bins + " n=" +
                               std::to_string(n) + " k=" + std::to_string(k) + " seed=" + std::to_string(seed);
      expect_same(fit_calibrator(val, o, *cpu), fit_calibrator(val, o, *cuda), what);
    }
  }
}

}  // namespace
}  // namespace calibench
