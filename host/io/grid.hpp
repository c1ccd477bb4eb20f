// Candidate grids written as `start:stop:step` (inclusive of stop when it lies on the grid)
// or as a comma-separated list.
#pragma once

#include <string>
#include <vector>

namespace calibench {

/// Parses "start:stop:step" (step > 0, start <= stop; stop is included when it is within
/// 1e-9 steps of a grid point) or "v1,v2,...". Throws input_error naming `option`.
std::vector<double> parse_grid(const std::string& text, const std::string& option);

/// The same for an arithmetic grid, returning start, step and count.
struct arithmetic_grid {
  double start = 0, step = 0;
  long long count = 0;
};
arithmetic_grid parse_arithmetic_grid(const std::string& text, const std::string& option);

}  // namespace calibench
