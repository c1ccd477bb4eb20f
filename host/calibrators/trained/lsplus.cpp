// LS+ informed class priors (host/calibrators/trained/lsplus.hpp).
#include "host/calibrators/trained/lsplus.hpp"

#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"

namespace calibench {

lsplus_perfect parse_lsplus_perfect(std::string_view name) {
  if (name == "uniform") return lsplus_perfect::uniform;
  if (name == "half") return lsplus_perfect::half;
  if (name == "keep") return lsplus_perfect::keep;
  throw input_error(fmt::format("unknown replacement '{}' for classes with accuracy 1 (uniform | half | keep)", name));
}

const char* lsplus_perfect_name(lsplus_perfect rule) {
  switch (rule) {
    case lsplus_perfect::uniform: return "uniform";
    case lsplus_perfect::half: return "half";
    case lsplus_perfect::keep: return "keep";
  }
  return "?";
}

lsplus_priors compute_lsplus_priors(const split_data& split, lsplus_perfect rule) {
  const std::int64_t k = split.num_classes, n = split.num_samples;
  CALIBENCH_EXPECTS(k >= 2 && static_cast<std::int64_t>(split.values.size()) == n * k &&
                        static_cast<std::int64_t>(split.labels.size()) == n,
                    "lsplus: a validated split");
  lsplus_priors out;
  out.num_classes = k;
  out.num_samples = n;
  out.rule = rule;
  out.classes.resize(static_cast<std::size_t>(k));
  for (std::int64_t s = 0; s < n; ++s) {
    const double* row = split.values.data() + s * k;
    std::int64_t pred = 0;
    for (std::int64_t j = 1; j < k; ++j) {
      if (row[j] > row[pred]) pred = j;
    }
    auto& c = out.classes[static_cast<std::size_t>(split.labels[s])];
    ++c.count;
    if (pred == split.labels[s]) ++c.correct;
  }
  const double uniform = 1.0 / static_cast<double>(k);
  for (auto& c : out.classes) {
    if (c.count == 0) {
      ++out.absent;
      c.accuracy = std::numeric_limits<double>::quiet_NaN();
      c.prior_true = uniform;
      c.replaced = true;
    } else {
      c.accuracy = static_cast<double>(c.correct) / static_cast<double>(c.count);
      c.prior_true = c.accuracy;
      if (c.correct == c.count) {
        ++out.perfect;
        if (rule != lsplus_perfect::keep) {
          c.prior_true = rule == lsplus_perfect::uniform ? uniform : 0.5;
          c.replaced = true;
        }
      }
    }
    c.prior_other = (1.0 - c.prior_true) / static_cast<double>(k - 1);
  }
  return out;
}

}  // namespace calibench
