// Pieces of the grid-search fits (host/calibrators/grid_search.hpp).
#include "host/calibrators/grid_search.hpp"

#include <string>

#include "common/error.hpp"
#include "host/io/grid.hpp"

namespace calibench {

resident_split::resident_split(const split_data& split, sweep_backend& backend)
    : input(to_sweep_input(split)), data(backend.prepare(input.view())) {}

sweep_options sweep_options_of(const fit_request& request, bool adaece) {
  return {request.metrics.num_bins, request.metrics.bin_rule, adaece};
}

std::vector<double> grid_or(const fit_request& request, const char* fallback) {
  return parse_grid(request.grid.empty() ? std::string(fallback) : request.grid, "--grid");
}

std::int64_t first_min(const std::vector<double>& values) {
  const std::int64_t best = sweep_result::argmin(values);
  if (best < 0) throw error("every candidate's objective is undefined");
  return best;
}

}  // namespace calibench
