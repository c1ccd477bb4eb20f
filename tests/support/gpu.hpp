// The GPU tests' skip rule: every GPU test compares the CUDA backend with the CPU backend and
// skips with the reason when the CUDA backend is not built or no device answers.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "host/sweep/device.hpp"

namespace calibench::test_support {

/// Why GPU tests cannot run here ("" when they can).
inline std::string gpu_skip_reason() {
  const device_report dev = discover_devices();
  if (!dev.cuda_built) return "CUDA backend not built (configure with -DCALIBENCH_CUDA=ON and nvcc)";
  if (dev.device_count == 0) return "no CUDA device: " + dev.reason;
  return {};
}

}  // namespace calibench::test_support

/// Skips the current test with the reason when no device can run it.
#define CALIBENCH_REQUIRE_GPU()                                            \
  do {                                                                     \
    const std::string why_ = ::calibench::test_support::gpu_skip_reason(); \
    if (!why_.empty()) GTEST_SKIP() << why_;                               \
  } while (0)
