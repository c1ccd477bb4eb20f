// Throughput of the CPU sweep backend, every family, on synthetic logits of the CIFAR-10,
// CIFAR-100 and ImageNet shapes with G in {1, 100, 1000, 10000}. items = N x K x G
// (logit-candidates); counters: logit-candidates per second and the ECE at the best candidate.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <map>
#include <memory>
#include <vector>

#include "common/rng.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/sweep_input.hpp"

namespace {

using namespace calibench;

struct shape {
  std::int64_t n, k;
};
const shape k_shapes[] = {{10000, 10}, {10000, 100}, {25000, 1000}};

/// Synthetic logits (normal, scale 3) and uniform labels, generated once per shape.
const sweep_input& data_for(std::int64_t shape_index) {
  static std::map<std::int64_t, sweep_input> cache;
  auto it = cache.find(shape_index);
  if (it != cache.end()) return it->second;
  const auto [n, k] = k_shapes[shape_index];
  sweep_input in;
  in.num_samples = n;
  in.num_classes = k;
  in.logits.resize(static_cast<std::size_t>(n * k));
  in.labels.resize(static_cast<std::size_t>(n));
  auto rng = make_stream(12345, static_cast<std::uint64_t>(shape_index));
  for (auto& v : in.logits) v = static_cast<float>(3.0 * rng.normal());
  for (auto& y : in.labels) y = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
  return cache.emplace(shape_index, std::move(in)).first->second;
}

std::vector<double> linear(double start, double stop, std::int64_t count) {
  std::vector<double> v(static_cast<std::size_t>(count));
  for (std::int64_t g = 0; g < count; ++g)
    v[g] = count == 1 ? start : start + (stop - start) * static_cast<double>(g) / static_cast<double>(count - 1);
  return v;
}

void report(benchmark::State& state, const sweep_result& r, double work_per_iteration) {
  state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * work_per_iteration));
  state.counters["logit_candidates_per_s"] =
      benchmark::Counter(work_per_iteration * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["ece_best"] = r.ece[sweep_result::argmin(r.ece)];
  state.counters["threads"] = omp_get_max_threads();
}

/// Family runners: each sweeps G candidates on prepared data and returns the result.
enum class family { temperature, inverse_temperature, weight, class_temperature, bin_temperature, probability_sets };

sweep_result run(family f, sweep_backend& backend, resident_logits& data, const sweep_input& in, std::int64_t g,
                 const sweep_options& options) {
  switch (f) {
    case family::temperature: return backend.temperature(data, linear(0.5, 5.0, g), options);
    case family::inverse_temperature:
      return backend.inverse_temperature(data, {0.2, g > 1 ? 2.0 / static_cast<double>(g) : 0.0, g}, options);
    case family::weight: return backend.weight(data, linear(0.0, 1.0, g), options);
    case family::class_temperature: {
      auto session =
          backend.class_temperature(data, std::vector<double>(static_cast<std::size_t>(in.num_classes), 1.5), options);
      return session->sweep(0, linear(0.1, 10.0, g));
    }
    case family::bin_temperature: {
      std::vector<std::int32_t> bins(static_cast<std::size_t>(in.num_samples));
      for (std::int64_t i = 0; i < in.num_samples; ++i) bins[i] = static_cast<std::int32_t>(i % 15);
      const std::vector<double> temps(15, 1.5);
      return backend.bin_temperature(data, {bins, temps, 3}, linear(0.5, 5.0, g), options);
    }
    case family::probability_sets: break;
  }
  return {};
}

template <family F>
void BM_sweep_cpu(benchmark::State& state) {
  const auto& in = data_for(state.range(0));
  const std::int64_t g = state.range(1);
  const sweep_options options{15, binning::right_closed, state.range(2) != 0};
  auto backend = make_cpu_backend();
  auto data = backend->prepare(in.view());
  const double n = static_cast<double>(in.num_samples), k = static_cast<double>(in.num_classes);
  // Work is counted as N x K x G for every family so that rates compare across families;
  // the class- and bin-temperature families do O(1) and O(K / 15) work per sample-candidate.
  const double work = n * k * static_cast<double>(g);
  if (F == family::probability_sets) {
    // The input is G x N x K floats; refuse what would not fit comfortably in memory.
    if (n * k * static_cast<double>(g) * 4.0 > 2e9) {
      state.SkipWithError("probability sets of this size need more than 2 GB of input");
      return;
    }
    std::vector<float> probs(static_cast<std::size_t>(n * k * static_cast<double>(g)));
    auto rng = make_stream(99, 0);
    for (std::size_t row = 0; row < probs.size() / static_cast<std::size_t>(k); ++row) {
      double sum = 0;
      float* p = probs.data() + row * static_cast<std::size_t>(k);
      for (std::int64_t j = 0; j < in.num_classes; ++j) sum += (p[j] = static_cast<float>(rng.uniform() + 1e-3));
      for (std::int64_t j = 0; j < in.num_classes; ++j) p[j] = static_cast<float>(p[j] / sum);
    }
    sweep_result r;
    for (auto _ : state) {
      r = backend->probability_sets(probs, in.labels, g, in.num_classes, options);
      benchmark::DoNotOptimize(r.ece.data());
    }
    report(state, r, work);
    return;
  }
  sweep_result r;
  for (auto _ : state) {
    r = run(F, *backend, *data, in, g, options);
    benchmark::DoNotOptimize(r.ece.data());
  }
  report(state, r, work);
}

// Axes: shape (0 = 10000x10, 1 = 10000x100, 2 = 25000x1000), G, adaECE on/off.
void shapes_and_counts(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "G", "adaece"});
  b->ArgsProduct({{0, 1, 2}, {1, 100, 1000, 10000}, {0, 1}});
  b->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.05);
}

BENCHMARK(BM_sweep_cpu<family::inverse_temperature>)
    ->Name("BM_sweep_cpu_inverse_temperature")
    ->Apply(shapes_and_counts);
BENCHMARK(BM_sweep_cpu<family::temperature>)->Name("BM_sweep_cpu_temperature")->Apply(shapes_and_counts);
BENCHMARK(BM_sweep_cpu<family::weight>)->Name("BM_sweep_cpu_weight")->Apply(shapes_and_counts);
BENCHMARK(BM_sweep_cpu<family::class_temperature>)->Name("BM_sweep_cpu_class_temperature")->Apply(shapes_and_counts);
BENCHMARK(BM_sweep_cpu<family::bin_temperature>)->Name("BM_sweep_cpu_bin_temperature")->Apply(shapes_and_counts);
BENCHMARK(BM_sweep_cpu<family::probability_sets>)->Name("BM_sweep_cpu_probability_sets")->Apply(shapes_and_counts);

}  // namespace
