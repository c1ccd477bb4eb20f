// What the grid-search families (ts by ECE, ws, cts_conf, cts_greedy) share: the validation
// split made resident on the sweep backend, the sweep options of a request, the candidate
// grid with the method's default, and the first minimum of a swept objective.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "host/calibrators/request.hpp"
#include "host/io/dump.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/sweep_input.hpp"

namespace calibench {

/// A split's float32 logits (as the sweeps read them) and their resident copy.
struct resident_split {
  resident_split(const split_data& split, sweep_backend& backend);
  sweep_input input;
  std::unique_ptr<resident_logits> data;
};

/// The request's bins and bin rule; `adaece`: whether the sweep needs equal-mass bins.
sweep_options sweep_options_of(const fit_request& request, bool adaece);

/// The request's --grid, or `fallback` when it gave none (input_error naming --grid).
std::vector<double> grid_or(const fit_request& request, const char* fallback);

/// Index of the smallest value (lowest index on ties); error when every value is NaN.
std::int64_t first_min(const std::vector<double>& values);

}  // namespace calibench
