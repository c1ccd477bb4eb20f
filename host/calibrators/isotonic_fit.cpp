// Isotonic regression as scikit-learn fits and predicts it (host/calibrators/isotonic_fit.hpp).
#include "host/calibrators/isotonic_fit.hpp"

#include <algorithm>
#include <numeric>
#include <string>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench {
namespace {

/// sklearn's _make_unique: a sorted x starts a new distinct value only when it exceeds the
/// first x of the current one by at least numpy's float64 resolution.
constexpr double k_sklearn_resolution = 1e-15;

/// A run of distinct x with its hit and total counts.
struct block {
  double first_x, last_x;
  std::int64_t correct, count;
};

/// Distinct x first (sklearn's _make_unique), each with its samples' counts: PAV runs on those
/// points, so tied samples can never be split across blocks.
std::vector<block> distinct_points(std::span<const double> x, std::span<const std::uint8_t> hit) {
  std::vector<std::int64_t> order(x.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return x[a] < x[b]; });
  std::vector<block> points;
  for (std::int64_t r : order) {
    const double v = x[r];
    const std::int64_t h = hit[r] != 0 ? 1 : 0;
    if (!points.empty() && v - points.back().first_x < k_sklearn_resolution) {
      points.back().correct += h;
      ++points.back().count;
    } else {
      points.push_back({v, v, h, 1});
    }
  }
  return points;
}

/// The pool-adjacent-violators stack. Hit and total counts are integers, so
/// "mean(previous) >= mean(last)" is decided exactly by cross-multiplication: adjacent blocks
/// with equal means always pool, and the surviving means strictly increase.
std::vector<block> pool_adjacent_violators(const std::vector<block>& points) {
  std::vector<block> blocks;
  for (const block& point : points) {
    blocks.push_back(point);
    while (blocks.size() > 1) {
      const block& last = blocks.back();
      block& prev = blocks[blocks.size() - 2];
      if (prev.correct * last.count < last.correct * prev.count) break;
      prev.last_x = last.last_x;
      prev.correct += last.correct;
      prev.count += last.count;
      blocks.pop_back();
    }
  }
  return blocks;
}

}  // namespace

isotonic_knots fit_isotonic(std::span<const double> x, std::span<const std::uint8_t> hit) {
  isotonic_knots k;
  for (const block& b : pool_adjacent_violators(distinct_points(x, hit))) {
    const double v = static_cast<double>(b.correct) / static_cast<double>(b.count);
    k.x.push_back(b.first_x);
    k.y.push_back(v);
    if (b.last_x != b.first_x) {
      k.x.push_back(b.last_x);
      k.y.push_back(v);
    }
  }
  return k;
}

double isotonic_at(const isotonic_knots& k, double c) {
  const std::vector<double>& x = k.x;
  const std::vector<double>& y = k.y;
  if (x.size() == 1) return y.front();
  const double t = std::clamp(c, x.front(), x.back());
  const auto hi = std::clamp<std::ptrdiff_t>(std::lower_bound(x.begin(), x.end(), t) - x.begin(), 1,
                                             static_cast<std::ptrdiff_t>(x.size()) - 1);
  const auto lo = hi - 1;
  const double slope = (y[hi] - y[lo]) / (x[hi] - x[lo]);
  return slope * (t - x[lo]) + y[lo];
}

void check_knots(const isotonic_knots& k, const std::string& where, const char* method) {
  if (k.x.empty() || k.y.size() != k.x.size())
    throw input_error(fmt::format("{}: {} needs x and y of one length >= 1", where, method));
  for (std::size_t i = 1; i < k.x.size(); ++i) {
    if (!(k.x[i] > k.x[i - 1]))
      throw input_error(fmt::format("{}: {} x must increase strictly (position {})", where, method, i));
  }
}

}  // namespace calibench
