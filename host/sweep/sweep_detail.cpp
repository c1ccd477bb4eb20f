// What both sweep backends share (host/sweep/sweep_detail.hpp): equal-mass bins of one
// candidate by a stable radix sort, weight-scaling adaECE in closed form, and turning summed bin
// statistics into metrics, so that every metric of a sweep is defined once.
#include "host/sweep/sweep_detail.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <utility>

#include "host/metrics/metrics.hpp"

namespace calibench {

namespace detail {

namespace {

/// Re-sorts s.index (a permutation from an earlier candidate) by (confidence, row) with an
/// insertion sort; gives up (returns false) after `budget` element moves.
bool insertion_resort(std::span<const double> c, equal_mass_scratch& s, std::size_t budget) {
  auto& idx = s.index;
  const std::size_t n = idx.size();
  std::size_t moves = 0;
  for (std::size_t i = 1; i < n; ++i) {
    const std::uint32_t v = idx[i];
    const double cv = c[v];
    std::size_t j = i;
    while (j > 0) {
      const std::uint32_t u = idx[j - 1];
      if (c[u] < cv || (c[u] == cv && u < v)) break;
      idx[j] = u;
      --j;
      if (++moves > budget) return false;
    }
    idx[j] = v;
  }
  return true;
}

void radix_sort(std::span<const double> confidence, equal_mass_scratch& s) {
  const auto n = confidence.size();
  s.keys.resize(n);
  s.keys_tmp.resize(n);
  s.index.resize(n);
  s.index_tmp.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    // Non-negative doubles order like their bit patterns; +0.0 is the smallest.
    s.keys[i] = std::bit_cast<std::uint64_t>(confidence[i] + 0.0);
    s.index[i] = static_cast<std::uint32_t>(i);
  }
  // LSD radix sort, 11-bit digits; a pass where every key has the same digit is skipped.
  constexpr int k_digit_bits = 11;
  constexpr std::size_t k_buckets = std::size_t{1} << k_digit_bits;
  std::vector<std::size_t> count(k_buckets);
  for (int shift = 0; shift < 64; shift += k_digit_bits) {
    std::fill(count.begin(), count.end(), 0);
    for (std::size_t i = 0; i < n; ++i) ++count[(s.keys[i] >> shift) & (k_buckets - 1)];
    if (std::find(count.begin(), count.end(), n) != count.end()) continue;
    std::size_t sum = 0;
    for (auto& c : count) sum += std::exchange(c, sum);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t dst = count[(s.keys[i] >> shift) & (k_buckets - 1)]++;
      s.keys_tmp[dst] = s.keys[i];
      s.index_tmp[dst] = s.index[i];
    }
    s.keys.swap(s.keys_tmp);
    s.index.swap(s.index_tmp);
  }
}

}  // namespace

double adaece_of(std::span<const double> confidence, std::span<const std::uint8_t> correct, std::int32_t num_bins,
                 equal_mass_scratch& s) {
  const auto n = confidence.size();
  // An insertion sort costs one move per inversion; beyond a few per element the radix
  // sort (about a dozen passes over the data) is cheaper.
  const bool resorted = s.has_order && s.index.size() == n && insertion_resort(confidence, s, 4 * n + 64);
  if (!resorted) radix_sort(confidence, s);
  s.has_order = true;
  double total = 0;
  std::int64_t groups = 0;
  std::size_t pos = 0;
  const auto n64 = static_cast<std::int64_t>(n);
  for (std::int32_t g = 0; g < num_bins; ++g) {
    const auto size = static_cast<std::size_t>(array_split_size(n64, num_bins, g));
    if (size == 0) continue;
    double sum_c = 0, sum_a = 0;
    for (std::size_t i = pos; i < pos + size; ++i) {
      sum_c += confidence[s.index[i]];
      sum_a += correct[s.index[i]] ? 1.0 : 0.0;
    }
    const double sz = static_cast<double>(size);
    total += std::fabs(sum_a / sz - sum_c / sz);
    ++groups;
    pos += size;
  }
  return total / static_cast<double>(groups);
}

void weight_adaece(std::span<const double> confidence, std::span<const std::uint8_t> correct,
                   std::span<const double> weights, double num_classes, std::int32_t num_bins, sweep_result& res) {
  const auto n = static_cast<std::int64_t>(confidence.size());
  // Group sums in confidence order (stable) and in row order.
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return confidence[a] < confidence[b]; });
  struct group {
    double size, sum_conf, sum_correct, sum_correct_rows;
  };
  std::vector<group> groups;
  std::int64_t pos = 0;
  for (std::int32_t g = 0; g < num_bins; ++g) {
    const std::int64_t size = array_split_size(n, num_bins, g);
    if (size == 0) continue;
    group gr{static_cast<double>(size), 0, 0, 0};
    for (std::int64_t i = pos; i < pos + size; ++i) {
      gr.sum_conf += confidence[order[i]];
      gr.sum_correct += correct[order[i]] ? 1.0 : 0.0;
      gr.sum_correct_rows += correct[i] ? 1.0 : 0.0;
    }
    groups.push_back(gr);
    pos += size;
  }
  for (std::size_t w = 0; w < weights.size(); ++w) {
    const double a = weights[w];
    const double u = (1.0 - a) / num_classes;
    double total = 0;
    for (const auto& gr : groups) {
      const double acc = (a > 0.0 ? gr.sum_correct : gr.sum_correct_rows) / gr.size;
      total += std::fabs(acc - (a * (gr.sum_conf / gr.size) + u));
    }
    res.adaece[w] = total / static_cast<double>(groups.size());
  }
}

void finish(sweep_result& res, std::int64_t num_samples) {
  const double nd = static_cast<double>(num_samples);
  const std::int32_t m = res.num_bins;
  for (std::int64_t g = 0; g < res.num_candidates; ++g) {
    double ece = 0, mce = 0;
    for (std::int32_t b = 0; b < m; ++b) {
      const std::int64_t cnt = res.bin_count[g * m + b];
      if (cnt == 0) continue;
      const double sc = res.bin_sum_correct[g * m + b], sp = res.bin_sum_confidence[g * m + b];
      ece += std::fabs(sc - sp);
      const double c = static_cast<double>(cnt);
      mce = std::max(mce, std::fabs(sc / c - sp / c));
    }
    res.ece[g] = ece / nd;
    res.mce[g] = mce;
    res.nll[g] /= nd;
    res.brier[g] /= nd;
    res.accuracy[g] /= nd;
  }
}

}  // namespace detail

}  // namespace calibench
