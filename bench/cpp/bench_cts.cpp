// One full pass of class-based temperature scaling (every class's grid, the others fixed,
// committing the best after each class): the session's O(1) per sample-candidate update
// against the naive loop that recomputes every softmax for every candidate. 5,000 x 100
// logits, 100 classes x 100 grid values (0.1..10), 15 bins. The counter `ece_final` must be
// equal for both.
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "common/rng.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/sweep_input.hpp"

namespace {

using namespace calibench;

constexpr std::int64_t k_n = 5000, k_k = 100;
constexpr std::int32_t k_bins = 15;

const sweep_input& data() {
  static const sweep_input in = [] {
    sweep_input d;
    d.num_samples = k_n;
    d.num_classes = k_k;
    d.logits.resize(static_cast<std::size_t>(k_n * k_k));
    d.labels.resize(static_cast<std::size_t>(k_n));
    auto rng = make_stream(2024, 0);
    for (auto& v : d.logits) v = static_cast<float>(4.0 * rng.normal());
    // Labels follow the logits at temperature 2: a model over-confident like real ones.
    for (std::int64_t i = 0; i < k_n; ++i) {
      const float* z = d.logits.data() + i * k_k;
      double m = z[0], s = 0;
      for (std::int64_t j = 1; j < k_k; ++j) m = std::max(m, static_cast<double>(z[j]));
      for (std::int64_t j = 0; j < k_k; ++j) s += std::exp((z[j] - m) / 2.0);
      double u = rng.uniform() * s, acc = 0;
      std::int32_t y = k_k - 1;
      for (std::int64_t j = 0; j < k_k; ++j) {
        acc += std::exp((z[j] - m) / 2.0);
        if (u < acc) {
          y = static_cast<std::int32_t>(j);
          break;
        }
      }
      d.labels[i] = y;
    }
    return d;
  }();
  return in;
}

std::vector<double> grid() {
  std::vector<double> g;
  for (int i = 1; i <= 100; ++i) g.push_back(0.1 * i);
  return g;
}

/// ECE of softmax(z_j / T_j), recomputed from scratch (the naive inner step).
double naive_ece(const sweep_input& d, const std::vector<double>& temps) {
  std::vector<std::int64_t> count(k_bins);
  std::vector<double> sum_conf(k_bins), sum_correct(k_bins);
  std::vector<double> u(static_cast<std::size_t>(k_k));
  for (std::int64_t i = 0; i < k_n; ++i) {
    const float* z = d.logits.data() + i * k_k;
    std::int32_t pred = 0;
    for (std::int64_t j = 0; j < k_k; ++j) {
      u[j] = z[j] * (1.0 / temps[j]);
      if (u[j] > u[pred]) pred = static_cast<std::int32_t>(j);
    }
    double s = 0;
    for (std::int64_t j = 0; j < k_k; ++j) s += std::exp(u[j] - u[pred]);
    const double c = 1.0 / s;
    const std::int32_t b = bin_index(binning::right_closed, c, k_bins);
    count[b] += 1;
    sum_conf[b] += c;
    sum_correct[b] += pred == d.labels[i] ? 1.0 : 0.0;
  }
  double ece = 0;
  for (std::int32_t b = 0; b < k_bins; ++b) ece += std::fabs(sum_correct[b] - sum_conf[b]);
  return ece / static_cast<double>(k_n);
}

void BM_cts_pass_naive(benchmark::State& state) {
  const auto& d = data();
  const auto g = grid();
  double final_ece = 0;
  for (auto _ : state) {
    std::vector<double> temps(k_k, 2.0);
    double current = naive_ece(d, temps);
    for (std::int64_t cls = 0; cls < k_k; ++cls) {
      double best_t = temps[cls], best = current;
      for (double t : g) {
        std::vector<double> trial = temps;
        trial[cls] = t;
        const double e = naive_ece(d, trial);
        if (e < best) {
          best = e;
          best_t = t;
        }
      }
      temps[cls] = best_t;
      current = best;
    }
    final_ece = current;
  }
  state.counters["ece_final"] = final_ece;
  state.SetItemsProcessed(state.iterations() * k_n * k_k * static_cast<std::int64_t>(g.size()) * k_k);
}
BENCHMARK(BM_cts_pass_naive)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

void BM_cts_pass_session(benchmark::State& state) {
  const auto& d = data();
  const auto g = grid();
  auto backend = make_cpu_backend();
  auto resident = backend->prepare(d.view());
  double final_ece = 0;
  for (auto _ : state) {
    auto session =
        backend->class_temperature(*resident, std::vector<double>(k_k, 2.0), {k_bins, binning::right_closed, false});
    double current =
        backend->temperature(*resident, std::vector<double>{2.0}, {k_bins, binning::right_closed, false}).ece[0];
    for (std::int32_t cls = 0; cls < k_k; ++cls) {
      const auto r = session->sweep(cls, g);
      std::int64_t best = -1;
      for (std::size_t i = 0; i < g.size(); ++i) {
        if (r.ece[i] < (best < 0 ? current : r.ece[static_cast<std::size_t>(best)]))
          best = static_cast<std::int64_t>(i);
      }
      if (best >= 0) {
        session->set(cls, g[static_cast<std::size_t>(best)]);
        current = r.ece[static_cast<std::size_t>(best)];
      }
    }
    final_ece = current;
  }
  state.counters["ece_final"] = final_ece;
  state.SetItemsProcessed(state.iterations() * k_n * k_k * static_cast<std::int64_t>(g.size()) * k_k);
}
BENCHMARK(BM_cts_pass_session)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);

}  // namespace
