// Throughput of the CPU metric suite (all metrics of `calibench eval`, and each metric alone
// through metric_selection) on synthetic logits of the CIFAR-10, CIFAR-100 and ImageNet shapes.
// items = samples x classes.
#include <benchmark/benchmark.h>

#include <utility>
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
    ->Args({50000, 1000})
    ->Unit(benchmark::kMillisecond);

/// One metric alone (`eval --metrics NAME`): range(2) indexes metric_fields(). Where the time of
/// the full suite goes, metric by metric (the scoring of the split is BM_metrics_score).
void BM_metric_alone(benchmark::State& state) {
  const auto s = make_split(state.range(0), state.range(1));
  const auto field = static_cast<std::size_t>(state.range(2));
  metric_options o;
  o.selected = metric_selection::of({metric_fields()[field].name});
  metric_set m;
  for (auto _ : state) {
    m = compute_metrics(s, o);
    benchmark::DoNotOptimize(m);
  }
  state.SetLabel(metric_fields()[field].name);
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
}
void metric_alone_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "k", "metric"});
  for (const auto& [n, k] : {std::pair<std::int64_t, std::int64_t>{10000, 10}, {10000, 100}, {50000, 1000}}) {
    for (std::size_t f = 0; f < metric_fields().size(); ++f) b->Args({n, k, static_cast<std::int64_t>(f)});
  }
}
BENCHMARK(BM_metric_alone)->Apply(metric_alone_args)->Unit(benchmark::kMillisecond);

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
    ->Args({10000, 10})
    ->Args({10000, 100})
    ->Args({25000, 1000})
    ->Args({50000, 1000})
    ->Unit(benchmark::kMillisecond);

/// `calibench.evaluate(z, y, metrics=["ece"])` without Python: float32 logits read in place
/// (score_values, no probabilities kept), then the ECE.
void BM_ece_float32(benchmark::State& state) {
  auto rng = make_stream(3, 0);
  const std::int64_t n = state.range(0), k = state.range(1);
  std::vector<float> z(static_cast<std::size_t>(n * k));
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  for (auto& v : z) v = static_cast<float>(3.0 * rng.normal());
  for (auto& label : y) label = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
  metric_options o;
  o.selected = metric_selection::of({"ece"});
  metric_set m;
  for (auto _ : state) {
    m = compute_metrics(score_values(score_rows<float>{z.data(), n, k, k}, y, false, "bench", needs_of(o)), o);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations() * n * k);
  state.counters["ece"] = m.ece;
}
BENCHMARK(BM_ece_float32)
    ->ArgNames({"n", "k"})
    ->Args({10000, 10})
    ->Args({10000, 100})
    ->Args({50000, 1000})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
