// Platt's logistic fit sigma(a s + b) of one score per row (docs/calibrators.md, `platt`),
// shared by platt (its binary, top-label and one-vs-rest maps) and scaling_binning: damped
// Newton on the mean NLL with 0/1 or Platt's smoothed targets, and the checks that the
// maximum-likelihood estimate exists. Float64.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace calibench {

/// The score s of each row and its target (0/1, or Platt's smoothed values).
struct platt_scores {
  std::vector<double> s, target;
};

/// A fitted sigma(a s + b): the parameters and how the fit ended.
struct platt_result {
  double a = 1, b = 0;
  std::int64_t steps = 0;
  double nll = 0;
  std::string stop;
};

/// The fit of scores `d`: with 0/1 targets input_error (naming `where`, with `target` saying
/// what target 1 means, over `rows` rows) unless the maximum-likelihood estimate exists;
/// `smoothed` replaces the targets by Platt's (N+ + 1)/(N+ + 2) and 1/(N- + 2) first.
platt_result fit_scores(platt_scores d, bool smoothed, const std::string& where, const char* target, std::int64_t rows);

}  // namespace calibench
