// LS+ informed class priors (label smoothing plus, Sambyal et al. MICCAI 2024; docs/calibrators.md
// "LS+ priors"): per-class validation accuracy of the uncalibrated model and the soft targets
// v^k built from it, for the `+lsplus` loss of the gradient-trained base methods.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "host/io/dump.hpp"

namespace calibench {

/// What replaces the accuracy of a class whose validation samples are all correct (a one-hot
/// target otherwise): uniform = 1/K (the rule the authors' code states; v^k is then uniform),
/// half = 0.5 (the value in the authors' active ISIC vectors), keep = 1 (no replacement).
enum class lsplus_perfect : std::int32_t { uniform, half, keep };

/// "uniform" | "half" | "keep" (throws input_error otherwise).
lsplus_perfect parse_lsplus_perfect(std::string_view name);
const char* lsplus_perfect_name(lsplus_perfect rule);

/// One class: v^k has prior_true on class k and prior_other on each of the K - 1 others.
struct lsplus_class_prior {
  std::int64_t count = 0;    ///< validation samples with label k
  std::int64_t correct = 0;  ///< of those, predicted k (argmax of the stored values, lowest index on ties)
  double accuracy = 0;       ///< correct / count; NaN when count = 0
  double prior_true = 0;     ///< the accuracy, or its replacement (perfect or absent class)
  double prior_other = 0;    ///< (1 - prior_true) / (K - 1)
  bool replaced = false;     ///< prior_true is not the accuracy (perfect class replaced, or absent class)
};

struct lsplus_priors {
  std::int64_t num_classes = 0;
  std::int64_t num_samples = 0;
  lsplus_perfect rule = lsplus_perfect::uniform;
  std::vector<lsplus_class_prior> classes;
  std::int64_t perfect = 0;  ///< classes with accuracy 1 (replaced unless rule = keep)
  std::int64_t absent = 0;   ///< classes without validation samples: prior_true = 1/K (uniform v^k)
};

/// The priors of a split (the validation split of the uncalibrated model).
lsplus_priors compute_lsplus_priors(const split_data& split, lsplus_perfect rule);

}  // namespace calibench
