// Classwise metrics (docs/metrics.md): per class, its column of probabilities binned (SCE),
// cut into equal-mass groups (ACE) and ranked (one-vs-rest AUROC), and the per-class and
// per-bin under/over split of SCE; classes run in parallel over blocks of columns and are
// reduced in class order.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include "common/error.hpp"
#include "common/parallel.hpp"
#include "host/metrics/families.hpp"

namespace calibench {
namespace {

using detail::k_nan;

/// Classes gathered into contiguous columns at a time: each row contributes this many
/// adjacent doubles (512 bytes), which keeps the strided column gather cache-friendly.
constexpr std::int64_t k_class_block = 64;

/// Per-class results, reduced in class order after the parallel loop.
struct class_result {
  double ece = 0;      // classwise equal-width ECE
  double ace_sum = 0;  // sum over non-empty equal-mass groups of |A - C|
  std::int64_t ace_groups = 0;
  double auroc = k_nan;  // NaN when the class has no positives or no negatives
};

/// bin_column under one rule: bin_index_fast (no search over the edges; equal to bin_index for
/// every value, tests/unit/test_calib_math.cpp), guo-strict as right-closed without p = 0.
template <binning Rule>
void bin_column_as(std::span<const double> column, std::span<const std::int32_t> labels, std::int32_t cls,
                   std::int32_t m, std::vector<bin_stats>& bins) {
  constexpr binning fast = Rule == binning::guo_strict ? binning::right_closed : Rule;
  for (std::size_t i = 0; i < column.size(); ++i) {
    const double p = column[i];
    if (Rule == binning::guo_strict && !(p > 0.0)) continue;  // p = 0 is in no bin but counts in N
    auto& b = bins[static_cast<std::size_t>(bin_index_fast<fast>(p, m))];
    b.count += 1;
    b.sum_confidence += p;
    b.sum_correct += labels[i] == cls ? 1.0 : 0.0;
  }
}

/// Equal-width bin statistics of class `cls` over its column of probabilities, one entry per
/// slot of the classwise rule (`bins` has that size).
void bin_column(std::span<const double> column, std::span<const std::int32_t> labels, std::int32_t cls,
                const metric_options& options, std::vector<bin_stats>& bins) {
  const std::int32_t m = options.num_bins;
  std::fill(bins.begin(), bins.end(), bin_stats{});
  switch (options.classwise_binning()) {
    case binning::right_closed: return bin_column_as<binning::right_closed>(column, labels, cls, m, bins);
    case binning::left_closed: return bin_column_as<binning::left_closed>(column, labels, cls, m, bins);
    case binning::guo_strict: return bin_column_as<binning::guo_strict>(column, labels, cls, m, bins);
    case binning::torchmetrics: return bin_column_as<binning::torchmetrics>(column, labels, cls, m, bins);
    case binning::digitize_linspace: return bin_column_as<binning::digitize_linspace>(column, labels, cls, m, bins);
  }
}

/// Per-thread scratch of the class loop.
struct class_scratch {
  std::vector<bin_stats> bins;
  std::vector<std::pair<double, std::int64_t>> sorted;
  detail::radix_scratch radix;
};

/// Calls fn(scratch, cls, column) for every class, with the class's column of probabilities
/// gathered contiguously; blocks of columns run in parallel, each thread with its own scratch
/// (its bins sized for the classwise rule). fn writes only to per-class storage.
template <class Fn>
void for_each_class_column(const scored_split& s, const metric_options& options, Fn&& fn) {
  const std::int64_t n = s.num_samples;
  const std::int64_t k = s.num_classes;
  const std::int64_t num_blocks = (k + k_class_block - 1) / k_class_block;
  thread_errors errors;
#pragma omp parallel
  {
    std::vector<double> columns;
    class_scratch scratch;
    errors.run([&] {
      scratch.bins.resize(static_cast<std::size_t>(bin_slots(options.classwise_binning(), options.num_bins)));
    });
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t block = 0; block < num_blocks; ++block) {
      errors.run([&] {
        const std::int64_t j0 = block * k_class_block;
        const std::int64_t width = std::min(k_class_block, k - j0);
        columns.resize(static_cast<std::size_t>(width * n));
        for (std::int64_t i = 0; i < n; ++i) {
          const double* row = s.probs.data() + i * k + j0;
          for (std::int64_t c = 0; c < width; ++c) columns[c * n + i] = row[c];
        }
        for (std::int64_t c = 0; c < width; ++c)
          fn(scratch, static_cast<std::int32_t>(j0 + c),
             std::span<const double>(columns.data() + c * n, static_cast<std::size_t>(n)));
      });
    }
  }
  errors.rethrow();
}

/// Classwise metrics of one class from its column of probabilities.
class_result classwise_one(std::span<const double> column, std::span<const std::int32_t> labels, std::int32_t cls,
                           const metric_options& options, class_scratch& scratch) {
  const auto n = static_cast<std::int64_t>(column.size());
  const std::int32_t m = options.num_bins;
  class_result r;

  bin_column(column, labels, cls, options, scratch.bins);
  for (const auto& b : scratch.bins) r.ece += std::fabs(b.sum_correct - b.sum_confidence);
  r.ece /= static_cast<double>(n);
  if (!options.selected.any({"ace", "auroc"})) return r;  // SCE alone needs no sort

  auto& sorted = scratch.sorted;
  detail::sort_values(column, sorted, scratch.radix);  // value ascending, ties by index

  // ACE: equal-mass groups of the sorted column.
  std::int64_t pos = 0;
  for (std::int64_t g = 0; g < m; ++g) {
    const std::int64_t size = array_split_size(n, m, g);
    if (size == 0) continue;
    double sum_p = 0, sum_y = 0;
    for (std::int64_t i = pos; i < pos + size; ++i) {
      sum_p += sorted[i].first;
      sum_y += labels[sorted[i].second] == cls ? 1.0 : 0.0;
    }
    r.ace_sum += std::fabs(sum_y / static_cast<double>(size) - sum_p / static_cast<double>(size));
    r.ace_groups += 1;
    pos += size;
  }

  // AUROC: Mann-Whitney with average ranks over tie groups.
  std::int64_t positives = 0;
  double rank_sum = 0;
  for (std::int64_t a = 0; a < n;) {
    std::int64_t b = a;
    std::int64_t group_positives = 0;
    while (b < n && sorted[b].first == sorted[a].first) {
      group_positives += labels[sorted[b].second] == cls ? 1 : 0;
      ++b;
    }
    const double average_rank = 0.5 * static_cast<double>(a + 1 + b);  // ranks a+1..b
    rank_sum += average_rank * static_cast<double>(group_positives);
    positives += group_positives;
    a = b;
  }
  const std::int64_t negatives = n - positives;
  if (positives > 0 && negatives > 0) {
    const double p = static_cast<double>(positives);
    r.auroc = (rank_sum - p * (p + 1.0) / 2.0) / (p * static_cast<double>(negatives));
  }
  return r;
}

std::vector<class_result> classwise_all(const scored_split& s, const metric_options& options) {
  std::vector<class_result> results(static_cast<std::size_t>(s.num_classes));
  for_each_class_column(s, options, [&](class_scratch& scratch, std::int32_t cls, std::span<const double> column) {
    results[static_cast<std::size_t>(cls)] = classwise_one(column, s.labels, cls, options, scratch);
  });
  return results;
}

}  // namespace

namespace detail {

void sort_values(std::span<const double> values, std::vector<std::pair<double, std::int64_t>>& sorted,
                 radix_scratch& scratch) {
  const auto n = static_cast<std::int64_t>(values.size());
  sorted.resize(static_cast<std::size_t>(n));
  if (n < 512) {
    for (std::int64_t i = 0; i < n; ++i) sorted[i] = {values[i], i};
    std::sort(sorted.begin(), sorted.end());
    return;
  }
  constexpr int k_digit_bits = 11;
  constexpr int k_passes = (64 + k_digit_bits - 1) / k_digit_bits;
  constexpr std::size_t k_buckets = std::size_t{1} << k_digit_bits;
  auto& keys = scratch.keys;
  auto& index = scratch.index;
  keys.resize(static_cast<std::size_t>(n));
  index.resize(static_cast<std::size_t>(n));
  scratch.keys_out.resize(static_cast<std::size_t>(n));
  scratch.index_out.resize(static_cast<std::size_t>(n));
  std::vector<std::int64_t> counts(k_passes * k_buckets, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    // Non-negative doubles order as their bit patterns; -0 (sign bit set) is read as +0.
    const double v = values[i] == 0.0 ? 0.0 : values[i];
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    keys[i] = bits;
    index[i] = i;
    for (int pass = 0; pass < k_passes; ++pass)
      counts[static_cast<std::size_t>(pass) * k_buckets + ((bits >> (pass * k_digit_bits)) & (k_buckets - 1))] += 1;
  }
  for (int pass = 0; pass < k_passes; ++pass) {
    std::int64_t* count = counts.data() + static_cast<std::size_t>(pass) * k_buckets;
    if (std::any_of(count, count + k_buckets, [n](std::int64_t c) { return c == n; })) continue;  // one digit
    std::int64_t start = 0;
    for (std::size_t b = 0; b < k_buckets; ++b) {
      const std::int64_t c = count[b];
      count[b] = start;
      start += c;
    }
    for (std::int64_t i = 0; i < n; ++i) {  // stable: equal digits keep their order
      const std::int64_t to = count[(keys[i] >> (pass * k_digit_bits)) & (k_buckets - 1)]++;
      scratch.keys_out[to] = keys[i];
      scratch.index_out[to] = index[i];
    }
    keys.swap(scratch.keys_out);
    index.swap(scratch.index_out);
  }
  for (std::int64_t i = 0; i < n; ++i) sorted[i] = {values[index[i]], index[i]};
}

void classwise_metrics(const scored_split& s, const metric_options& options, metric_set& m) {
  const std::int64_t k = s.num_classes;
  CALIBENCH_EXPECTS(!s.probs.empty(), "classwise metrics need the probabilities (score_needs)");
  const auto per_class = classwise_all(s, options);
  double ace_sum = 0, auroc_sum = 0;
  std::int64_t ace_groups = 0, auroc_classes = 0;
  for (const auto& r : per_class) {
    m.sce += r.ece;
    ace_sum += r.ace_sum;
    ace_groups += r.ace_groups;
    if (!std::isnan(r.auroc)) {
      auroc_sum += r.auroc;
      auroc_classes += 1;
    }
  }
  if (options.reduction == classwise_reduction::mean) {
    m.sce /= static_cast<double>(k);
  }
  m.ace = ace_sum / static_cast<double>(ace_groups);
  m.auroc = auroc_classes > 0 ? auroc_sum / static_cast<double>(auroc_classes) : k_nan;
}

}  // namespace detail

classwise_breakdown breakdown_classwise(const scored_split& s, const metric_options& options) {
  CALIBENCH_EXPECTS(!s.probs.empty(), "the classwise breakdown needs the probabilities (score_needs)");
  const std::int64_t n = s.num_samples;
  const std::int64_t k = s.num_classes;
  const auto slots = static_cast<std::size_t>(bin_slots(options.classwise_binning(), options.num_bins));
  // gap[j * slots + i] = sum over bin i of class j of (1{y = j} - p_nj), i.e. |B_ij| (A_ij - C_ij).
  std::vector<double> gap(static_cast<std::size_t>(k) * slots);
  for_each_class_column(s, options, [&](class_scratch& scratch, std::int32_t cls, std::span<const double> column) {
    bin_column(column, s.labels, cls, options, scratch.bins);
    for (std::size_t i = 0; i < slots; ++i)
      gap[static_cast<std::size_t>(cls) * slots + i] = scratch.bins[i].sum_correct - scratch.bins[i].sum_confidence;
  });

  classwise_breakdown out;
  out.classes.resize(static_cast<std::size_t>(k));
  out.bin_under.assign(slots, 0.0);
  out.bin_over.assign(slots, 0.0);
  const auto accuracy = class_accuracy(s);
  std::vector<std::int64_t> count(static_cast<std::size_t>(k));
  for (const std::int32_t y : s.labels) count[static_cast<std::size_t>(y)] += 1;
  const double nd = static_cast<double>(n);
  for (std::size_t j = 0; j < static_cast<std::size_t>(k); ++j) {
    auto& c = out.classes[j];
    c.count = count[j];
    c.accuracy = accuracy[j];
    for (std::size_t i = 0; i < slots; ++i) {
      const double g = gap[j * slots + i];
      c.ece += std::fabs(g);
      c.under += std::max(0.0, g);
      c.over += std::max(0.0, -g);
      out.bin_under[i] += std::max(0.0, g) / nd;
      out.bin_over[i] += std::max(0.0, -g) / nd;
    }
    c.ece /= nd;
    c.under /= nd;
    c.over /= nd;
  }
  if (options.reduction == classwise_reduction::mean) {
    for (std::size_t i = 0; i < slots; ++i) {
      out.bin_under[i] /= static_cast<double>(k);
      out.bin_over[i] /= static_cast<double>(k);
    }
  }
  return out;
}

}  // namespace calibench
