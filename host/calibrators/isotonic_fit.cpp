// Isotonic regression as scikit-learn fits and predicts it (host/calibrators/isotonic_fit.hpp).
#include "host/calibrators/isotonic_fit.hpp"

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>

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
  double x_sum;  ///< the sum of the samples' x (for cir's block means)
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
      points.back().x_sum += v;
    } else {
      points.push_back({v, v, h, 1, v});
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
      prev.x_sum += last.x_sum;
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

isotonic_knots fit_centered_isotonic(std::span<const double> x, std::span<const std::uint8_t> hit) {
  // cir-model's _build_cir_points: the training samples' isotonic values are exactly their
  // block means (numpy's interp is exact at the knots and constant inside a block), so its
  // groups of equal fitted value are the pooled blocks.
  const std::vector<block> blocks = pool_adjacent_violators(distinct_points(x, hit));
  std::vector<std::pair<double, double>> points;
  for (std::size_t n = 0; n < blocks.size(); ++n) {
    const block& b = blocks[n];
    const double v = static_cast<double>(b.correct) / static_cast<double>(b.count);
    const double mean = b.x_sum / static_cast<double>(b.count);
    if (b.correct == 0 || b.correct == b.count) {
      points.insert(points.end(), {{b.first_x, v}, {b.last_x, v}});
    } else if (n == 0) {
      points.insert(points.end(), {{b.first_x, v}, {mean, v}});
    } else if (n + 1 == blocks.size()) {
      points.insert(points.end(), {{mean, v}, {b.last_x, v}});
    } else {
      points.emplace_back(mean, v);
    }
  }
  // The second IsotonicRegression fit of the (deduplicated) points with unit weights: sorted by
  // x, x within sklearn's resolution merged (their y averaged), then knots equal to both
  // neighbours dropped; the values already increase, so PAV changes nothing.
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  std::vector<double> ux, uy, weight;
  for (const auto& [px, py] : points) {
    if (!ux.empty() && px - ux.back() < k_sklearn_resolution) {
      uy.back() = (uy.back() * weight.back() + py) / (weight.back() + 1);
      weight.back() += 1;
    } else {
      ux.push_back(px);
      uy.push_back(py);
      weight.push_back(1);
    }
  }
  isotonic_knots k;
  for (std::size_t i = 0; i < ux.size(); ++i) {
    const bool inner = i > 0 && i + 1 < ux.size();
    if (inner && uy[i] == uy[i - 1] && uy[i] == uy[i + 1]) continue;
    k.x.push_back(ux[i]);
    k.y.push_back(uy[i]);
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
