// Throughput of the CPU metric suite (all metrics of `calibench eval`) on synthetic logits
// of the CIFAR-10, CIFAR-100 and ImageNet shapes. items = samples x classes.
#include <benchmark/benchmark.h>

#include <vector>

#include "common/rng.hpp"
#include "host/metrics/metrics.hpp"

namespace {

using namespace calibench;

scored_split make_split(std::int64_t n, std::int64_t k) {
  auto rng = make_stream(1, 0);
  split_data d;
  d.num_samples = n;
  d.num_classes = k;
  d.values.resize(static_cast<std::size_t>(n * k));
  d.labels.resize(static_cast<std::size_t>(n));
  for (auto& v : d.values) v = 3.0 * rng.normal();
  for (auto& y : d.labels) y = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
  return score_split(std::move(d));
}

void BM_metrics_all(benchmark::State& state) {
  const auto s = make_split(state.range(0), state.range(1));
  metric_set m;
  for (auto _ : state) {
    m = compute_metrics(s, {});
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
  state.counters["ece"] = m.ece;
}
BENCHMARK(BM_metrics_all)
    ->ArgNames({"n", "k"})
    ->Args({10000, 10})
    ->Args({10000, 100})
    ->Args({25000, 1000})
    ->Unit(benchmark::kMillisecond);

void BM_metrics_score(benchmark::State& state) {
  auto rng = make_stream(2, 0);
  split_data d;
  d.num_samples = state.range(0);
  d.num_classes = state.range(1);
  d.values.resize(static_cast<std::size_t>(d.num_samples * d.num_classes));
  d.labels.assign(static_cast<std::size_t>(d.num_samples), 0);
  for (auto& v : d.values) v = 3.0 * rng.normal();
  for (auto _ : state) {
    split_data copy = d;
    benchmark::DoNotOptimize(score_split(std::move(copy)));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
}
BENCHMARK(BM_metrics_score)
    ->ArgNames({"n", "k"})
    ->Args({10000, 100})
    ->Args({25000, 1000})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
