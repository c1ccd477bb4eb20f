// Kernel estimators of the top-label calibration error (docs/metrics.md, "Extra estimators"):
// relplot's smooth ECE and Mix-n-Match's KDE ECE, each following its library's arithmetic
// step by step (grids, rounding onto the grid, reflection, sampling of the kernel) so that the
// numbers match the libraries', not just the estimator in the papers.
//   relplot 1.0.3: src/relplot/metrics.py (smECE, smooth_ece, search_param) and kernels.py
//     (ReflectedGaussianKernel, smooth_round_to_grid, interpolate).
//   Mix-n-Match e41afba: util_calibration.py ece_kde_binary, with KDEpy 1.1 FFTKDE (linear
//     binning, triweight kernel scaled to standard deviation bw, 'same' convolution).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "common/error.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {
namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

/// sum_m a[m] b[m] for m in [0, n) with eight independent partial sums (a fixed order, so the
/// result is reproducible, and one that vectorises without reassociation flags).
double dot(const double* a, const double* b, std::int64_t n) {
  double s[8] = {};
  std::int64_t m = 0;
  for (; m + 8 <= n; m += 8) {
    for (int t = 0; t < 8; ++t) s[t] += a[m + t] * b[m + t];
  }
  for (; m < n; ++m) s[m % 8] += a[m] * b[m];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/// Python's round() for the positive values used here: to nearest, ties to even.
std::int64_t python_round(double x) { return static_cast<std::int64_t>(std::nearbyint(x)); }

/// numpy.linspace(0, 1, count)[i]: i * (1 / (count - 1)), the last exactly 1.
double unit_linspace(std::int64_t i, std::int64_t count) {
  if (i == count - 1) return 1.0;
  return static_cast<double>(i) * (1.0 / static_cast<double>(count - 1));
}

/// Kernel entries below this fraction of the peak are left out of the convolution. numpy sums
/// them too, but they change a smoothed value by less than 1e-20 of the data's mass near the
/// peak, far below the 1e-4 that relplot adds to every density.
constexpr double k_gaussian_cutoff = 1e-20;

/// relplot's ReflectedGaussianKernel(sigma).apply(f, w, mesh) for the two weight vectors
/// smooth_ece needs (w_0 = f - y, w_1 = 1), sharing the grid and the kernel: weights spread
/// linearly onto a grid of G points, convolved with the Gaussian sampled on linspace(0, 1, G)
/// around 1/2 after reflecting the grid at both ends, interpolated linearly at the mesh points.
struct smoothed_pair {
  std::vector<double> residual, density;
};
smoothed_pair reflected_gaussian_apply(std::span<const double> f, std::span<const double> residual, double sigma,
                                       std::span<const double> mesh) {
  const std::int64_t g = std::max<std::int64_t>(2000, python_round(20.0 / sigma)) / 2 + 1;
  const double gm1 = static_cast<double>(g - 1);

  // smooth_round_to_grid, interleaved: values[2 b] residual weight, values[2 b + 1] count weight.
  std::vector<double> values(2 * static_cast<std::size_t>(g), 0.0);
  for (std::size_t i = 0; i < f.size(); ++i) {
    const double x = f[i] * gm1;
    const std::int64_t b = std::clamp<std::int64_t>(static_cast<std::int64_t>(x), 0, g - 2);
    const double frac = x - static_cast<double>(b);
    const auto at = 2 * static_cast<std::size_t>(b);
    values[at] += (1.0 - frac) * residual[i];
    values[at + 2] += frac * residual[i];
    values[at + 1] += (1.0 - frac);
    values[at + 3] += frac;
  }

  // kernel_ev: exp(-(t - 0.5)^2 / (2 var)) / (sqrt(2 pi) sigma) on t = linspace(0, 1, G).
  std::vector<double> kernel(static_cast<std::size_t>(g));
  const double var = sigma * sigma;
  const double norm = std::sqrt(2.0 * std::numbers::pi) * sigma;
  double peak = 0;
  for (std::int64_t m = 0; m < g; ++m) {
    const double t = unit_linspace(m, g) - 0.5;
    kernel[m] = std::exp(-t * t / (2.0 * var)) / norm;
    peak = std::max(peak, kernel[m]);
  }
  std::int64_t k_lo = 0, k_hi = g - 1;
  while (k_lo < k_hi && kernel[k_lo] < k_gaussian_cutoff * peak) ++k_lo;
  while (k_hi > k_lo && kernel[k_hi] < k_gaussian_cutoff * peak) --k_hi;

  // ext = [values[G-1..1], values, values[G-2..0]] (length 3G - 2), materialised per channel;
  // smoothed[j] = convolve(ext, kernel, "valid")[G//2 + j] = sum_m ext[G//2 + j + m] kernel[G-1-m].
  const std::int64_t ext_len = 3 * g - 2;
  std::vector<double> ext_r(static_cast<std::size_t>(ext_len)), ext_d(static_cast<std::size_t>(ext_len));
  for (std::int64_t e = 0; e < ext_len; ++e) {
    const std::int64_t v = e < g - 1 ? g - 1 - e : (e <= 2 * g - 2 ? e - (g - 1) : 3 * g - 3 - e);
    ext_r[e] = values[2 * v];
    ext_d[e] = values[2 * v + 1];
  }
  // The kernel reversed over the kept range, so that each output is a plain dot product.
  const std::int64_t m_lo = g - 1 - k_hi, width = k_hi - k_lo + 1;
  std::vector<double> reversed(static_cast<std::size_t>(width));
  for (std::int64_t t = 0; t < width; ++t) reversed[t] = kernel[g - 1 - (m_lo + t)];
  std::vector<double> smoothed(2 * static_cast<std::size_t>(g), 0.0);
  for (std::int64_t j = 0; j < g; ++j) {
    const std::int64_t e0 = g / 2 + j + m_lo;
    smoothed[2 * j] = dot(ext_r.data() + e0, reversed.data(), width);
    smoothed[2 * j + 1] = dot(ext_d.data() + e0, reversed.data(), width);
  }

  smoothed_pair out{std::vector<double>(mesh.size()), std::vector<double>(mesh.size())};  // interpolate(t, .)
  const double bucket = 1.0 / gm1;
  for (std::size_t i = 0; i < mesh.size(); ++i) {
    const std::int64_t b = std::clamp<std::int64_t>(static_cast<std::int64_t>(mesh[i] * gm1), 0, g - 2);
    const double r = (mesh[i] - static_cast<double>(b) * bucket) / bucket;
    const auto at = 2 * static_cast<std::size_t>(b);
    out.residual[i] = smoothed[at] * (1.0 - r) + smoothed[at + 2] * r;
    out.density[i] = smoothed[at + 1] * (1.0 - r) + smoothed[at + 3] * r;
  }
  return out;
}

/// relplot smooth_ece(f, y, sigma).
double smooth_ece_at(std::span<const double> f, std::span<const double> residual, double sigma) {
  const std::int64_t points = std::max<std::int64_t>(python_round(10.0 / sigma), 200);
  std::vector<double> mesh(static_cast<std::size_t>(points));
  for (std::int64_t i = 0; i < points; ++i) mesh[i] = unit_linspace(i, points);
  auto [smoothed, density] = reflected_gaussian_apply(f, residual, sigma, mesh);
  double weighted = 0, total = 0;
  for (std::size_t i = 0; i < mesh.size(); ++i) {
    density[i] += 1e-4;
    const double r = smoothed[i] / density[i];
    weighted += std::fabs(r) * density[i];
    total += density[i];
  }
  return weighted / total;
}

/// KDEpy FFTKDE(bw, kernel="triweight").fit(data).evaluate(grid) on an equidistant grid
/// (only the points [first, last] are needed by the caller).
std::vector<double> triweight_kde(const std::vector<double>& data, double bw, const std::vector<double>& grid,
                                  std::int64_t first, std::int64_t last) {
  const auto g = static_cast<std::int64_t>(grid.size());
  const double min_grid = grid.front(), max_grid = grid.back();
  const std::int64_t intervals = g - 1;
  const double dx = (max_grid - min_grid) / static_cast<double>(intervals);

  // linear_binning with weights 1 / len(data).
  std::vector<double> binned(static_cast<std::size_t>(g) + 1, 0.0);
  const double weight = 1.0 / static_cast<double>(data.size());
  for (double d : data) {
    const double t = (d - min_grid) / dx;
    const double integral = std::floor(t);
    const double frac = t - integral;
    const auto i = static_cast<std::size_t>(integral);
    binned[i] += (1.0 - frac) * weight;
    binned[i + 1] += frac * weight;
  }

  // Triweight with variance 1/9 and support 1, rescaled to standard deviation bw.
  const double scale = std::sqrt(1.0 / 9.0);
  const double real_bw = bw / scale;
  const double support = 1.0 / scale * bw;
  const auto half = static_cast<std::int64_t>(std::min(std::floor(support / dx), static_cast<double>(intervals + 1)));
  const double start = -dx * static_cast<double>(half), stop = dx * static_cast<double>(half);
  const std::int64_t kn = 2 * half + 1;
  std::vector<double> kernel(static_cast<std::size_t>(kn));
  const double step = kn > 1 ? (stop - start) / static_cast<double>(kn - 1) : 0.0;
  const double normalization = 48.0 / (3.0 * 5.0 * 7.0);
  for (std::int64_t m = 0; m < kn; ++m) {
    const double x = m == kn - 1 ? stop : static_cast<double>(m) * step + start;
    const double u = std::fabs(x) / real_bw;
    const double u2 = u * u;
    const double value = u2 < 1.0 ? std::max(0.0, std::pow(1.0 - u2, 3)) / normalization : 0.0;
    kernel[m] = value / (real_bw * 2.0);
  }

  // convolve(binned[:G], kernel, mode="same"): out[i] = sum_m binned[i + half - m] kernel[m]
  // = sum_t binned[i - half + t] kernel[kn - 1 - t], a dot product with the reversed kernel.
  std::vector<double> reversed(kernel.rbegin(), kernel.rend());
  std::vector<double> out(static_cast<std::size_t>(g), 0.0);
  for (std::int64_t i = first; i <= last; ++i) {
    const std::int64_t t_lo = std::max<std::int64_t>(0, half - i);
    const std::int64_t t_hi = std::min<std::int64_t>(kn - 1, (g - 1) - i + half);
    out[i] = dot(binned.data() + (i - half + t_lo), reversed.data() + t_lo, t_hi - t_lo + 1);
  }
  return out;
}

/// mirror_1d(d, 0, 1): the values below 1/2 reflected at 0, the values, those at or above 1/2
/// reflected at 1.
std::vector<double> mirrored(const std::vector<double>& d) {
  std::vector<double> out;
  out.reserve(2 * d.size());
  for (double v : d) {
    if (v < 0.5) out.push_back(-v);
  }
  out.insert(out.end(), d.begin(), d.end());
  for (double v : d) {
    if (v >= 0.5) out.push_back(2.0 - v);
  }
  return out;
}

}  // namespace

double smooth_ece(std::span<const double> confidence, std::span<const double> correct, double sigma) {
  CALIBENCH_EXPECTS(confidence.size() == correct.size() && !confidence.empty(), "bad smooth ECE input");
  std::vector<double> residual(confidence.size());
  for (std::size_t i = 0; i < confidence.size(); ++i) residual[i] = confidence[i] - correct[i];
  if (sigma > 0) return smooth_ece_at(confidence, residual, sigma);

  // search_param(lambda a: a < eps or a < smooth_ece(a), start=1, refine=10) returns the end
  // of the bracket where the predicate fails; smECE is smooth_ece there (kept, not recomputed).
  // A bandwidth below eps passes without evaluating smooth_ece, as in relplot.
  double value_at_fails = 0;
  const auto passes = [&](double a) {
    if (a < 0.001) return true;
    const double v = smooth_ece_at(confidence, residual, a);
    if (a < v) return true;
    value_at_fails = v;
    return false;
  };
  double fails = 1.0;
  if (passes(fails)) return smooth_ece_at(confidence, residual, fails);
  double holds = 0.0;
  for (int step = 0; step < 10; ++step) {
    const double mid = (fails + holds) / 2.0;
    if (passes(mid)) {
      holds = mid;
    } else {
      fails = mid;
    }
  }
  return value_at_fails;
}

double kde_ece(std::span<const double> confidence, std::span<const double> correct) {
  CALIBENCH_EXPECTS(confidence.size() == correct.size() && !confidence.empty(), "bad KDE ECE input");
  const auto n = static_cast<std::int64_t>(confidence.size());
  std::vector<double> all(confidence.begin(), confidence.end()), right;
  double hits = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (correct[i] == 1.0) right.push_back(confidence[i]);
    hits += correct[i];
  }
  if (right.empty()) return k_nan;  // np.std of no values: Mix-n-Match fails
  // Equal confidences: the bandwidth is 0 (numpy's std may round to 1e-17 instead, which
  // KDEpy then accepts and which gives nonsense, e.g. 3366 for a number in [0, 1]).
  if (*std::min_element(right.begin(), right.end()) == *std::max_element(right.begin(), right.end())) return k_nan;
  double mean = 0;
  for (double v : right) mean += v;
  mean /= static_cast<double>(right.size());
  double var = 0;
  for (double v : right) var += (v - mean) * (v - mean);
  const double bw = std::sqrt(var / static_cast<double>(right.size())) * std::pow(static_cast<double>(n) * 2.0, -0.2);
  if (!(bw > 0)) return k_nan;  // KDEpy rejects a bandwidth of 0

  // x_int = np.linspace(-0.6, 1.6, 2**14).
  constexpr std::int64_t g = 1 << 14;
  std::vector<double> grid(static_cast<std::size_t>(g));
  const double lo = -0.6, hi = 1.6, step = (hi - lo) / static_cast<double>(g - 1);
  for (std::int64_t i = 0; i < g; ++i) grid[i] = i == g - 1 ? hi : static_cast<double>(i) * step + lo;
  // Only points with 0 <= x <= 1 enter the integrals.
  std::int64_t first = 0, last = g - 1;
  while (grid[first] < 0.0) ++first;
  while (grid[last] > 1.0) --last;

  auto pp1 = triweight_kde(mirrored(right), bw, grid, first, last);
  auto pp2 = triweight_kde(mirrored(all), bw, grid, first, last);
  for (std::int64_t i = first; i <= last; ++i) {
    const bool outside = grid[i] <= 0.0 || grid[i] >= 1.0;
    pp1[i] = outside ? 0.0 : pp1[i] * 2.0;
    pp2[i] = outside ? 0.0 : pp2[i] * 2.0;
  }

  const double perc = hits / static_cast<double>(n);
  std::vector<double> integral(static_cast<std::size_t>(g), 0.0);
  for (std::int64_t i = first; i <= last; ++i) {
    if (std::max(pp1[i], pp2[i]) > 1e-6) {
      const double accu = std::min(perc * pp1[i] / pp2[i], 1.0);
      if (!std::isnan(accu)) integral[i] = std::fabs(grid[i] - accu) * pp2[i];
    } else if (i > 1) {
      integral[i] = integral[i - 1];
    }
  }
  double num = 0, den = 0;
  for (std::int64_t i = first; i < last; ++i) {
    const double h = grid[i + 1] - grid[i];
    num += h * (integral[i] + integral[i + 1]) / 2.0;
    den += h * (pp2[i] + pp2[i + 1]) / 2.0;
  }
  return num / den;
}

}  // namespace calibench
