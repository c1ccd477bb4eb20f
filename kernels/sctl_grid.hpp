// Launcher of the class-wise loss scaling grid kernel: the (alpha, beta) objective of
// docs/calibrators.md ("Class-wise loss scaling weights") at every pair of a grid x grid
// lattice. Device pointers; compiles with g++ (no CUDA types in the interface).
#pragma once

#include <cstdint>

#include "kernels/sctl_math.hpp"

namespace calibench::kernels {

/// The pair (j, c) of `lattice` is written to d_values[j * grid + c] = sum over the K classes, in class order, of
/// (l0_i - (beta t_i - beta / 2) (l1_i - l0_i) - mean_l1)^2 with t_i = sctl_sigmoid(normalised_i,
/// alpha_j): the squared objective, as the host grid computes it. One thread per pair, grid-stride.
/// Asynchronous on the default stream; throws cuda_error if the launch fails.
void launch_sctl_grid(const double* d_l0, const double* d_l1, const double* d_normalised, std::int64_t num_classes,
                      double mean_l1, const sctl_lattice& lattice, double* d_values);

}  // namespace calibench::kernels
