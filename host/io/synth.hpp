// `calibench synth`: classification dumps with known ground truth (docs/synth.md).
#pragma once

#include <cstdint>
#include <string>

namespace calibench {

struct synth_options {
  std::int64_t num_classes = 10;
  std::int64_t n_val = 5000;
  std::int64_t n_test = 10000;
  std::uint64_t seed = 0;
  double logit_scale = 4.0;       ///< s: true logits t = s * g, g ~ N(0, I)
  double temperature = 1.5;       ///< T: observed logits are T times sharper than the truth
  double class_distortion = 0.2;  ///< sigma_d: per-class scale tau_j = exp(sigma_d * u_j)
  double class_bias = 0.5;        ///< sigma_b: per-class logit offset beta_j = sigma_b * v_j
};

/// Generates a dump with /val and /test (logits, labels, true_probs) and the truth under
/// /truth; writes it atomically to `path`.
void write_synth_dump(const std::string& path, const synth_options& options);

}  // namespace calibench
