// CUDA device discovery. Never throws and never aborts: no driver, no device or a build
// without CUDA all mean zero devices, with a reason.
#pragma once

#include <string>

namespace calibench {

struct device_report {
  bool cuda_built = false;  ///< the CUDA backend was compiled in
  int device_count = 0;     ///< devices that answered
  std::string name;         ///< first device's name ("" when none)
  std::string reason;       ///< why there is no device, when device_count == 0
};

device_report discover_devices() noexcept;

/// Makes device `index mod count` current for this process (one GPU per MPI rank by local
/// rank); does nothing without CUDA or devices. Never throws.
void select_device(int index) noexcept;

}  // namespace calibench
