// The (alpha, beta) grid of class-wise loss scaling: grid x grid pairs over K classes, on the
// host (all cores) and, in CUDA builds, on the device (copies included, as fit_sctl calls it).
// items = pairs x classes. The device benchmark reports an error line when no device answers.
#include <benchmark/benchmark.h>

#include <vector>

#include "common/rng.hpp"
#include "host/calibrators/trained/sctl.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/device.hpp"

namespace {

using namespace calibench;

struct losses {
  std::vector<double> l0, l1, n1;
};

losses make_losses(std::int64_t k) {
  auto rng = make_stream(5, 0);
  losses l;
  for (std::int64_t i = 0; i < k; ++i) {
    l.l0.push_back(0.2 + 2.0 * rng.uniform());
    l.l1.push_back(l.l0.back() * (1.0 + 0.1 * rng.normal()));
  }
  l.n1 = sctl_normalise(l.l1, sctl_norm::nd);
  return l;
}

void BM_sctl_grid_cpu(benchmark::State& state) {
  const std::int64_t grid = state.range(0), k = state.range(1);
  const auto l = make_losses(k);
  const auto lattice = sctl_box_lattice(sctl_default_box(k), grid);
  const auto backend = make_cpu_backend();
  for (auto _ : state) benchmark::DoNotOptimize(backend->sctl_grid(l.l0, l.l1, l.n1, lattice));
  state.SetItemsProcessed(state.iterations() * grid * grid * k);
}

#if defined(CALIBENCH_HAVE_CUDA)
void BM_sctl_grid_cuda(benchmark::State& state) {
  if (discover_devices().device_count == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const std::int64_t grid = state.range(0), k = state.range(1);
  const auto l = make_losses(k);
  const auto lattice = sctl_box_lattice(sctl_default_box(k), grid);
  const auto backend = make_cuda_backend();
  for (auto _ : state) benchmark::DoNotOptimize(backend->sctl_grid(l.l0, l.l1, l.n1, lattice));
  state.SetItemsProcessed(state.iterations() * grid * grid * k);
}
BENCHMARK(BM_sctl_grid_cuda)
    ->ArgNames({"grid", "k"})
    ->ArgsProduct({{256, 1024, 4096}, {10, 100, 1000}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#endif

}  // namespace

BENCHMARK(BM_sctl_grid_cpu)
    ->ArgNames({"grid", "k"})
    ->ArgsProduct({{256, 1024}, {10, 100, 1000}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
