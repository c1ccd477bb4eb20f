// GPU tests: the CUDA top-label kernel against the CPU path on seeded random logits.
// Skipped with a reason when the CUDA backend is not built or no device answers.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "host/device.hpp"
#include "host/rng.hpp"
#include "kernels/calib_math.hpp"
#if defined(CALIBENCH_HAVE_CUDA)
#include "host/cuda_top_label.hpp"
#endif

namespace calibench {
namespace {

/// float32 softmax on the device versus float64 on the host: a few float ulps relative.
constexpr double k_float_vs_double = 2e-6;

TEST(GpuTopLabel, MatchesCpu) {
  const device_report dev = discover_devices();
  if (!dev.cuda_built) GTEST_SKIP() << "CUDA backend not built";
  if (dev.device_count == 0) GTEST_SKIP() << "no CUDA device: " << dev.reason;
#if defined(CALIBENCH_HAVE_CUDA)
  for (std::int64_t k : {2, 10, 1000}) {
    const std::int64_t n = 5000;
    const std::uint64_t seed = 17 + static_cast<std::uint64_t>(k);
    auto rng = make_stream(seed, 0);
    std::vector<float> logits(static_cast<std::size_t>(n * k));
    std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
    for (auto& v : logits) v = static_cast<float>(4.0 * rng.normal());
    for (auto& y : labels) y = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
    for (float inv_t : {1.0f, 0.5f}) {
      const auto gpu = top_label_cuda(logits, labels, k, inv_t);
      for (std::int64_t i = 0; i < n; ++i) {
        const auto cpu = softmax_top_label<double>(logits.data() + i * k, k, labels[i], static_cast<double>(inv_t));
        ASSERT_EQ(gpu.prediction[i], cpu.pred) << "seed " << seed << " k " << k << " row " << i;
        ASSERT_NEAR(gpu.confidence[i], cpu.confidence, k_float_vs_double) << "seed " << seed << " row " << i;
        ASSERT_NEAR(gpu.log_p_label[i], cpu.log_p_label, k_float_vs_double * (1 + std::fabs(cpu.log_p_label)))
            << "seed " << seed << " row " << i;
      }
    }
  }
#endif
}

}  // namespace
}  // namespace calibench
