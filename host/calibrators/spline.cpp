// Spline recalibration (spline; Gupta et al., ICLR 2021, as the authors' code computes it:
// kartikgupta-at-anu/spline-calibration b6a2f60, recalibrate.py get_recalibration_function and
// interpolated_function, utilities/spline.py; docs/calibrators.md). The validation top-label
// confidences sorted ascending (stable), the curve r_i = A_i/N - C_i/N of cumulative correctness
// minus cumulative confidence at t_i = i/(N-1), a natural cubic spline S on K equally spaced
// knots fitted to it by least squares, and node values y_i = s_i + S'(t_i); a confidence c is
// mapped by interpolating between the nodes (linearly, or with the authors' swapped weights),
// clipped to [0, 1]; the other classes rescaled, the prediction kept. Float64.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>
#include <Eigen/Dense>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/scoring.hpp"

namespace calibench {
namespace {

/// The nodes with one entry per distinct validation confidence x_g: the node values at the
/// first and the last sample of its tie group (equal when there are no ties).
struct spline_nodes {
  std::vector<double> x, y_first, y_last;
};

/// G (K x K, row-major): the natural spline's second derivatives M = G ky at the knots. Rows 0
/// and K-1 are 0; rows 1..K-2 solve A G_mid = B, A tridiagonal (4 on the diagonal, 1 beside it),
/// row i of B = (6/h^2)(e_i - 2 e_{i+1} + e_{i+2}).
Eigen::MatrixXd second_derivative_map(std::int64_t k, double h) {
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(k, k);
  if (k < 3) return g;
  const std::int64_t m = k - 2;
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(m, m), b = Eigen::MatrixXd::Zero(m, k);
  const double c = 6.0 / (h * h);
  for (std::int64_t i = 0; i < m; ++i) {
    a(i, i) = 4.0;
    if (i > 0) a(i, i - 1) = 1.0;
    if (i + 1 < m) a(i, i + 1) = 1.0;
    b(i, i) = c;
    b(i, i + 1) = -2.0 * c;
    b(i, i + 2) = c;
  }
  g.middleRows(1, m) = a.partialPivLu().solve(b);
  return g;
}

/// The segment j of x (floor(x / h) clamped to [0, K-2]) and u = x - j h, as utilities/spline.py.
std::pair<std::int64_t, double> segment(double x, std::int64_t k, double h) {
  const auto j = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(x / h)), 0, k - 2);
  return {j, x - static_cast<double>(j) * h};
}

/// ky (K knot values) minimising ||D ky - r|| (minimum norm, as numpy's lstsq), D's row i the
/// spline's value at t_i as a linear function of ky.
Eigen::VectorXd fit_knot_values(const std::vector<double>& t, const std::vector<double>& r, std::int64_t k, double h,
                                const Eigen::MatrixXd& g) {
  const auto n = static_cast<Eigen::Index>(t.size());
  Eigen::MatrixXd d(n, k);
  for (Eigen::Index i = 0; i < n; ++i) {
    const auto [j, u] = segment(t[static_cast<std::size_t>(i)], k, h);
    const double c_mj = -u * u * u / (6 * h) + u * u / 2 - 2 * h * u / 6, c_mk = u * u * u / (6 * h) - h * u / 6;
    d.row(i) = c_mj * g.row(j) + c_mk * g.row(j + 1);
    d(i, j) += -u / h + 1;
    d(i, j + 1) += u / h;
  }
  const Eigen::Map<const Eigen::VectorXd> rv(r.data(), n);
  return d.completeOrthogonalDecomposition().solve(rv);
}

spline_nodes fit_nodes(std::vector<double> s, std::vector<double> a, std::int64_t knots, Eigen::VectorXd& ky) {
  const auto n = static_cast<std::int64_t>(s.size());
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t p, std::int64_t q) { return s[p] < s[q]; });
  std::vector<double> xs(s.size()), t(s.size()), r(s.size());
  double acc = 0, conf = 0;
  const double nd = static_cast<double>(n), step = n > 1 ? 1.0 / static_cast<double>(n - 1) : 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    xs[i] = s[order[i]];
    acc += a[order[i]];
    conf += xs[i];
    r[i] = acc / nd - conf / nd;
    t[i] = i + 1 == n && n > 1 ? 1.0 : static_cast<double>(i) * step;  // numpy.linspace(0, 1, N)
  }
  const double h = 1.0 / static_cast<double>(knots - 1);  // kx_1 - kx_0 of linspace(0, 1, K)
  const Eigen::MatrixXd g = second_derivative_map(knots, h);
  ky = fit_knot_values(t, r, knots, h, g);
  const Eigen::VectorXd m = g * ky;
  spline_nodes out;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto [j, u] = segment(t[i], knots, h);
    const double slope = (-u * u / (2 * h) + u - 2 * h / 6) * m(j) + (u * u / (2 * h) - h / 6) * m(j + 1) +
                         (-1 / h) * ky(j) + (1 / h) * ky(j + 1);
    const double y = xs[i] + slope;
    if (out.x.empty() || xs[i] != out.x.back()) {
      out.x.push_back(xs[i]);
      out.y_first.push_back(y);
      out.y_last.push_back(y);
    } else {
      out.y_last.back() = y;
    }
  }
  return out;
}

class spline_map final : public calibration_map {
 public:
  spline_map(spline_nodes nodes, std::vector<double> knot_values, bool authors)
      : nodes_(std::move(nodes)), knot_values_(std::move(knot_values)), authors_(authors) {}

  /// The calibrated confidence of c: the last node's value at or above the largest x, the
  /// first's at or below the smallest, else between x_{g-1} < c <= x_g (g the first group with
  /// x_g >= c), alpha = c - x_{g-1}, beta = x_g - c: linear (alpha y_g + beta y_{g-1}) / (alpha +
  /// beta), or the authors' (beta y_g + alpha y_{g-1}) / (alpha + beta); then clipped to [0, 1].
  double at(double c) const {
    const auto& x = nodes_.x;
    double f;
    if (c >= x.back()) {
      f = nodes_.y_last.back();
    } else if (c <= x.front()) {
      f = nodes_.y_first.front();
    } else {
      const auto g = static_cast<std::size_t>(std::lower_bound(x.begin(), x.end(), c) - x.begin());
      const double alpha = c - x[g - 1], beta = x[g] - c, hi = nodes_.y_first[g], lo = nodes_.y_last[g - 1];
      f = authors_ ? (beta * hi + alpha * lo) / (alpha + beta) : (alpha * hi + beta * lo) / (alpha + beta);
    }
    return std::clamp(f, 0.0, 1.0);
  }

  nlohmann::json params() const override {
    return {{"knots", static_cast<std::int64_t>(knot_values_.size())},
            {"knot_values", knot_values_},
            {"interpolation", authors_ ? "authors" : "linear"},
            {"x", nodes_.x},
            {"y_first", nodes_.y_first},
            {"y_last", nodes_.y_last}};
  }

  scored_split apply(const split_data& split) const override {
    scored_split base = uncalibrated(split);
    std::vector<double> top(static_cast<std::size_t>(split.num_samples));
    for (std::int64_t i = 0; i < split.num_samples; ++i) top[i] = at(base.confidence[i]);
    return rescale_top_label(std::move(base), top);
  }

  static std::shared_ptr<const calibration_map> load(const nlohmann::json& p, const std::string& where) {
    spline_nodes nodes{p.at("x").get<std::vector<double>>(), p.at("y_first").get<std::vector<double>>(),
                       p.at("y_last").get<std::vector<double>>()};
    const std::string interpolation = p.at("interpolation").get<std::string>();
    const auto finite = [](const std::vector<double>& v) {
      return std::all_of(v.begin(), v.end(), [](double e) { return std::isfinite(e); });
    };
    if (nodes.x.empty() || nodes.y_first.size() != nodes.x.size() || nodes.y_last.size() != nodes.x.size() ||
        !finite(nodes.x) || !finite(nodes.y_first) || !finite(nodes.y_last) ||
        std::adjacent_find(nodes.x.begin(), nodes.x.end(), std::greater_equal<>()) != nodes.x.end())
      throw input_error(
          fmt::format("{}: spline needs finite, strictly ascending x with one finite y_first and y_last per x", where));
    if (interpolation != "linear" && interpolation != "authors")
      throw input_error(
          fmt::format("{}: spline interpolation must be 'linear' or 'authors' (got '{}')", where, interpolation));
    return std::make_shared<spline_map>(std::move(nodes), p.value("knot_values", std::vector<double>{}),
                                        interpolation == "authors");
  }

 private:
  spline_nodes nodes_;
  std::vector<double> knot_values_;
  bool authors_;
};

fitted fit_spline(const fit_input& in) {
  const split_data& val = in.val;
  const scored_split base = uncalibrated(val);
  std::vector<double> a(static_cast<std::size_t>(val.num_samples));
  for (std::int64_t i = 0; i < val.num_samples; ++i) a[i] = base.prediction[i] == val.labels[i] ? 1.0 : 0.0;
  Eigen::VectorXd ky;
  spline_nodes nodes = fit_nodes(base.confidence, std::move(a), in.request.spline_knots, ky);
  return {std::make_shared<spline_map>(std::move(nodes), std::vector<double>(ky.data(), ky.data() + ky.size()),
                                       in.request.spline_authors),
          {}};
}

}  // namespace

std::vector<method_info> spline_methods() {
  method_info m;
  m.name = "spline";
  m.options = {"spline_knots", "spline_interpolation"};
  m.fit = fit_spline;
  m.load = spline_map::load;
  return {m};
}

}  // namespace calibench
