// The optimisers of the loss-trained calibrators, as the class-wise loss scaling code calls
// them (SeungjinJung/SCTL, models/optimizer.py): ports of torch.optim.LBFGS without line search
// (one step(closure) call per stage) and of torch.optim.Adam, in float64. Internal to
// host/calibrators/trained/.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench::detail {

/// A loss and its gradient at x (a counted evaluation: the closure of the authors' code).
using closure_fn = std::function<double(const std::vector<double>&, std::vector<double>&)>;

/// torch.optim.LBFGS(params, lr, max_iter, tolerance_grad, tolerance_change).step(closure) on a
/// fresh optimiser (history 100, no line search, max_eval = max_iter * 5 / 4).
training_stage torch_lbfgs(std::vector<double>& x, double lr, std::int64_t max_iter, double tolerance_grad,
                           double tolerance_change, const closure_fn& closure);

/// `steps` full-batch steps of torch.optim.Adam(params, lr, weight_decay) on a fresh optimiser.
training_stage torch_adam(std::vector<double>& x, double lr, std::int64_t steps, double weight_decay,
                          const closure_fn& closure);

}  // namespace calibench::detail
