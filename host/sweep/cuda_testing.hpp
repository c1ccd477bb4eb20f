// Test hooks of the CUDA sweep backend (host/sweep/cuda_backend.cpp; built only with CUDA). The
// backend itself is created through make_cuda_backend() in host/sweep/backend.hpp.
#pragma once

#include <cstdint>

namespace calibench::cuda_sweep_testing {

/// Caps the candidates per device chunk (0 restores the automatic size, from free device
/// memory), so that tests can force chunking on small inputs. Returns the previous cap.
std::int64_t set_max_chunk_candidates(std::int64_t candidates);

}  // namespace calibench::cuda_sweep_testing
