// Launcher of the top-label statistics kernel (float logits -> confidence, prediction,
// log p_label per row). Device pointers; compiles with g++ (no CUDA types in the interface).
#pragma once

#include <cstdint>

namespace calibench::kernels {

/// For each of `num_samples` rows of `d_logits` (row-major, `num_classes` wide) writes the
/// softmax confidence, the prediction and log p_label at inverse temperature `inv_t`.
/// Asynchronous on the default stream; throws cuda_error if the launch fails.
void launch_top_label(const float* d_logits, const std::int32_t* d_labels, std::int64_t num_samples,
                      std::int64_t num_classes, float inv_t, float* d_confidence, std::int32_t* d_prediction,
                      float* d_log_p_label);

}  // namespace calibench::kernels
