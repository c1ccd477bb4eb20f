// Host adapter of the class-wise loss scaling grid kernel (kernels/sctl_grid.hpp): copies the
// class-loss vectors to the first CUDA device, evaluates the lattice, copies the values back.
// Only built with the CUDA backend.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "host/calibrators/trained/sctl.hpp"

namespace calibench {

/// The squared objective at every pair of the grid x grid lattice of `box`, alpha-major (the
/// layout of sctl_grid_values); throws cuda_error.
std::vector<double> sctl_grid_values_cuda(std::span<const double> l0, std::span<const double> l1,
                                          std::span<const double> normalised1, const sctl_box& box, std::int64_t grid);

}  // namespace calibench
