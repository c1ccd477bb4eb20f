// Top-label isotonic regression (iso; Zadrozny and Elkan 2002, as scikit-learn's
// IsotonicRegression with out_of_bounds="clip" computes it, docs/calibrators.md): the
// top-label confidence is mapped through the pool-adjacent-violators fit of validation
// correctness, interpolated linearly between knots, the rest rescaled.
#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

/// sklearn's _make_unique: a sorted x starts a new distinct value only when it exceeds the
/// first x of the current one by at least numpy's float64 resolution.
constexpr double k_sklearn_resolution = 1e-15;

/// The fitted isotonic function at c: clipped to [x_0, x_last], then scipy interp1d's linear
/// formula (slope (y_hi - y_lo)/(x_hi - x_lo) times (c - x_lo), plus y_lo; the segment's upper
/// knot is the first one >= c, except that c = x_0 uses the first segment).
double isotonic_at(const std::vector<double>& x, const std::vector<double>& y, double c) {
  if (x.size() == 1) return y.front();
  const double t = std::clamp(c, x.front(), x.back());
  const auto hi = std::clamp<std::ptrdiff_t>(std::lower_bound(x.begin(), x.end(), t) - x.begin(), 1,
                                             static_cast<std::ptrdiff_t>(x.size()) - 1);
  const auto lo = hi - 1;
  const double slope = (y[hi] - y[lo]) / (x[hi] - x[lo]);
  return slope * (t - x[lo]) + y[lo];
}

class isotonic_map final : public calibration_map {
 public:
  isotonic_map(std::vector<double> x, std::vector<double> y) : x_(std::move(x)), y_(std::move(y)) {}

  nlohmann::json params() const override { return {{"x", x_}, {"y", y_}}; }

  scored_split apply(const split_data& split) const override {
    scored_split base = uncalibrated(split);
    std::vector<double> top(static_cast<std::size_t>(split.num_samples));
    for (std::int64_t i = 0; i < split.num_samples; ++i) top[i] = isotonic_at(x_, y_, base.confidence[i]);
    return rescale_top_label(std::move(base), top);
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    auto x = p.at("x").get<std::vector<double>>();
    auto y = p.at("y").get<std::vector<double>>();
    if (x.empty() || y.size() != x.size())
      throw input_error(fmt::format("{}: iso needs x and y of one length >= 1", where));
    for (std::size_t i = 1; i < x.size(); ++i) {
      if (!(x[i] > x[i - 1]))
        throw input_error(fmt::format("{}: iso x must increase strictly (position {})", where, i));
    }
    return std::make_shared<isotonic_map>(std::move(x), std::move(y));
  }

 private:
  std::vector<double> x_, y_;
};

/// A run of distinct confidences with its correct and total counts.
struct block {
  double first_x, last_x;
  std::int64_t correct, count;
};

/// Distinct confidences first (sklearn's _make_unique), each with its samples' counts: PAV
/// runs on those points, so tied samples can never be split across blocks.
std::vector<block> distinct_points(const scored_split& base) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(base.num_samples));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return base.confidence[a] < base.confidence[b]; });
  std::vector<block> points;
  for (std::int64_t r : order) {
    const double x = base.confidence[r];
    const std::int64_t hit = base.prediction[r] == base.labels[r] ? 1 : 0;
    if (!points.empty() && x - points.back().first_x < k_sklearn_resolution) {
      points.back().correct += hit;
      ++points.back().count;
    } else {
      points.push_back({x, x, hit, 1});
    }
  }
  return points;
}

/// The pool-adjacent-violators stack. Correct and total counts are integers, so
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

fitted fit_iso(const fit_input& in) {
  std::vector<double> x, y;
  for (const block& b : pool_adjacent_violators(distinct_points(uncalibrated(in.val)))) {
    const double v = static_cast<double>(b.correct) / static_cast<double>(b.count);
    x.push_back(b.first_x);
    y.push_back(v);
    if (b.last_x != b.first_x) {
      x.push_back(b.last_x);
      y.push_back(v);
    }
  }
  return {std::make_shared<isotonic_map>(std::move(x), std::move(y)), {}};
}

}  // namespace

std::vector<method_info> isotonic_methods() {
  method_info m;
  m.name = "iso";
  m.fit = fit_iso;
  m.load = isotonic_map::load;
  return {m};
}

}  // namespace calibench
