// Throughput of the CUDA sweep backend on synthetic logits (normal, scale 3) of the CIFAR-10
// (10000 x 10), CIFAR-100 (10000 x 100) and ImageNet (25000 x 1000) shapes: BM_sweep_gpu_<family>
// over shape x G. One iteration is one whole sweep as a caller sees it (kernels, reductions,
// equal-mass sorts and the copy of the results), timed with CUDA events (UseManualTime); the
// logits are made resident once, outside the timed loop. items = samples x classes x candidates.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "common/rng.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/device.hpp"
#include "kernels/cuda_check.hpp"

#include "git_commit.hpp"  // CALIBENCH_GIT_COMMIT, written at build time (bench/cpp/git_commit.cmake)

namespace {

using namespace calibench;

struct shape_def {
  const char* name;
  std::int64_t n, k;
};
constexpr std::array<shape_def, 3> k_shapes{
    {{"cifar10", 10000, 10}, {"cifar100", 10000, 100}, {"imagenet", 25000, 1000}}};

struct shape_data {
  std::vector<float> logits;
  std::vector<std::int32_t> labels;
  logit_set view;
  std::unique_ptr<resident_logits> resident;
};

/// The backend and the resident logit sets, made once and shared by all benchmarks.
struct bench_state {
  std::string skip_reason;
  std::unique_ptr<sweep_backend> backend;
  std::array<std::unique_ptr<shape_data>, k_shapes.size()> shapes;  // destroyed before the backend

  static bench_state& get() {
    static bench_state s = [] {
      bench_state b;
      const device_report dev = discover_devices();
      if (!dev.cuda_built) {
        b.skip_reason = "CUDA backend not built";
      } else if (dev.device_count == 0) {
        b.skip_reason = "no CUDA device: " + dev.reason;
      } else {
        b.backend = make_cuda_backend();
      }
      return b;
    }();
    return s;
  }

  shape_data& data(std::int64_t shape) {
    auto& slot = shapes[static_cast<std::size_t>(shape)];
    if (!slot) {
      const auto& def = k_shapes[static_cast<std::size_t>(shape)];
      slot = std::make_unique<shape_data>();
      auto rng = make_stream(1 + static_cast<std::uint64_t>(shape), 0);
      slot->logits.resize(static_cast<std::size_t>(def.n * def.k));
      slot->labels.resize(static_cast<std::size_t>(def.n));
      for (auto& v : slot->logits) v = static_cast<float>(3.0 * rng.normal());
      for (auto& y : slot->labels) y = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(def.k)));
      slot->view = {slot->logits, slot->labels, def.n, def.k};
      slot->resident = backend->prepare(slot->view);
    }
    return *slot;
  }
};

/// `count` points from `lo` to `hi` (lo alone when count is 1).
std::vector<double> linspace(double lo, double hi, std::int64_t count) {
  std::vector<double> v(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i)
    v[i] = count == 1 ? lo : lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(count - 1);
  return v;
}

/// Times `sweep()` with CUDA events and reports throughput and the best candidate's ECE. The
/// rate is computed from the event times here: Google Benchmark's own rates divide by CPU time.
template <class Sweep>
void time_sweeps(benchmark::State& state, std::int64_t n, std::int64_t k, std::int64_t g, Sweep&& sweep) {
  cudaEvent_t start = nullptr, stop = nullptr;
  CALIBENCH_CUDA_TRY(cudaEventCreate(&start));
  CALIBENCH_CUDA_TRY(cudaEventCreate(&stop));
  sweep_result result;
  double seconds = 0;
  for (auto _ : state) {
    CALIBENCH_CUDA_TRY(cudaEventRecord(start));
    try {
      result = sweep();
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      break;
    }
    CALIBENCH_CUDA_TRY(cudaEventRecord(stop));
    CALIBENCH_CUDA_TRY(cudaEventSynchronize(stop));
    float ms = 0;
    CALIBENCH_CUDA_TRY(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(static_cast<double>(ms) / 1e3);
    seconds += static_cast<double>(ms) / 1e3;
  }
  CALIBENCH_CUDA_TRY(cudaEventDestroy(start));
  CALIBENCH_CUDA_TRY(cudaEventDestroy(stop));
  if (state.error_occurred()) return;
  const double work = static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(g);
  state.SetItemsProcessed(state.iterations() * n * k * g);
  const std::int64_t best = sweep_result::argmin(result.ece);
  state.counters["ece_best"] = best >= 0 ? result.ece[static_cast<std::size_t>(best)] : -1.0;
  state.counters["logit_candidates_per_s"] =
      seconds > 0 ? work * static_cast<double>(state.iterations()) / seconds : 0.0;
}

/// Common prologue: skip without a device, otherwise the shape's resident data.
shape_data* setup(benchmark::State& state) {
  auto& b = bench_state::get();
  if (b.backend == nullptr) {
    state.SkipWithError(b.skip_reason.c_str());
    return nullptr;
  }
  const auto shape = state.range(0);
  state.SetLabel(k_shapes[static_cast<std::size_t>(shape)].name);
  return &b.data(shape);
}

sweep_options options_of(const benchmark::State& state) {
  sweep_options o;
  o.adaece = state.range(2) != 0;
  return o;
}

void BM_sweep_gpu_temperature(benchmark::State& state) {
  shape_data* d = setup(state);
  if (d == nullptr) return;
  const std::int64_t g = state.range(1);
  const auto temps = linspace(0.5, 5.0, g);
  const auto o = options_of(state);
  auto& backend = *bench_state::get().backend;
  time_sweeps(state, d->view.num_samples, d->view.num_classes, g,
              [&] { return backend.temperature(*d->resident, temps, o); });
}

void BM_sweep_gpu_inverse_temperature(benchmark::State& state) {
  shape_data* d = setup(state);
  if (d == nullptr) return;
  const std::int64_t g = state.range(1);
  // b from 1/5 to 1/0.5, the temperature benchmark's range.
  const inverse_temperature_grid grid{0.2, g > 1 ? 1.8 / static_cast<double>(g - 1) : 0.0, g};
  const auto o = options_of(state);
  auto& backend = *bench_state::get().backend;
  time_sweeps(state, d->view.num_samples, d->view.num_classes, g,
              [&] { return backend.inverse_temperature(*d->resident, grid, o); });
}

void BM_sweep_gpu_weight(benchmark::State& state) {
  shape_data* d = setup(state);
  if (d == nullptr) return;
  const std::int64_t g = state.range(1);
  const auto weights = linspace(0.0, 1.0, g);
  const auto o = options_of(state);
  auto& backend = *bench_state::get().backend;
  time_sweeps(state, d->view.num_samples, d->view.num_classes, g,
              [&] { return backend.weight(*d->resident, weights, o); });
}

void BM_sweep_gpu_class_temperature(benchmark::State& state) {
  shape_data* d = setup(state);
  if (d == nullptr) return;
  const std::int64_t g = state.range(1);
  const auto candidates = linspace(0.5, 5.0, g);
  const auto o = options_of(state);
  auto& backend = *bench_state::get().backend;
  const std::vector<double> initial(static_cast<std::size_t>(d->view.num_classes), 1.0);
  auto session = backend.class_temperature(*d->resident, initial, o);
  // One sweep of one class (the CTS step): O(1) per sample and candidate.
  time_sweeps(state, d->view.num_samples, d->view.num_classes, g, [&] { return session->sweep(0, candidates); });
}

void BM_sweep_gpu_bin_temperature(benchmark::State& state) {
  shape_data* d = setup(state);
  if (d == nullptr) return;
  const std::int64_t g = state.range(1);
  const auto candidates = linspace(0.5, 5.0, g);
  const auto o = options_of(state);
  auto& backend = *bench_state::get().backend;
  // 15 calibration bins; the candidates move one of them (a fifteenth of the samples).
  std::vector<std::int32_t> sample_bin(static_cast<std::size_t>(d->view.num_samples));
  for (std::size_t i = 0; i < sample_bin.size(); ++i) sample_bin[i] = static_cast<std::int32_t>(i % 15);
  const std::vector<double> bin_temps(15, 1.0);
  const bin_temperature_problem problem{sample_bin, bin_temps, 7};
  time_sweeps(state, d->view.num_samples, d->view.num_classes, g,
              [&] { return backend.bin_temperature(*d->resident, problem, candidates, o); });
}

void BM_sweep_gpu_probability_sets(benchmark::State& state) {
  shape_data* d = setup(state);
  if (d == nullptr) return;
  const std::int64_t g = state.range(1), n = d->view.num_samples, k = d->view.num_classes;
  const auto o = options_of(state);
  auto& backend = *bench_state::get().backend;
  // G softmax matrices of the logits at different temperatures; uploaded by every sweep (the
  // interface takes host memory), so this measures the copy as much as the kernels.
  std::vector<float> probs(static_cast<std::size_t>(g * n * k));
  for (std::int64_t c = 0; c < g; ++c) {
    const double b = 1.0 / (0.5 + static_cast<double>(c));
    for (std::int64_t i = 0; i < n; ++i) {
      const float* z = d->logits.data() + i * k;
      float* p = probs.data() + (c * n + i) * k;
      const double m = *std::max_element(z, z + k);
      double s = 0;
      for (std::int64_t j = 0; j < k; ++j) s += std::exp((z[j] - m) * b);
      for (std::int64_t j = 0; j < k; ++j) p[j] = static_cast<float>(std::exp((z[j] - m) * b) / s);
    }
  }
  time_sweeps(state, n, k, g, [&] { return backend.probability_sets(probs, d->labels, g, k, o); });
}

// shape: 0 = CIFAR-10, 1 = CIFAR-100, 2 = ImageNet; g: candidates; adaece: equal-mass bins on/off.
#define CALIBENCH_SWEEP_AXES(name, gs)     \
  BENCHMARK(name)                          \
      ->ArgNames({"shape", "g", "adaece"}) \
      ->ArgsProduct({{0, 1, 2}, gs, {1}})  \
      ->UseManualTime()                    \
      ->Unit(benchmark::kMillisecond)

const std::vector<std::int64_t> k_candidate_counts{1, 100, 1000, 10000};
CALIBENCH_SWEEP_AXES(BM_sweep_gpu_temperature, k_candidate_counts);
CALIBENCH_SWEEP_AXES(BM_sweep_gpu_inverse_temperature, k_candidate_counts);
CALIBENCH_SWEEP_AXES(BM_sweep_gpu_weight, k_candidate_counts);
CALIBENCH_SWEEP_AXES(BM_sweep_gpu_class_temperature, k_candidate_counts);
CALIBENCH_SWEEP_AXES(BM_sweep_gpu_bin_temperature, k_candidate_counts);
// The input is G x N x K floats in host memory: small G only.
CALIBENCH_SWEEP_AXES(BM_sweep_gpu_probability_sets, std::vector<std::int64_t>({1, 4}));
// Equal-width metrics only (no per-candidate sort): the kernels' own throughput.
BENCHMARK(BM_sweep_gpu_temperature)
    ->Name("BM_sweep_gpu_temperature_no_adaece")
    ->ArgNames({"shape", "g", "adaece"})
    ->ArgsProduct({{0, 1, 2}, {1000, 10000}, {0}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sweep_gpu_inverse_temperature)
    ->Name("BM_sweep_gpu_inverse_temperature_no_adaece")
    ->ArgNames({"shape", "g", "adaece"})
    ->ArgsProduct({{0, 1, 2}, {1000, 10000}, {0}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const device_report dev = discover_devices();
  benchmark::AddCustomContext("device", dev.device_count > 0 ? dev.name : "none (" + dev.reason + ")");
  benchmark::AddCustomContext("commit", CALIBENCH_GIT_COMMIT);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
