// GPU tests of `calibench fit`: every method whose fit runs on the sweep backend, fitted with
// the CUDA backend, gives the CPU backend's parameters on the same seeded data. Skipped with a
// reason without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/rng.hpp"
#include "host/calibrators/registry.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/device.hpp"
#include "tests/support/gpu.hpp"

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

/// Temperatures agree within k_param_tolerance; every other parameter exactly.
void expect_same(const calibrator& a, const calibrator& b, const std::string& what) {
  EXPECT_EQ(a.method(), b.method()) << what;
  const nlohmann::json pa = a.params(), pb = b.params();
  ASSERT_EQ(pa.size(), pb.size()) << what;
  for (const auto& [key, va] : pa.items()) {
    ASSERT_TRUE(pb.contains(key)) << what << ": " << key;
    const nlohmann::json& vb = pb.at(key);
    if (key != "temperature" && key != "temperatures") {
      EXPECT_EQ(va, vb) << what << ": " << key;
      continue;
    }
    const std::vector<double> ta =
        va.is_array() ? va.get<std::vector<double>>() : std::vector<double>{va.get<double>()};
    const std::vector<double> tb =
        vb.is_array() ? vb.get<std::vector<double>>() : std::vector<double>{vb.get<double>()};
    ASSERT_EQ(ta.size(), tb.size()) << what;
    for (std::size_t i = 0; i < ta.size(); ++i)
      EXPECT_NEAR(ta[i], tb[i], k_param_tolerance * ta[i]) << what << " " << key << "[" << i << "]";
  }
}

TEST(GpuFit, EveryMethodMatchesTheCpuBackend) {
  CALIBENCH_REQUIRE_GPU();
  auto cpu = make_cpu_backend();
  auto cuda = make_cuda_backend();
  // The fits that run on the sweep backend (ts by NLL, cws and bts are host fits).
  struct config {
    std::string method;
    option_list options;
  };
  const std::vector<config> configs{{"ts", {{"objective", "ece"}}},
                                    {"ts", {{"objective", "adaece"}}},
                                    {"ws", {}},
                                    {"cts_conf", {}},
                                    {"cts_conf", {{"calib_bins", "auto"}}},
                                    {"cts_greedy", {}},
                                    {"cts_greedy", {{"cts_search", "nudge"}}}};
  for (const auto& [n, k, seed] : {std::tuple{3000, 10, 5u}, std::tuple{2000, 100, 6u}}) {
    const split_data val = synthetic_val(n, k, seed);
    for (const auto& c : configs) {
      const fit_request r = parse_fit_request(c.method, c.options, metric_options{});
      ASSERT_TRUE(method_named(c.method).uses_backend(r)) << c.method;
      std::string what = c.method;
      for (const auto& [key, value] : c.options) what += " " + key + "=" + value;
      what += " n=" + std::to_string(n) + " k=" + std::to_string(k) + " seed=" + std::to_string(seed);
      expect_same(fit_calibrator(val, r, cpu.get()), fit_calibrator(val, r, cuda.get()), what);
    }
  }
}

}  // namespace
}  // namespace calibench
