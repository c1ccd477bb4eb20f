// Isotonic regression as scikit-learn's IsotonicRegression(increasing=True,
// out_of_bounds="clip") fits and predicts it (docs/calibrators.md, `iso`), on any (x, 0/1
// target) pairs: the top-label map of `iso` and the per-class and pooled maps of Mix-n-Match's
// `irova`, `irm` and `irova_ts` (host/calibrators/mixnmatch_isotonic.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace calibench {

/// sklearn's X_thresholds_ and y_thresholds_: the first and last x of every pooled block (one
/// point for a block of one distinct x) with the block's mean target.
struct isotonic_knots {
  std::vector<double> x, y;
};

/// Pool-adjacent-violators on the distinct x (sklearn's _make_unique grouping at 1e-15) with
/// `hit[i]` in {0, 1}; block means decided exactly from integer counts.
isotonic_knots fit_isotonic(std::span<const double> x, std::span<const std::uint8_t> hit);

/// Centered isotonic regression (Oron and Flournoy 2017) as cir-model 0.2.0's
/// CenteredIsotonicRegression (non_centered_points [0, 1], out_of_bounds "clip") fits it: the
/// isotonic fit above, then every pooled block collapsed to one knot at the mean x of its samples,
/// except that a block of mean exactly 0 or 1 keeps its first and last x, the first block keeps its
/// first x and the last block its last x (the fitted range), then scikit-learn's second fit of
/// those knots (x within 1e-15 merged, a knot equal to both neighbours dropped).
isotonic_knots fit_centered_isotonic(std::span<const double> x, std::span<const std::uint8_t> hit);

/// The fitted function at c: clipped to [x_0, x_last], then scipy interp1d's linear formula.
double isotonic_at(const isotonic_knots& k, double c);

/// input_error naming `where` unless x and y have one length >= 1 and x increases strictly.
void check_knots(const isotonic_knots& k, const std::string& where, const char* method);

}  // namespace calibench
