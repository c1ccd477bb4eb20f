// Scoring a split (host/metrics/metrics.hpp): the softmax of logits, or the probabilities as
// stored, reduced to the per-sample statistics that the metrics read, with the N x K
// probabilities kept only when a metric or a calibrator asks for them. One pass per row over
// float32 or float64 scores where they lie (a dump read into memory, or a caller's array): the
// row's largest entry, its index and a finiteness check in one vectorised sweep, then the exp
// terms in a K-entry scratch row. The arithmetic of each value is the reference's
// (tests/reference/calib_ref.py, from_logits): std::exp, sums left to right, std::log, so the
// ranking metrics see the same ties. Rows are independent, so results do not depend on the
// number of threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include <fmt/format.h>
#include <omp.h>

#include "common/error.hpp"
#include "host/io/dump.hpp"
#include "host/metrics/families.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {
namespace {

/// Largest entry of a row, and the sum of v * 0 over it: 0 when every entry is finite, NaN
/// otherwise. NaN entries are skipped by the maximum (the row is refused).
struct row_range {
  double max = -std::numeric_limits<double>::infinity();
  double poison = 0;
};

/// Eight entries of the input's own type as a GCC / Clang vector (float32 lanes are twice as
/// many per register; the maximum and the finiteness check are exact in either type).
template <class In>
struct lanes8;
template <>
struct lanes8<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct lanes8<double> {
  typedef double type __attribute__((vector_size(64)));
};

/// The row's extremes and finiteness (row_range), eight entries at a time.
template <class In>
row_range range_of(const In* z, std::int64_t k) {
  using v8 = typename lanes8<In>::type;
  constexpr In inf = std::numeric_limits<In>::infinity();
  v8 hi = {-inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf};
  v8 poison = {};
  std::int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    v8 v;
    std::memcpy(&v, z + j, sizeof v);
    hi = hi < v ? v : hi;
    poison += v * In(0);
  }
  row_range r;
  for (; j < k; ++j) {
    const auto v = static_cast<double>(z[j]);
    r.max = r.max < v ? v : r.max;
    r.poison += v * 0.0;
  }
  for (int l = 0; l < 8; ++l) {
    const auto h = static_cast<double>(hi[l]);
    r.max = r.max < h ? h : r.max;
    r.poison += static_cast<double>(poison[l]);
  }
  return r;
}

/// The lowest j with z_j == value (the argmax's tie rule); 0 if there is none (a NaN row).
template <class In>
std::int32_t first_index_of(const In* z, std::int64_t k, double value) {
  using v8 = typename lanes8<In>::type;
  const auto t = static_cast<In>(value);  // exact: value is one of the entries
  const v8 target = {t, t, t, t, t, t, t, t};
  std::int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    v8 v;
    std::memcpy(&v, z + j, sizeof v);
    const auto hit = v == target;
    bool any = false;
    for (int l = 0; l < 8; ++l) any |= hit[l] != 0;
    if (any) break;
  }
  for (; j < k; ++j) {
    if (static_cast<double>(z[j]) == value) return static_cast<std::int32_t>(j);
  }
  return 0;
}

/// The statistics of one row.
struct row_scores {
  double confidence = 0, log_p_label = 0, brier = 0;
  std::int32_t prediction = 0;
  bool finite = true;
};

/// Softmax of one row of logits (metrics.hpp, score_split): `terms` is K doubles of scratch;
/// the probabilities go to `probs` unless it is null (it may be `z` itself).
template <class In>
row_scores logit_row(const In* z, std::int64_t k, std::int32_t y, double* terms, double* probs, bool with_brier) {
  const row_range range = range_of(z, k);
  const double max = range.max;
  row_scores r;
  r.finite = range.poison == 0.0;
  r.prediction = first_index_of(z, k, max);
  const double label_logit = static_cast<double>(z[y]);
  double sum = 0;
  for (std::int64_t j = 0; j < k; ++j) {
    terms[j] = std::exp(static_cast<double>(z[j]) - max);
    sum += terms[j];
  }
  r.confidence = 1.0 / sum;  // the top term is exp(0) = 1
  r.log_p_label = label_logit - max - std::log(sum);
  if (with_brier) r.brier = detail::brier_row(k, y, [&](std::int64_t j) { return terms[j] / sum; });
  if (probs != nullptr) {
    for (std::int64_t j = 0; j < k; ++j) probs[j] = terms[j] / sum;
  }
  return r;
}

/// One row of stored probabilities; copied to `probs` unless it is null or the row itself.
template <class In>
row_scores probability_row(const In* p, std::int64_t k, std::int32_t y, double* probs, bool with_brier) {
  row_scores r;
  for (std::int64_t j = 1; j < k; ++j) {
    if (p[j] > p[r.prediction]) r.prediction = static_cast<std::int32_t>(j);
  }
  r.confidence = static_cast<double>(p[r.prediction]);
  r.log_p_label = std::log(static_cast<double>(p[y]));
  if (with_brier) r.brier = detail::brier_row(k, y, [&](std::int64_t j) { return static_cast<double>(p[j]); });
  if (probs != nullptr && static_cast<const void*>(probs) != static_cast<const void*>(p)) {
    for (std::int64_t j = 0; j < k; ++j) probs[j] = static_cast<double>(p[j]);
  }
  return r;
}

/// Scores rows [0, n) of `values` into `s` (labels set): the per-sample vectors, the Brier
/// terms if asked, the probabilities into `probs` (N x K) unless it is null. Returns whether
/// every logit was finite (probabilities are checked by the caller).
template <class In>
bool score_into(const In* values, std::int64_t row_stride, bool is_probs, const score_needs& needs, double* probs,
                scored_split& s) {
  const std::int64_t n = s.num_samples, k = s.num_classes;
  const auto size = static_cast<std::size_t>(n);
  s.confidence.resize(size);
  s.prediction.resize(size);
  s.log_p_label.resize(size);
  if (needs.brier_terms) s.brier_terms.resize(size);
  // Scratch rows allocated here, not inside the parallel region (which must not throw).
  const int threads = omp_get_max_threads();
  std::vector<double> scratch(is_probs ? 0 : static_cast<std::size_t>(threads) * static_cast<std::size_t>(k));
  bool finite = true;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(&& : finite)
  for (std::int64_t i = 0; i < n; ++i) {
    const In* row = values + i * row_stride;
    double* out = probs == nullptr ? nullptr : probs + i * k;
    const std::int32_t y = s.labels[static_cast<std::size_t>(i)];
    const row_scores r = is_probs
                             ? probability_row(row, k, y, out, needs.brier_terms)
                             : logit_row(row, k, y, scratch.data() + static_cast<std::size_t>(omp_get_thread_num()) * k,
                                         out, needs.brier_terms);
    s.confidence[i] = r.confidence;
    s.prediction[i] = r.prediction;
    s.log_p_label[i] = r.log_p_label;
    if (needs.brier_terms) s.brier_terms[i] = r.brier;
    finite = finite && r.finite;
  }
  return finite;
}

/// The first row holding a NaN (or, with `infinite_too`, any non-finite value), or -1.
std::int64_t first_bad_row(const std::vector<double>& values, std::int64_t k, bool infinite_too) {
  const auto n = static_cast<std::int64_t>(values.size()) / k;
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = values.data() + i * k;
    std::uint32_t bad = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double v = row[j];
      bad |= static_cast<std::uint32_t>(v != v ||
                                        (infinite_too && std::fabs(v) == std::numeric_limits<double>::infinity()));
    }
    if (bad != 0) return i;
  }
  return -1;
}

}  // namespace

score_needs needs_of(const metric_options& options, bool classwise) {
  score_needs needs;
  needs.probs = classwise || options.selected.any({"sce", "ace", "auroc", "skce", "skce_pvalue"});
  needs.brier_terms = !needs.probs && options.selected.has("brier") && options.brier != brier_rule::top_label;
  return needs;
}

scored_split score_split(split_data&& split, const score_needs& needs) {
  scored_split s;
  s.num_samples = split.num_samples;
  s.num_classes = split.num_classes;
  s.labels = std::move(split.labels);
  const std::int64_t k = s.num_classes;
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(split.values.size()) == s.num_samples * k, "scores and shape disagree");
  // Dumps are validated on reading; this catches a calibrator that produced NaN (the sorts of
  // the equal-mass and classwise metrics need a strict weak order).
  const std::int64_t bad = first_bad_row(split.values, k, split.is_probs);
  if (bad >= 0)
    throw input_error(fmt::format("{}: {}: the calibrated {} are not finite at row {} (a degenerate calibrator?)",
                                  split.file, split.name, split.is_probs ? "probabilities" : "logits", bad));
  s.probs = std::move(split.values);
  score_into(s.probs.data(), k, split.is_probs, needs, needs.probs ? s.probs.data() : nullptr, s);
  if (!needs.probs) s.probs = std::vector<double>();
  return s;
}

template <class In>
scored_split score_values(const score_rows<In>& values, std::span<const std::int32_t> labels, bool is_probs,
                          const std::string& where, const score_needs& needs) {
  CALIBENCH_EXPECTS(static_cast<std::int64_t>(labels.size()) == values.rows && values.row_stride >= values.cols,
                    "scores and labels disagree");
  if (is_probs) check_score_rows(where, values.data, values.rows, values.cols, values.row_stride, true);
  scored_split s;
  s.num_samples = values.rows;
  s.num_classes = values.cols;
  s.labels.assign(labels.begin(), labels.end());
  if (needs.probs) s.probs.resize(static_cast<std::size_t>(values.rows * values.cols));
  const bool finite =
      score_into(values.data, values.row_stride, is_probs, needs, needs.probs ? s.probs.data() : nullptr, s);
  // Logits are checked in the scoring pass; the message comes from the checks of a dump.
  if (!finite) check_score_rows(where, values.data, values.rows, values.cols, values.row_stride, false);
  return s;
}
template scored_split score_values(const score_rows<float>&, std::span<const std::int32_t>, bool, const std::string&,
                                   const score_needs&);
template scored_split score_values(const score_rows<double>&, std::span<const std::int32_t>, bool, const std::string&,
                                   const score_needs&);

scored_split gather_rows(const scored_split& s, std::span<const std::int64_t> rows) {
  scored_split out;
  const auto n = static_cast<std::int64_t>(rows.size());
  const std::int64_t k = s.num_classes;
  out.num_samples = n;
  out.num_classes = k;
  const bool with_probs = !s.probs.empty(), with_brier = !s.brier_terms.empty();
  if (with_probs) out.probs.resize(static_cast<std::size_t>(n * k));
  if (with_brier) out.brier_terms.resize(static_cast<std::size_t>(n));
  out.labels.resize(static_cast<std::size_t>(n));
  out.confidence.resize(static_cast<std::size_t>(n));
  out.prediction.resize(static_cast<std::size_t>(n));
  out.log_p_label.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t r = rows[i];
    if (with_probs) std::copy_n(s.probs.data() + r * k, k, out.probs.data() + i * k);
    if (with_brier) out.brier_terms[i] = s.brier_terms[r];
    out.labels[i] = s.labels[r];
    out.confidence[i] = s.confidence[r];
    out.prediction[i] = s.prediction[r];
    out.log_p_label[i] = s.log_p_label[r];
  }
  return out;
}

}  // namespace calibench
