// `cws --follow code` (host/calibrators/confidence_groups_code.hpp).
#include "host/calibrators/confidence_groups_code.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/scoring.hpp"
#include "host/metrics/families.hpp"

namespace calibench {
namespace {

/// The code's `high accuracy` cap of the validation confidences (set_temperature4's is_acc).
constexpr double k_code_confidence_cap = 0.9999;

/// Bin b with edges[b] < c <= edges[b + 1] (the code's gt / le masks), -1 for none.
std::int64_t code_bin(const std::vector<double>& edges, double c) {
  const auto it = std::lower_bound(edges.begin(), edges.end(), c);  // first edge >= c
  const auto b = static_cast<std::int64_t>(it - edges.begin()) - 1;
  return b >= 0 && b + 1 < static_cast<std::int64_t>(edges.size()) ? b : -1;
}

class cws_code_map final : public calibration_map {
 public:
  cws_code_map(std::vector<double> edges, std::vector<double> weights)
      : edges_(std::move(edges)), weights_(std::move(weights)) {}

  nlohmann::json params() const override {
    return {{"edges", edges_}, {"weights", weights_}, {"calib_bins", weights_.size()}, {"follow", "code"}};
  }

  /// p <- w_b p + f32(f32(1 - w_b) / K) for a raw confidence in bin b, then each row divided by
  /// its sum; a confidence outside (e_0, e_B] keeps softmax(z).
  scored_split apply(const split_data& split) const override {
    const scored_split raw = uncalibrated(split);
    const std::int64_t k = raw.num_classes;
    std::vector<double> p = raw.probs;
    for (std::int64_t i = 0; i < raw.num_samples; ++i) {
      const std::int64_t b = code_bin(edges_, raw.confidence[i]);
      if (b < 0) continue;
      const auto w = static_cast<float>(weights_[b]);
      const double u = static_cast<float>((1.0f - w) / static_cast<float>(k));
      double* row = p.data() + i * k;
      double sum = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        row[j] = static_cast<double>(w) * row[j] + u;
        sum += row[j];
      }
      for (std::int64_t j = 0; j < k; ++j) row[j] /= sum;
    }
    return uncalibrated(derived(split, std::move(p), true));
  }

 private:
  std::vector<double> edges_, weights_;
};

}  // namespace

double code_mean_f32(double count, double n) {
  return static_cast<float>(static_cast<float>(count) / static_cast<float>(n));
}

code_bins code_equal_mass_bins(const std::vector<double>& c, const scored_split& s, std::int32_t bins) {
  std::vector<double> sorted = c;
  std::sort(sorted.begin(), sorted.end());
  code_bins b{detail::interp_edges(sorted, bins), std::vector<double>(static_cast<std::size_t>(bins), 0.0),
              std::vector<double>(static_cast<std::size_t>(bins), 0.0),
              std::vector<double>(static_cast<std::size_t>(bins), 0.0)};
  for (std::int64_t i = 0; i < s.num_samples; ++i) {
    const std::int64_t bin = code_bin(b.edges, c[i]);
    if (bin < 0) continue;
    b.count[bin] += 1;
    b.hits[bin] += s.prediction[i] == s.labels[i] ? 1.0 : 0.0;
    b.sum_confidence[bin] += c[i];
  }
  return b;
}

fitted fit_cws_code(const fit_input& in) {
  if (in.request.calib_bins.automatic)
    throw input_error("cws --follow code: the code fixes the number of bins (--calib-bins B, default 15), not auto");
  const auto bins = static_cast<std::int32_t>(in.request.calib_bins.count);
  const scored_split s = uncalibrated(in.val);
  std::vector<double> c(s.confidence.begin(), s.confidence.end());
  // 1. More than half the bins above 99 % accuracy: the confidences are capped at 0.9999.
  const code_bins first = code_equal_mass_bins(c, s, bins);
  std::int32_t high = 0;
  for (std::int32_t b = 0; b < bins; ++b)
    high += first.count[b] > 0 && code_mean_f32(first.hits[b], first.count[b]) > 0.99;
  if (high > bins / 2)
    for (double& x : c) x = std::min(x, k_code_confidence_cap);
  // 2. Equal-mass bins of the (capped) confidences; per non-empty bin the clipped ratio.
  const code_bins stats = code_equal_mass_bins(c, s, bins);
  const double u = 1.0 / static_cast<double>(s.num_classes);
  std::vector<double> weights(static_cast<std::size_t>(bins), 0.0);  // empty bins: 0 (the uniform distribution)
  for (std::int32_t b = 0; b < bins; ++b) {
    if (stats.count[b] == 0) continue;
    const double w =
        (code_mean_f32(stats.hits[b], stats.count[b]) - u) / (stats.sum_confidence[b] / stats.count[b] - u);
    const double clipped = std::isnan(w) ? 1.0 : std::max(0.0, std::min(1.0, w));  // Python's max(0, min(1, w))
    weights[b] = static_cast<float>(clipped);
  }
  return {std::make_shared<cws_code_map>(stats.edges, std::move(weights)), {}};
}

std::shared_ptr<const calibration_map> load_cws_code(const nlohmann::json& p, const std::string& where) {
  auto edges = p.at("edges").get<std::vector<double>>();
  auto weights = p.at("weights").get<std::vector<double>>();
  if (weights.empty() || edges.size() != weights.size() + 1)
    throw input_error(fmt::format("{}: cws --follow code needs B + 1 edges for B weights", where));
  return std::make_shared<cws_code_map>(std::move(edges), std::move(weights));
}

}  // namespace calibench
