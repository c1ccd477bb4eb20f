// SKCE with the paper's kernel and its bootstrap test (host/metrics/skce.hpp, docs/ports/skce.md).
// Distances follow tests/reference/skce_ref.py's arithmetic, so the bandwidth is the reference's
// to the bit; the pair pass runs over fixed row blocks whose partial sums are added in block
// order, so nothing depends on the thread count.
#include "host/metrics/skce.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/parallel.hpp"
#include "common/rng.hpp"

namespace calibench {
namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

/// Up to this many classes the reference sums |p_ic - p_jc| one class plane at a time (class
/// order); above, numpy sums each pair's K terms in its pairwise order (skce_ref.distances).
constexpr std::int64_t k_plane_classes = 64;
/// Rows per block of the pair pass: the unit of parallel work and of the test's partial sums.
constexpr std::int64_t k_block_rows = 32;
/// Columns of one row computed at once (the H chunk that meets the resample counts).
constexpr std::int64_t k_chunk_cols = 256;
/// Rows per parallel task of the distance sweeps of the median.
constexpr std::int64_t k_sweep_rows = 16;
/// Resamples whose counts are drawn together, then written as one cache line of each row of C.
constexpr std::int64_t k_count_group = 8;
/// Values a thread buffers before it copies them into the kept distances.
constexpr std::size_t k_flush_values = 4096;

/// The inputs, with a class-major copy pt[c * N + j] for K <= k_plane_classes: the distances of
/// one row to consecutive rows then vectorise over those rows, each still summed in class order.
struct prob_view {
  const double* p = nullptr;
  const std::int32_t* y = nullptr;
  std::int64_t n = 0, k = 0;
  std::vector<double> pt;
};

/// The view of validated inputs (labels may be null: the median needs none).
prob_view make_view(std::span<const double> probs, const std::int32_t* labels, std::int64_t n, std::int64_t k) {
  prob_view v{probs.data(), labels, n, k, {}};
  if (k <= k_plane_classes) {
    v.pt.resize(static_cast<std::size_t>(n * k));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t c = 0; c < k; ++c) v.pt[c * n + i] = v.p[i * k + c];
  }
  return v;
}

/// numpy's pairwise sum (DOUBLE_pairwise_sum, PW_BLOCKSIZE 128) of |a_m - b_m|, m < n.
double numpy_pairwise_abs_diff(const double* a, const double* b, std::int64_t n) {
  if (n < 8) {
    double s = 0;
    for (std::int64_t m = 0; m < n; ++m) s += std::fabs(a[m] - b[m]);
    return s;
  }
  if (n <= 128) {
    double r[8];
    for (int t = 0; t < 8; ++t) r[t] = std::fabs(a[t] - b[t]);
    std::int64_t m = 8;
    for (; m < n - n % 8; m += 8)
      for (int t = 0; t < 8; ++t) r[t] += std::fabs(a[m + t] - b[m + t]);
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; m < n; ++m) s += std::fabs(a[m] - b[m]);
    return s;
  }
  std::int64_t half = n / 2;
  half -= half % 8;
  return numpy_pairwise_abs_diff(a, b, half) + numpy_pairwise_abs_diff(a + half, b + half, n - half);
}

/// sum_m a_m b_m with eight partial sums in a fixed order.
double dot8(const double* a, const double* b, std::int64_t n) {
  double s[8] = {};
  std::int64_t m = 0;
  for (; m + 8 <= n; m += 8)
    for (int t = 0; t < 8; ++t) s[t] += a[m + t] * b[m + t];
  for (; m < n; ++m) s[m % 8] += a[m] * b[m];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/// Rows j handled together by plane_pairs: fixed-size local sums vectorise without alias checks.
constexpr std::int64_t k_pair_tile = 16;

/// row_pairs for K <= k_plane_classes: each sum in class order from 0, as the reference's planes.
template <bool with_dots>
void plane_pairs(const prob_view& v, std::int64_t i, std::int64_t j0, std::int64_t w, double* dist, double* dots) {
  const double* pi = v.p + i * v.k;
  std::int64_t t0 = 0;
  for (; t0 + k_pair_tile <= w; t0 += k_pair_tile) {
    double s[k_pair_tile] = {}, q[k_pair_tile] = {};
    for (std::int64_t c = 0; c < v.k; ++c) {
      const double a = pi[c];
      const double* col = v.pt.data() + c * v.n + j0 + t0;
      // Unrolled, the sums live in registers even at -O2 (measured 1.8x on the median's sweeps).
#pragma GCC unroll 16
      for (std::int64_t u = 0; u < k_pair_tile; ++u) s[u] += std::fabs(a - col[u]);
      if constexpr (with_dots) {
#pragma GCC unroll 16
        for (std::int64_t u = 0; u < k_pair_tile; ++u) q[u] += a * col[u];
      }
    }
    for (std::int64_t u = 0; u < k_pair_tile; ++u) dist[t0 + u] = s[u] / 2;
    if constexpr (with_dots)
      for (std::int64_t u = 0; u < k_pair_tile; ++u) dots[t0 + u] = q[u];
  }
  for (; t0 < w; ++t0) {
    double s = 0, q = 0;
    for (std::int64_t c = 0; c < v.k; ++c) {
      const double a = pi[c];
      const double b = v.pt[c * v.n + j0 + t0];
      s += std::fabs(a - b);
      q += a * b;
    }
    dist[t0] = s / 2;
    if constexpr (with_dots) dots[t0] = q;
  }
}

/// For j in [j0, j1): dist[j - j0] = d(p_i, p_j) and, when dots is given, dots[j - j0] = <p_i, p_j>.
void row_pairs(const prob_view& v, std::int64_t i, std::int64_t j0, std::int64_t j1, double* dist, double* dots) {
  const std::int64_t w = j1 - j0;
  if (v.k <= k_plane_classes) {
    if (dots != nullptr)
      plane_pairs<true>(v, i, j0, w, dist, dots);
    else
      plane_pairs<false>(v, i, j0, w, dist, nullptr);
    return;
  }
  const double* pi = v.p + i * v.k;
  for (std::int64_t t = 0; t < w; ++t) {
    const double* pj = v.p + (j0 + t) * v.k;
    dist[t] = numpy_pairwise_abs_diff(pi, pj, v.k) / 2;
    if (dots != nullptr) dots[t] = dot8(pi, pj, v.k);
  }
}

// ------------------------------------------------------------------ exact median selection

/// The distances whose float64 bits b have (b >> shift) == prefix; shift 64 holds every one.
/// For d >= 0 the bit pattern is monotone in d, so bins of a digit are ordered like the values.
struct bit_bin {
  std::uint64_t prefix = 0;
  int shift = 64;
  std::int64_t count = 0;
  bool contains(std::uint64_t bits) const { return shift == 64 || (bits >> shift) == prefix; }
  bool same(const bit_bin& o) const { return prefix == o.prefix && shift == o.shift; }
};

/// The next digit's low bit: bits 44..63 first (2^20 bins, the doc's first pass), then 16, 16
/// and 12 bits, after which a bin holds a single value.
int next_shift(int shift) { return shift == 64 ? 44 : shift == 44 ? 28 : shift == 28 ? 12 : 0; }

/// One rank being selected: its rank among the values of `bin`.
struct rank_search {
  std::int64_t rank = 0;
  bit_bin bin;
  double value = 0;
  bool done = false;
};

/// One bin examined by a sweep: its values kept (collect) or counted by the next digit.
struct sweep_job {
  bit_bin bin;
  bool collect = false;
  int lo = 0;  // the counted digit is (bits >> lo) & mask
  std::uint64_t mask = 0;
  std::vector<std::int64_t> hist;                                    // merged counts per digit
  double min = std::numeric_limits<double>::infinity(), max = -min;  // of the bin's values
  std::vector<double> kept;                                          // sized bin.count; filled through `filled`
  std::atomic<std::int64_t> filled{0};
};

/// Per-thread state of a sweep: counts and a small buffer of values per job, the row sums.
struct sweep_scratch {
  std::vector<std::vector<std::int64_t>> hist;
  std::vector<double> min, max;
  std::vector<std::vector<double>> buffer;
  std::vector<double> dist;
};

/// Moves a thread's buffered values into the job's kept values (any order: only ranks matter).
void flush(sweep_job& job, std::vector<double>& buffer) {
  const auto at = job.filled.fetch_add(static_cast<std::int64_t>(buffer.size()), std::memory_order_relaxed);
  std::copy(buffer.begin(), buffer.end(), job.kept.begin() + at);
  buffer.clear();
}

/// Feeds one distance to every job whose bin holds it.
void visit(std::vector<sweep_job>& jobs, sweep_scratch& s, double d) {
  const auto bits = std::bit_cast<std::uint64_t>(d);
  for (std::size_t g = 0; g < jobs.size(); ++g) {
    sweep_job& job = jobs[g];
    if (!job.bin.contains(bits)) continue;
    if (job.collect) {
      s.buffer[g].push_back(d);
      if (s.buffer[g].size() == k_flush_values) flush(job, s.buffer[g]);
    } else {
      ++s.hist[g][(bits >> job.lo) & job.mask];
      s.min[g] = std::min(s.min[g], d);
      s.max[g] = std::max(s.max[g], d);
    }
  }
}

/// One pass over the N(N-1)/2 distances i < j feeding `jobs`; with `row_sums`, also each row's
/// sum_{j>i} d_ij (in j order).
void sweep(const prob_view& v, std::vector<sweep_job>& jobs, std::vector<double>* row_sums) {
  for (sweep_job& job : jobs) {
    if (job.collect) {
      job.kept.assign(static_cast<std::size_t>(job.bin.count), 0.0);
      job.filled = 0;
    } else {
      // d >= +0 (sums of fabs), so the sign bit is 0 and the first digit is below 2^19
      job.hist.assign(static_cast<std::size_t>(job.bin.shift == 64 ? job.mask >> 1 : job.mask) + 1, 0);
    }
  }
  const std::int64_t n = v.n;
  const std::int64_t tasks = (n + k_sweep_rows - 1) / k_sweep_rows;
  thread_errors errors;
#pragma omp parallel
  {
    sweep_scratch s;
    errors.run([&] {
      s.dist.resize(static_cast<std::size_t>(k_chunk_cols));
      s.hist.resize(jobs.size());
      s.min.assign(jobs.size(), std::numeric_limits<double>::infinity());
      s.max.assign(jobs.size(), -std::numeric_limits<double>::infinity());
      s.buffer.resize(jobs.size());
      for (std::size_t g = 0; g < jobs.size(); ++g) {
        if (jobs[g].collect)
          s.buffer[g].reserve(k_flush_values);
        else
          s.hist[g].assign(jobs[g].hist.size(), 0);
      }
    });
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
      errors.run([&] {
        for (std::int64_t i = task * k_sweep_rows; i < std::min(n, (task + 1) * k_sweep_rows); ++i) {
          double sum = 0;
          for (std::int64_t j0 = i + 1; j0 < n; j0 += k_chunk_cols) {
            const std::int64_t j1 = std::min(n, j0 + k_chunk_cols);
            row_pairs(v, i, j0, j1, s.dist.data(), nullptr);
            for (std::int64_t t = 0; t < j1 - j0; ++t) {
              sum += s.dist[t];
              visit(jobs, s, s.dist[t]);
            }
          }
          if (row_sums != nullptr) (*row_sums)[i] = sum;
        }
      });
    }
    errors.run([&] {
      for (std::size_t g = 0; g < jobs.size(); ++g) {
        if (jobs[g].collect) {
          flush(jobs[g], s.buffer[g]);
          continue;
        }
#pragma omp critical(calibench_skce_hist)
        {
          for (std::size_t b = 0; b < s.hist[g].size(); ++b) jobs[g].hist[b] += s.hist[g][b];
          jobs[g].min = std::min(jobs[g].min, s.min[g]);
          jobs[g].max = std::max(jobs[g].max, s.max[g]);
        }
      }
    });
  }
  errors.rethrow();
}

/// After a sweep: the rank's value (kept values, or a bin of equal values) or its bin one digit
/// down (histogram).
void advance(rank_search& r, sweep_job& job) {
  if (!job.collect && job.min == job.max) {  // ties: every value in play is the same
    r.value = job.min;
    r.done = true;
    return;
  }
  if (job.collect) {
    const auto at = job.kept.begin() + r.rank;
    std::nth_element(job.kept.begin(), at, job.kept.end());
    r.value = *at;
    r.done = true;
    return;
  }
  const int lo = next_shift(r.bin.shift);
  const int width = r.bin.shift - lo;
  std::int64_t below = 0;
  std::uint64_t digit = 0;
  while (below + job.hist[digit] <= r.rank) below += job.hist[digit++];
  r.rank -= below;
  r.bin.prefix = r.bin.shift == 64 ? digit : (r.bin.prefix << width) | digit;
  r.bin.shift = lo;
  r.bin.count = job.hist[digit];
  if (lo == 0) {  // every value left in the bin has these 64 bits
    r.value = std::bit_cast<double>(r.bin.prefix);
    r.done = true;
  }
}

/// The order statistics `ranks` (ascending, 0-based) of the N(N-1)/2 distances i < j, exact,
/// with at most max_kept values held per bin; row_sums gets each row's distance sum.
std::vector<double> upper_order_stats(const prob_view& v, const std::vector<std::int64_t>& ranks, std::int64_t max_kept,
                                      std::vector<double>& row_sums) {
  std::vector<rank_search> searches;
  for (std::int64_t r : ranks) searches.push_back({r, {0, 64, v.n * (v.n - 1) / 2}, 0, false});
  bool first = true;
  while (std::any_of(searches.begin(), searches.end(), [](const rank_search& r) { return !r.done; })) {
    std::vector<bit_bin> bins;  // the distinct bins of the unfinished searches
    std::vector<std::size_t> job_of(searches.size());
    for (std::size_t q = 0; q < searches.size(); ++q) {
      if (searches[q].done) continue;
      std::size_t g = 0;
      while (g < bins.size() && !bins[g].same(searches[q].bin)) ++g;
      if (g == bins.size()) bins.push_back(searches[q].bin);
      job_of[q] = g;
    }
    std::vector<sweep_job> jobs(bins.size());
    for (std::size_t g = 0; g < bins.size(); ++g) {
      jobs[g].bin = bins[g];
      jobs[g].collect = bins[g].count <= max_kept;
      jobs[g].lo = next_shift(bins[g].shift);
      jobs[g].mask = (std::uint64_t{1} << (bins[g].shift - jobs[g].lo)) - 1;
    }
    sweep(v, jobs, first ? &row_sums : nullptr);
    first = false;
    for (std::size_t q = 0; q < searches.size(); ++q)
      if (!searches[q].done) advance(searches[q], jobs[job_of[q]]);
  }
  std::vector<double> out;
  for (const rank_search& r : searches) out.push_back(r.value);
  return out;
}

/// Median of the full N x N matrix (skce_ref.median_distance, pairs="all"): its sorted entries
/// are N zeros, then every upper value twice. Sets `upper_sum` to sum_{i<j} d_ij.
double full_matrix_median(const prob_view& v, std::int64_t max_kept, double& upper_sum) {
  const std::int64_t n = v.n;
  upper_sum = 0;
  if (n == 0) return k_nan;
  const std::int64_t m = n * n;
  const std::int64_t want[2] = {(m - 1) / 2, m / 2};  // the middle ranks of the full matrix
  std::vector<std::int64_t> ranks;                    // their distinct upper ranks, ascending
  for (std::int64_t r : want)
    if (r >= n && (ranks.empty() || ranks.back() != (r - n) / 2)) ranks.push_back((r - n) / 2);
  std::vector<double> row_sums(static_cast<std::size_t>(n), 0.0);
  const std::vector<double> stats =
      ranks.empty() ? std::vector<double>{} : upper_order_stats(v, ranks, max_kept, row_sums);
  for (double s : row_sums) upper_sum += s;
  double vals[2];
  for (int w = 0; w < 2; ++w) vals[w] = want[w] < n ? 0.0 : stats[(want[w] - n) / 2 == ranks.front() ? 0 : 1];
  return vals[0] / 2 + vals[1] / 2;
}

/// The paper's median heuristic with calibench's edge rules: a zero median becomes the mean of
/// the N^2 entries, a zero mean (all rows equal; the kernel is 1 whatever nu) becomes 1.
double bandwidth(const prob_view& v) {
  double upper_sum = 0;
  double nu = full_matrix_median(v, k_skce_median_keep, upper_sum);
  if (v.n == 0) return nu;
  if (!(nu > 0)) nu = (2 * upper_sum) / static_cast<double>(v.n * v.n);
  if (!(nu > 0)) nu = 1.0;
  return nu;
}

// ------------------------------------------------------------------ the pair pass and the test

/// Counts C[j * B + b] = times row j is drawn in resample b (stream b of seed, N draws).
std::vector<double> resample_counts(std::int64_t n, const skce_options& o) {
  const std::int64_t nb = o.resamples;
  std::vector<double> c(static_cast<std::size_t>(n * nb), 0.0);
  const std::int64_t groups = (nb + k_count_group - 1) / k_count_group;
  thread_errors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t g = 0; g < groups; ++g) {
    errors.run([&] {
      const std::int64_t b0 = g * k_count_group;
      const std::int64_t w = std::min(k_count_group, nb - b0);
      std::vector<std::int32_t> local(static_cast<std::size_t>(w * n), 0);
      for (std::int64_t t = 0; t < w; ++t) {
        auto rng = make_stream(o.seed, static_cast<std::uint64_t>(b0 + t));
        for (std::int64_t s = 0; s < n; ++s)
          ++local[t * n + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n)))];
      }
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t t = 0; t < w; ++t) c[j * nb + b0 + t] = local[t * n + j];
    });
  }
  errors.rethrow();
  return c;
}

/// Rows and resamples of one register block of accumulate_products.
constexpr int k_block_mr = 8, k_block_nr = 8;

/// accumulate_products on one full k_block_mr x k_block_nr block of y (leading dimension nb).
void product_block(const double* h, std::int64_t cols, const double* c, std::int64_t nb, double* y) {
  double acc[k_block_mr][k_block_nr];
  for (int r = 0; r < k_block_mr; ++r)
    for (int t = 0; t < k_block_nr; ++t) acc[r][t] = y[r * nb + t];
  for (std::int64_t j = 0; j < cols; ++j) {
    const double* cj = c + j * nb;
    for (int r = 0; r < k_block_mr; ++r) {
      const double hv = h[r * k_chunk_cols + j];
      for (int t = 0; t < k_block_nr; ++t) acc[r][t] += hv * cj[t];
    }
  }
  for (int r = 0; r < k_block_mr; ++r)
    for (int t = 0; t < k_block_nr; ++t) y[r * nb + t] = acc[r][t];
}

/// y[r * nb + b] += sum_j h[r * k_chunk_cols + j] * c[j * nb + b] for r < rows, j < cols, b < nb,
/// every sum in ascending j: the register blocking cannot change a bit of the result.
void accumulate_products(const double* h, std::int64_t rows, std::int64_t cols, const double* c, std::int64_t nb,
                         double* y) {
  for (std::int64_t b0 = 0; b0 < nb; b0 += k_block_nr) {
    for (std::int64_t r0 = 0; r0 < rows; r0 += k_block_mr) {
      if (b0 + k_block_nr <= nb && r0 + k_block_mr <= rows) {
        product_block(h + r0 * k_chunk_cols, cols, c + b0, nb, y + r0 * nb + b0);
        continue;
      }
      for (std::int64_t r = r0; r < std::min(rows, r0 + k_block_mr); ++r)
        for (std::int64_t b = b0; b < std::min(nb, b0 + k_block_nr); ++b) {
          double acc = y[r * nb + b];
          for (std::int64_t j = 0; j < cols; ++j) acc += h[r * k_chunk_cols + j] * c[j * nb + b];
          y[r * nb + b] = acc;
        }
    }
  }
}

/// h_ij = exp(-g d_ij) ([y_i == y_j] - p_i[y_j] - p_j[y_i] + <p_i, p_j>) for j in [j0, j1)
/// (src/skce.jl:490, in that order).
void h_row(const prob_view& v, double g, std::int64_t i, std::int64_t j0, std::int64_t j1, double* dist, double* dots,
           double* out) {
  row_pairs(v, i, j0, j1, dist, dots);
  const double* pi = v.p + i * v.k;
  const std::int32_t yi = v.y[i];
  for (std::int64_t t = 0; t < j1 - j0; ++t) {
    const std::int64_t j = j0 + t;
    const std::int32_t yj = v.y[j];
    const double pj_yi = v.k <= k_plane_classes ? v.pt[yi * v.n + j] : v.p[j * v.k + yi];
    const double white = (((yi == yj ? 1.0 : 0.0) - pi[yj]) - pj_yi) + dots[t];
    out[t] = std::exp(-g * dist[t]) * white;
  }
}

/// sum of x[0..n) with eight partial sums in a fixed order.
double sum8(const double* x, std::int64_t n) {
  double s[8] = {};
  std::int64_t m = 0;
  for (; m + 8 <= n; m += 8)
    for (int t = 0; t < 8; ++t) s[t] += x[m + t];
  for (; m < n; ++m) s[m % 8] += x[m];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/// What the pair pass leaves: per row sum_{j>i} h_ij and h_ii; with the test, per row block the
/// partial sums over its rows of c_ib (h_ii (c_ib - 1) + 2 Y_ib) and c_ib (h_ii + u_i) + Y_ib,
/// Y_ib = sum_{j>i} h_ij c_jb: c^T H c - c.d and c.r of resample b, summed block by block.
struct pair_sums {
  std::vector<double> upper, diag;
  std::vector<double> quad, lin;  // [block * B + b]
};

/// One row block: its H rows chunk by chunk, the row sums, and (with counts) Y and the partials.
struct block_scratch {
  std::vector<double> dist, dots, tile, y;
};

/// Row block `blk`: its rows' upper sums and diagonal into `out`, chunk by chunk of columns
/// (zeros below the diagonal, so every chunk has the same shape); with counts, Y of its rows and
/// its partials quad and lin.
void pair_block(const prob_view& v, double g, std::int64_t blk, const std::vector<double>* counts, std::int64_t nb,
                block_scratch& s, pair_sums& out) {
  const std::int64_t n = v.n;
  const std::int64_t i0 = blk * k_block_rows;
  const std::int64_t rows = std::min(k_block_rows, n - i0);
  if (counts != nullptr) std::fill(s.y.begin(), s.y.end(), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) out.upper[i0 + r] = 0;
  for (std::int64_t j0 = i0; j0 < n; j0 += k_chunk_cols) {
    const std::int64_t j1 = std::min(n, j0 + k_chunk_cols);
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t i = i0 + r;
      double* row = s.tile.data() + r * k_chunk_cols;
      const std::int64_t from = std::max(j0, i);  // columns j < i of the chunk are zero
      std::fill(row, row + (std::min(from, j1) - j0), 0.0);
      if (from < j1) h_row(v, g, i, from, j1, s.dist.data(), s.dots.data(), row + (from - j0));
      if (from == i && from < j1) {
        out.diag[i] = row[i - j0];
        row[i - j0] = 0;
      }
      out.upper[i] += sum8(row, j1 - j0);
    }
    if (counts != nullptr) accumulate_products(s.tile.data(), rows, j1 - j0, counts->data() + j0 * nb, nb, s.y.data());
  }
  if (counts == nullptr) return;
  double* quad = out.quad.data() + blk * nb;
  double* lin = out.lin.data() + blk * nb;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t i = i0 + r;
    const double* ci = counts->data() + i * nb;
    const double* yi = s.y.data() + r * nb;
    for (std::int64_t b = 0; b < nb; ++b) {
      quad[b] += ci[b] * (out.diag[i] * (ci[b] - 1) + 2 * yi[b]);
      lin[b] += ci[b] * (out.diag[i] + out.upper[i]) + yi[b];
    }
  }
}

/// Every h_ij once (i <= j), by row blocks in parallel; counts (N x B) given: the test's partials.
pair_sums pair_pass(const prob_view& v, double g, const std::vector<double>* counts, std::int64_t nb) {
  const std::int64_t n = v.n;
  const std::int64_t blocks = (n + k_block_rows - 1) / k_block_rows;
  pair_sums out;
  out.upper.assign(static_cast<std::size_t>(n), 0.0);
  out.diag.assign(static_cast<std::size_t>(n), 0.0);
  if (counts != nullptr) {
    out.quad.assign(static_cast<std::size_t>(blocks * nb), 0.0);
    out.lin.assign(static_cast<std::size_t>(blocks * nb), 0.0);
  }
  thread_errors errors;
#pragma omp parallel
  {
    block_scratch s;
    errors.run([&] {
      s.dist.resize(static_cast<std::size_t>(k_chunk_cols));
      s.dots.resize(static_cast<std::size_t>(k_chunk_cols));
      s.tile.resize(static_cast<std::size_t>(k_block_rows * k_chunk_cols));
      if (counts != nullptr) s.y.resize(static_cast<std::size_t>(k_block_rows * nb));
    });
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t blk = 0; blk < blocks; ++blk) errors.run([&] { pair_block(v, g, blk, counts, nb, s, out); });
  }
  errors.rethrow();
  return out;
}

/// x[0] + x[1] + ... in index order.
double ordered_sum(const std::vector<double>& x) {
  double s = 0;
  for (double e : x) s += e;
  return s;
}

/// input_error unless num_classes >= 1 and every probability is finite (the median's bit
/// histograms need d >= 0, never NaN).
void check_probs(std::span<const double> probs, std::int64_t k) {
  if (k < 1) throw input_error(fmt::format("skce: num_classes must be >= 1, got {}", k));
  for (std::size_t e = 0; e < probs.size(); ++e)
    if (!std::isfinite(probs[e]))
      throw input_error(
          fmt::format("skce: probability {} of row {} is not finite", probs[e], e / static_cast<std::size_t>(k)));
}

/// input_error for the conditions listed at compute_skce.
void check_inputs(std::span<const double> probs, std::span<const std::int32_t> labels, std::int64_t k, bool with_pvalue,
                  const skce_options& options) {
  check_probs(probs, k);
  const auto n = static_cast<std::int64_t>(labels.size());
  if (static_cast<std::int64_t>(probs.size()) != n * k)
    throw input_error(fmt::format("skce: {} probabilities for {} labels and {} classes", probs.size(), n, k));
  for (std::int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= k)
      throw input_error(fmt::format("skce: label {} of row {} is outside [0, {})", labels[i], i, k));
  if (with_pvalue && options.resamples < 1)
    throw input_error(fmt::format("skce_pvalue needs at least 1 resample, got {}", options.resamples));
}

}  // namespace

double median_tv_distance(std::span<const double> probs, std::int64_t num_classes, std::int64_t max_kept) {
  check_probs(probs, num_classes);
  if (probs.size() % static_cast<std::size_t>(num_classes) != 0)
    throw input_error(fmt::format("skce: {} probabilities do not make rows of {} classes", probs.size(), num_classes));
  const auto n = static_cast<std::int64_t>(probs.size()) / num_classes;
  const prob_view v = make_view(probs, nullptr, n, num_classes);
  double upper_sum = 0;
  return full_matrix_median(v, std::max<std::int64_t>(max_kept, 1), upper_sum);
}

skce_result compute_skce(std::span<const double> probs, std::span<const std::int32_t> labels, std::int64_t num_classes,
                         bool with_pvalue, const skce_options& options) {
  check_inputs(probs, labels, num_classes, with_pvalue, options);
  const auto n = static_cast<std::int64_t>(labels.size());
  skce_result res{k_nan, k_nan, k_nan, k_nan, k_nan, {}};
  if (n == 0) return res;
  const prob_view v = make_view(probs, labels.data(), n, num_classes);
  res.bandwidth = bandwidth(v);
  const bool test = with_pvalue && n >= 2;
  const std::int64_t nb = test ? options.resamples : 0;
  const std::vector<double> counts = test ? resample_counts(n, options) : std::vector<double>{};
  const pair_sums sums = pair_pass(v, 1.0 / res.bandwidth, test ? &counts : nullptr, nb);

  const double upper = ordered_sum(sums.upper);
  const double dsum = ordered_sum(sums.diag);
  const auto nd = static_cast<double>(n);
  const double total = 2 * upper + dsum;
  res.skce_biased = total / (nd * nd);
  if (n < 2) return res;
  res.skce = upper / (nd * (nd - 1) / 2);
  if (!test) return res;

  // skce_ref.asymptotic_test: statistic = n/(n-1) U - V; T_b = (n/(n-1) (c^T H c - c.d) - 2 c.r) / n^2.
  const double alpha = nd / (nd - 1);
  res.statistic = alpha * ((total - dsum) / (nd * (nd - 1))) - total / (nd * nd);
  const std::int64_t blocks = (n + k_block_rows - 1) / k_block_rows;
  res.bootstrap.assign(static_cast<std::size_t>(nb), 0.0);
  std::int64_t extreme = 0;
  for (std::int64_t b = 0; b < nb; ++b) {
    double quad = 0, lin = 0;
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      quad += sums.quad[blk * nb + b];
      lin += sums.lin[blk * nb + b];
    }
    res.bootstrap[b] = (alpha * quad - 2 * lin) / (nd * nd);
    if (res.bootstrap[b] >= res.statistic) ++extreme;
  }
  res.pvalue = static_cast<double>(extreme) / static_cast<double>(nb);
  return res;
}

}  // namespace calibench
