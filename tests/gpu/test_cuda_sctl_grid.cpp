// GPU tests: the (alpha, beta) grid of class-wise loss scaling on the device against the host
// grid on seeded random class-loss vectors, and the fit through both. Skipped with a reason when
// the CUDA backend is not built or no device answers.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/rng.hpp"
#include "host/calibrators/trained/sctl.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/device.hpp"
#include "tests/support/gpu.hpp"

namespace calibench {
namespace {

/// Device exp (<= 1 ulp, CUDA's documented bound) against glibc's: a few ulps of the sum.
constexpr double k_device_rtol = 1e-13;

TEST(GpuSctl, GridMatchesCpu) {
  CALIBENCH_REQUIRE_GPU();
  const auto cpu_backend = make_cpu_backend();
  const auto cuda_backend = make_cuda_backend();
  for (const std::int64_t k : {2, 10, 100, 1000}) {
    for (const std::int64_t grid : {2, 33, 256, 1024}) {
      const std::uint64_t seed = 91 + static_cast<std::uint64_t>(k * 7 + grid);
      auto rng = make_stream(seed, 0);
      std::vector<double> l0(static_cast<std::size_t>(k)), l1(l0.size());
      for (std::size_t i = 0; i < l0.size(); ++i) {
        l0[i] = 0.2 + 2.0 * rng.uniform();
        l1[i] = l0[i] * (1.0 + 0.1 * rng.normal());
      }
      for (const auto norm : {sctl_norm::nd, sctl_norm::mm, sctl_norm::cm}) {
        const auto n1 = sctl_normalise(l1, norm);
        const sctl_box box = sctl_default_box(k);
        const auto cpu = cpu_backend->sctl_grid(l0, l1, n1, sctl_box_lattice(box, grid));
        const auto gpu = cuda_backend->sctl_grid(l0, l1, n1, sctl_box_lattice(box, grid));
        ASSERT_EQ(cpu.size(), gpu.size());
        for (std::size_t i = 0; i < cpu.size(); ++i)
          ASSERT_NEAR(gpu[i], cpu[i], k_device_rtol * (1.0 + std::abs(cpu[i])))
              << "seed " << seed << " K " << k << " grid " << grid << " pair " << i;
        // The whole fit: the same best pair unless two pairs tie within the rounding.
        sctl_fit_options on_cpu, on_gpu;
        on_cpu.norm = on_gpu.norm = norm;
        on_cpu.grid = on_gpu.grid = grid;
        on_cpu.run_slsqp = on_gpu.run_slsqp = false;
        const auto a = fit_sctl(l0, l1, on_cpu, *cpu_backend);
        const auto b = fit_sctl(l0, l1, on_gpu, *cuda_backend);
        EXPECT_EQ(b.grid_backend, "cuda");
        EXPECT_NEAR(b.objective, a.objective, k_device_rtol * (1.0 + a.objective)) << "seed " << seed;
      }
    }
  }
}

}  // namespace
}  // namespace calibench
