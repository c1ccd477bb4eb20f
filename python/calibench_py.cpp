// The Python module calibench._core (nanobind): NumPy arrays, PyTorch tensors and anything
// else that speaks DLPack in, the engine's JSON and NumPy arrays out. The documented Python
// API (signatures, docstrings) is python/calibench/__init__.py; docs/python.md says where
// inputs are read in place and where they are copied.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>
#include <nlohmann/json.hpp>

#include "host/metrics/bootstrap.hpp"
#include "host/calibrators/calibrator.hpp"
#include "host/metrics/conventions.hpp"
#include "host/sweep/device.hpp"
#include "host/io/dump.hpp"
#include "common/error.hpp"
#include "host/io/grid.hpp"
#include "host/metrics/metrics.hpp"
#include "host/metrics/report.hpp"
#include "host/sweep/backend.hpp"

namespace nb = nanobind;

namespace calibench::python {
namespace {

/// Any array the caller passes: every dtype, shape, stride and device (checked here, so
/// that errors carry calibench's messages instead of nanobind's signature mismatch).
using any_array = nb::ndarray<nb::ro>;

/// Probability rows must sum to 1 within this, as in dumps (DESIGN section 2, host/io/dump.cpp).
constexpr double k_prob_sum_tolerance = 1e-3;

/// Split data built from arrays names this as its "file" in engine messages.
constexpr const char* k_memory_source = "(in-memory arrays)";

/// Input arrays that had to be converted (copied) rather than read in place; tests read it
/// to check the zero-copy paths.
std::atomic<std::int64_t> g_input_copies{0};

/// A host view of an array, taken while the GIL is held and read after it is released.
struct array_view {
  std::string name;  ///< the Python argument, for messages
  const std::byte* data = nullptr;
  nb::dlpack::dtype dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;  ///< in elements (DLPack)

  std::size_t itemsize() const { return (static_cast<std::size_t>(dtype.bits) + 7) / 8; }
  std::int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
};

std::string dtype_name(nb::dlpack::dtype t) {
  using code = nb::dlpack::dtype_code;
  const char* base = "unknown";
  switch (static_cast<code>(t.code)) {
    case code::Int:
      base = "int";
      break;
    case code::UInt:
      base = "uint";
      break;
    case code::Float:
      base = "float";
      break;
    case code::Bfloat:
      base = "bfloat";
      break;
    case code::Complex:
      base = "complex";
      break;
    case code::Bool:
      return "bool";
    default:
      return fmt::format("dlpack type code {} ({} bits)", t.code, t.bits);
  }
  return t.lanes > 1 ? fmt::format("{}{}x{}", base, t.bits, t.lanes) : fmt::format("{}{}", base, t.bits);
}

std::string shape_text(const std::vector<std::int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

array_view view_of(const any_array& a, const std::string& name) {
  if (a.device_type() != nb::device::cpu::value)
    throw input_error(
        fmt::format("{}: the array lives on DLPack device type {} (id {}); calibench reads host "
                    "memory: move it to the CPU first (e.g. tensor.cpu())",
                    name, a.device_type(), a.device_id()));
  array_view v;
  v.name = name;
  v.data = static_cast<const std::byte*>(a.data());
  v.dtype = a.dtype();
  for (std::size_t i = 0; i < a.ndim(); ++i) {
    v.shape.push_back(static_cast<std::int64_t>(a.shape(i)));
    v.strides.push_back(a.stride(i));
  }
  if (v.dtype.lanes != 1)
    throw input_error(fmt::format("{}: vector dtype {} is not supported", name, dtype_name(v.dtype)));
  return v;
}

/// Row-major contiguity of a rank-2 view (size-1 dimensions may have any stride).
bool c_contiguous_matrix(const array_view& v) {
  return (v.shape[1] <= 1 || v.strides[1] == 1) && (v.shape[0] <= 1 || v.strides[0] == v.shape[1]);
}

/// The element at `p` (possibly unaligned).
template <class T>
T load(const std::byte* p) {
  T t;
  std::memcpy(&t, p, sizeof t);
  return t;
}

double half_to_double(std::uint16_t h) {
  const int sign = (h >> 15) & 1;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  double v;
  if (exponent == 0) {
    v = std::ldexp(static_cast<double>(mantissa), -24);  // subnormal (or zero)
  } else if (exponent == 31) {
    v = mantissa == 0 ? HUGE_VAL : std::nan("");
  } else {
    v = std::ldexp(static_cast<double>(mantissa + 1024), exponent - 25);
  }
  return sign ? -v : v;
}

double bfloat16_to_double(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// Element `offset` (in elements) of a floating-point view, as double (exact for every
/// supported type).
double float_at(const array_view& v, std::int64_t offset) {
  const std::byte* p = v.data + offset * static_cast<std::int64_t>(v.itemsize());
  if (v.dtype.bits == 16) {
    const auto h = load<std::uint16_t>(p);
    return v.dtype.code == static_cast<std::uint8_t>(nb::dlpack::dtype_code::Bfloat) ? bfloat16_to_double(h)
                                                                                     : half_to_double(h);
  }
  return v.dtype.bits == 32 ? load<float>(p) : load<double>(p);
}

/// Checks that `v` holds an N x K floating-point matrix the engine accepts (the structural
/// checks of host/io/dump.cpp, with the argument's name in place of the dataset path).
void check_matrix(const array_view& v) {
  using code = nb::dlpack::dtype_code;
  const bool is_float = (v.dtype.code == static_cast<std::uint8_t>(code::Float) &&
                         (v.dtype.bits == 16 || v.dtype.bits == 32 || v.dtype.bits == 64)) ||
                        (v.dtype.code == static_cast<std::uint8_t>(code::Bfloat) && v.dtype.bits == 16);
  if (!is_float)
    throw input_error(
        fmt::format("{}: expected floating-point values (float16, bfloat16, float32 or float64), found {}", v.name,
                    dtype_name(v.dtype)));
  if (v.shape.size() != 2)
    throw input_error(
        fmt::format("{}: expected rank 2 [N, K], found rank {} shape {}", v.name, v.shape.size(), shape_text(v.shape)));
  if (v.shape[0] == 0) throw input_error(fmt::format("{}: N = 0 samples (shape {})", v.name, shape_text(v.shape)));
  if (v.shape[1] < 2)
    throw input_error(
        fmt::format("{}: K = {} class (shape {}); need at least 2 classes", v.name, v.shape[1], shape_text(v.shape)));
  if (v.shape[1] > std::numeric_limits<std::int32_t>::max())
    throw input_error(fmt::format("{}: K = {} classes is more than calibench supports", v.name, v.shape[1]));
}

/// The value checks of host/io/dump.cpp: finite values; for probabilities no negative entry and
/// rows summing to 1 within k_prob_sum_tolerance (not renormalised).
void check_values(const std::string& name, const double* values, std::int64_t n, std::int64_t k, bool is_probs) {
  for (std::int64_t r = 0; r < n; ++r) {
    const double* row = values + r * k;
    double sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double x = row[j];
      if (!std::isfinite(x)) throw input_error(fmt::format("{}: non-finite value {} at index [{}, {}]", name, x, r, j));
      if (is_probs && x < 0.0)
        throw input_error(fmt::format("{}: negative probability {} at index [{}, {}]", name, x, r, j));
      sum += x;
    }
    if (is_probs && !(std::fabs(sum - 1.0) <= k_prob_sum_tolerance))
      throw input_error(fmt::format("{}: probabilities at index {} sum to {:.9g}, not 1 (tolerance {})", name, r, sum,
                                    k_prob_sum_tolerance));
  }
}

/// The values of a checked matrix as row-major float64 (always a copy: the engine's split
/// data owns float64 values).
std::vector<double> read_matrix(const array_view& v) {
  const std::int64_t n = v.shape[0], k = v.shape[1];
  std::vector<double> out(static_cast<std::size_t>(n * k));
  const bool contiguous = c_contiguous_matrix(v);
  if (contiguous && v.dtype.bits == 64) {
    std::memcpy(out.data(), v.data, out.size() * sizeof(double));
  } else if (contiguous && v.dtype.bits == 32) {
    const auto* f = reinterpret_cast<const float*>(v.data);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = f[i];
  } else {
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < k; ++j) out[r * k + j] = float_at(v, r * v.strides[0] + j * v.strides[1]);
  }
  return out;
}

/// Labels of `n` samples as int32 in [0, k): read in place when `v` is contiguous int32,
/// else converted into `storage`. The checks of host/io/dump.cpp (shape [N] or [N, 1], integer
/// type, range) with the argument's name.
std::span<const std::int32_t> read_labels(const array_view& v, std::int64_t n, std::int64_t k,
                                          const std::string& values_name, std::vector<std::int32_t>& storage) {
  using code = nb::dlpack::dtype_code;
  const bool is_signed = v.dtype.code == static_cast<std::uint8_t>(code::Int);
  const bool is_unsigned = v.dtype.code == static_cast<std::uint8_t>(code::UInt);
  if (!(is_signed || is_unsigned) ||
      (v.dtype.bits != 8 && v.dtype.bits != 16 && v.dtype.bits != 32 && v.dtype.bits != 64))
    throw input_error(fmt::format("{}: expected integer labels, found {}", v.name, dtype_name(v.dtype)));
  const bool column = v.shape.size() == 2 && v.shape[1] == 1;
  if (v.shape.size() != 1 && !column)
    throw input_error(fmt::format("{}: expected shape [N] or [N, 1], found {}", v.name, shape_text(v.shape)));
  if (v.shape[0] != n)
    throw input_error(fmt::format("{}: length {} differs from {} rows {}", v.name, v.shape[0], values_name, n));
  const std::int64_t stride = v.strides[0];
  auto fail = [&](auto y, std::int64_t i) {
    throw input_error(fmt::format("{}: label {} at index {} outside [0, {})", v.name, y, i, k));
  };
  if (is_signed && v.dtype.bits == 32 && (stride == 1 || n == 1)) {
    const std::span<const std::int32_t> in_place(reinterpret_cast<const std::int32_t*>(v.data),
                                                 static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      if (in_place[i] < 0 || in_place[i] >= k) fail(in_place[i], i);
    }
    return in_place;
  }
  ++g_input_copies;
  storage.resize(static_cast<std::size_t>(n));
  const std::size_t size = v.itemsize();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::byte* p = v.data + i * stride * static_cast<std::int64_t>(size);
    if (is_signed) {
      const std::int64_t y = size == 1   ? load<std::int8_t>(p)
                             : size == 2 ? load<std::int16_t>(p)
                             : size == 4 ? load<std::int32_t>(p)
                                         : load<std::int64_t>(p);
      if (y < 0 || y >= k) fail(y, i);
      storage[i] = static_cast<std::int32_t>(y);
    } else {
      const std::uint64_t y = size == 1   ? load<std::uint8_t>(p)
                              : size == 2 ? load<std::uint16_t>(p)
                              : size == 4 ? load<std::uint32_t>(p)
                                          : load<std::uint64_t>(p);
      if (y >= static_cast<std::uint64_t>(k)) fail(y, i);
      storage[i] = static_cast<std::int32_t>(y);
    }
  }
  return storage;
}

/// A split built from arrays, checked like a dump split (values copied to float64).
split_data make_split(const array_view& values, const array_view& labels, bool is_probs,
                      const std::string& split_name) {
  check_matrix(values);
  split_data s;
  s.file = k_memory_source;
  s.name = split_name;
  s.num_samples = values.shape[0];
  s.num_classes = values.shape[1];
  s.is_probs = is_probs;
  s.value_type = dtype_name(values.dtype);
  s.values = read_matrix(values);
  check_values(values.name, s.values.data(), s.num_samples, s.num_classes, is_probs);
  std::vector<std::int32_t> storage;
  const auto y = read_labels(labels, s.num_samples, s.num_classes, values.name, storage);
  s.labels = storage.empty() ? std::vector<std::int32_t>(y.begin(), y.end()) : std::move(storage);
  return s;
}

/// float32 logits for the sweeps: read in place when `v` is C-contiguous float32 logits;
/// otherwise converted into `storage` (float64 rounds to float32, probabilities become log p
/// as host/sweep/sweep_input.hpp's to_sweep_input does).
std::span<const float> sweep_logits(const array_view& v, bool is_probs, std::vector<float>& storage) {
  check_matrix(v);
  const std::int64_t n = v.shape[0], k = v.shape[1];
  const bool float32 = v.dtype.code == static_cast<std::uint8_t>(nb::dlpack::dtype_code::Float) && v.dtype.bits == 32;
  if (!is_probs && float32 && c_contiguous_matrix(v)) {
    const std::span<const float> in_place(reinterpret_cast<const float*>(v.data), static_cast<std::size_t>(n * k));
    for (std::int64_t i = 0; i < n * k; ++i) {
      if (!std::isfinite(in_place[i]))
        throw input_error(fmt::format("{}: non-finite value {} at index [{}, {}]", v.name, in_place[i], i / k, i % k));
    }
    return in_place;
  }
  ++g_input_copies;
  const std::vector<double> values = read_matrix(v);
  check_values(v.name, values.data(), n, k, is_probs);
  storage.resize(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    storage[i] = static_cast<float>(is_probs ? std::log(values[i]) : values[i]);
    if (!is_probs && !std::isfinite(storage[i]))
      throw input_error(fmt::format("{}: value {} at index [{}, {}] overflows float32 (sweeps read float32 logits)",
                                    v.name, values[i], static_cast<std::int64_t>(i) / k,
                                    static_cast<std::int64_t>(i) % k));
  }
  return storage;
}

/// A std::vector handed to NumPy without a copy: the array owns it through a capsule.
template <class T>
nb::object owned_array(std::vector<T>&& values, std::vector<std::size_t> shape) {
  auto* owner = new std::vector<T>(std::move(values));
  nb::capsule capsule(owner, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, T>(owner->data(), shape.size(), shape.data(), capsule));
}

/// A JSON value as Python objects (json.loads of the engine's own serialisation, so values are
/// exactly what the CLI prints). The json module is looked up per call: a static Python
/// object would be released after the interpreter shut down.
nb::object parse_json(const nlohmann::json& j) { return nb::module_::import_("json").attr("loads")(j.dump()); }

/// Backends are created once per name and used under a lock (a backend keeps scratch state).
struct backend_slot {
  std::unique_ptr<sweep_backend> backend;
  std::mutex mutex;
};

backend_slot& backend_for(const std::string& which) {
  static std::mutex cache_mutex;
  // Never destroyed: a CUDA backend must not be torn down after the CUDA runtime at exit.
  static auto* cache = new std::map<std::string, std::unique_ptr<backend_slot>>();
  const std::lock_guard<std::mutex> lock(cache_mutex);
  auto& slot = (*cache)[which];
  if (!slot) {
    auto made = std::make_unique<backend_slot>();
    made->backend = make_backend(which);
    slot = std::move(made);
  }
  return *slot;
}

/// Convention options from Python: empty strings take the preset's value, NaN means no
/// NLL clipping.
struct convention_args {
  std::string preset = "calibench";
  std::string binning, classwise_binning, adaptive, classwise_reduction, brier;
  double nll_clip = std::numeric_limits<double>::quiet_NaN();
};

metric_options metric_options_of(std::int32_t bins, const convention_args& c) {
  if (bins < 1) throw input_error(fmt::format("bins must be at least 1 (got {})", bins));
  convention_names names;
  names.preset = c.preset;
  names.binning = c.binning;
  names.classwise_binning = c.classwise_binning;
  names.adaptive = c.adaptive;
  names.classwise_reduction = c.classwise_reduction;
  names.brier = c.brier;
  if (!std::isnan(c.nll_clip)) names.nll_clip = c.nll_clip;
  return resolve_conventions(names, bins);
}

/// The JSON object of `calibench eval --format json` for scored data.
nlohmann::json eval_object(const scored_split& scored, const metric_options& options, std::int64_t bootstrap,
                           std::uint64_t seed, double level, bool reliability) {
  eval_report r;
  r.options = options;
  r.metrics = compute_metrics(scored, options);
  if (bootstrap > 0) r.bootstrap = bootstrap_metrics(scored, options, {bootstrap, seed, level});
  if (reliability) r.reliability = reliability_bins(scored, options);
  return eval_json(r);
}

nb::object evaluate(const any_array& values, const any_array& labels, bool is_probs, std::int32_t bins,
                    const convention_args& conventions, std::int64_t bootstrap, std::uint64_t seed, double level,
                    bool reliability, const std::string& values_name) {
  const array_view v = view_of(values, values_name);
  const array_view y = view_of(labels, "labels");
  nlohmann::json j;
  {
    nb::gil_scoped_release release;
    const metric_options options = metric_options_of(bins, conventions);
    if (bootstrap < 0) throw input_error(fmt::format("bootstrap must be >= 0 resamples (got {})", bootstrap));
    j = eval_object(score_split(make_split(v, y, is_probs, "test")), options, bootstrap, seed, level, reliability);
  }
  return parse_json(j);
}

/// A fitted calibrator and whether it was fitted on probabilities (then it transforms
/// probabilities, as a `fit --save` file holds them).
struct fitted {
  calibrator cal;
  bool is_probs = false;
  std::string backend_name;

  nb::object params() const { return parse_json(cal.params()); }
  std::string to_json() const { return cal.to_json().dump(); }

  nb::object transform(const any_array& values, bool probs, const std::string& name) const {
    const array_view v = view_of(values, name);
    std::vector<double> out;
    std::int64_t n = 0, k = 0;
    {
      nb::gil_scoped_release release;
      check_matrix(v);
      split_data s;
      s.file = k_memory_source;
      s.name = "test";
      s.num_samples = n = v.shape[0];
      s.num_classes = k = v.shape[1];
      s.is_probs = probs;
      s.value_type = dtype_name(v.dtype);
      s.values = read_matrix(v);
      check_values(name, s.values.data(), n, k, probs);
      s.labels.assign(static_cast<std::size_t>(n), 0);  // apply() needs labels only for log p_label
      out = std::move(cal.apply(s).probs);
    }
    return owned_array(std::move(out), {static_cast<std::size_t>(n), static_cast<std::size_t>(k)});
  }

  /// The metrics that `calibench fit` reports for a split: the calibrator's scores (weight
  /// methods keep the uncalibrated decision) under the given bins and conventions.
  nb::object evaluate(const any_array& values, const any_array& labels, bool probs, std::int32_t bins,
                      const convention_args& conventions, std::int64_t bootstrap, std::uint64_t seed, double level,
                      bool reliability, const std::string& name) const {
    const array_view v = view_of(values, name);
    const array_view y = view_of(labels, "labels");
    nlohmann::json j;
    {
      nb::gil_scoped_release release;
      const metric_options options = metric_options_of(bins, conventions);
      if (bootstrap < 0) throw input_error(fmt::format("bootstrap must be >= 0 resamples (got {})", bootstrap));
      const split_data s = make_split(v, y, probs, "test");
      j = eval_object(cal.apply(s), options, bootstrap, seed, level, reliability);
    }
    return parse_json(j);
  }
};

struct fit_args {
  std::string method = "ts";
  std::string objective = "nll";
  std::string grid;
  std::string calib_bins = "15";
  std::int64_t iterations = -1;
  bool accuracy_constraint = true;
  std::string cts_search = "grid";
  double odir_lambda = -1;
  double odir_mu = -1;
  std::map<std::string, std::string> train;  ///< loss-trained methods: set_train_option keys
  std::int32_t bins = 15;
  convention_args conventions;
  std::string backend = "auto";
};

/// `auto` takes the CPU backend for bin rules only it sweeps (torchmetrics,
/// digitize-linspace), as the CLI does, so that auto never fails where cpu would work.
std::string backend_name_for(const std::string& requested, binning rule) {
  const bool cuda_rule = rule != binning::torchmetrics && rule != binning::digitize_linspace;
  return requested == "auto" && !cuda_rule ? "cpu" : requested;
}

fitted fit(const any_array& values, const any_array& labels, bool is_probs, const fit_args& a,
           const std::string& values_name, const std::string& labels_name) {
  const array_view v = view_of(values, values_name);
  const array_view y = view_of(labels, labels_name);
  fitted out;
  out.is_probs = is_probs;
  nb::gil_scoped_release release;
  parse_backend_choice(a.backend);  // checks the name before the O(N K) conversion
  fit_options o;
  o.method = a.method;
  o.metrics = metric_options_of(a.bins, a.conventions);
  const split_data val = make_split(v, y, is_probs, "val");
  o.objective = a.objective;
  o.grid = a.grid;
  o.calib_bins = a.calib_bins;
  o.iterations = a.iterations;
  o.accuracy_constraint = a.accuracy_constraint;
  o.cts_search = a.cts_search;
  o.odir_lambda = a.odir_lambda;
  o.odir_mu = a.odir_mu;
  for (const auto& [key, value] : a.train) {
    if (!set_train_option(o.train, key, value))
      throw input_error(fmt::format("train: unknown option '{}' ({})", key, fmt::join(train_option_keys(), ", ")));
    check_train_option_applies(a.method, key, "train: ");
  }
  const bool on_backend = fit_uses_backend(o);
  if (!on_backend && a.backend == "cuda")
    throw input_error(fmt::format("backend='cuda': {} is fitted on the host (only the grid searches run on the "
                                  "sweep backend); use backend='cpu' or 'auto'", a.method));
  backend_slot& slot = backend_for(on_backend ? backend_name_for(a.backend, o.metrics.bin_rule) : "cpu");
  const std::lock_guard<std::mutex> lock(slot.mutex);
  out.cal = fit_calibrator(val, o, *slot.backend);
  out.backend_name = on_backend ? slot.backend->name() : "host";
  return out;
}

fitted calibrator_from_json(const std::string& text, bool is_probs) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw input_error("calibrator JSON: not valid JSON");
  }
  fitted out;
  out.cal = calibrator::from_json(j, "calibrator JSON");
  out.is_probs = is_probs;
  return out;
}

struct sweep_args {
  std::string family = "temperature";  ///< temperature | inverse-temperature | weight
  std::vector<double> candidates;      ///< temperature, weight
  inverse_temperature_grid grid;       ///< inverse-temperature
  std::int32_t bins = 15;
  std::string binning = "right-closed";
  std::string backend = "cpu";
  bool adaece = true;
  bool per_bin = false;
};

nb::dict sweep(const any_array& values, const any_array& labels, bool is_probs, const sweep_args& a,
               const std::string& values_name) {
  const array_view v = view_of(values, values_name);
  const array_view y = view_of(labels, "labels");
  sweep_result r;
  std::vector<double> candidates;
  std::string backend_name;
  {
    nb::gil_scoped_release release;
    if (a.bins < 1) throw input_error(fmt::format("bins must be at least 1 (got {})", a.bins));
    std::vector<float> logit_storage;
    std::vector<std::int32_t> label_storage;
    const auto logits = sweep_logits(v, is_probs, logit_storage);
    const auto label_span = read_labels(y, v.shape[0], v.shape[1], v.name, label_storage);
    const logit_set data{logits, label_span, v.shape[0], v.shape[1]};
    const sweep_options options{a.bins, parse_binning(a.binning), a.adaece};
    backend_slot& slot = backend_for(backend_name_for(a.backend, options.bin_rule));
    const std::lock_guard<std::mutex> lock(slot.mutex);
    auto resident = slot.backend->prepare(data);
    if (a.family == "temperature") {
      candidates = a.candidates;
      r = slot.backend->temperature(*resident, candidates, options);
    } else if (a.family == "weight") {
      candidates = a.candidates;
      r = slot.backend->weight(*resident, candidates, options);
    } else if (a.family == "inverse-temperature") {
      for (std::int64_t g = 0; g < a.grid.count; ++g) candidates.push_back(a.grid.at(g));
      r = slot.backend->inverse_temperature(*resident, a.grid, options);
    } else {
      throw input_error(fmt::format("unknown sweep family '{}' (temperature, inverse-temperature, weight)", a.family));
    }
    backend_name = slot.backend->name();
  }
  nb::dict out;
  const auto g = static_cast<std::size_t>(r.num_candidates);
  out["candidates"] = owned_array(std::move(candidates), {g});
  out["ece"] = owned_array(std::move(r.ece), {g});
  out["mce"] = owned_array(std::move(r.mce), {g});
  out["adaece"] = owned_array(std::move(r.adaece), {g});
  out["nll"] = owned_array(std::move(r.nll), {g});
  out["brier"] = owned_array(std::move(r.brier), {g});
  out["accuracy"] = owned_array(std::move(r.accuracy), {g});
  if (a.per_bin) {
    const auto m = static_cast<std::size_t>(r.num_bins);
    out["bin_count"] = owned_array(std::move(r.bin_count), {g, m});
    out["bin_sum_confidence"] = owned_array(std::move(r.bin_sum_confidence), {g, m});
    out["bin_sum_correct"] = owned_array(std::move(r.bin_sum_correct), {g, m});
  }
  out["backend"] = backend_name;
  return out;
}

nb::tuple read_dump(const std::string& path, const std::string& split) {
  split_data s;
  {
    nb::gil_scoped_release release;
    s = read_split(path, split);
  }
  const auto n = static_cast<std::size_t>(s.num_samples), k = static_cast<std::size_t>(s.num_classes);
  return nb::make_tuple(owned_array(std::move(s.values), {n, k}), owned_array(std::move(s.labels), {n}), s.is_probs,
                        s.value_type);
}

nb::object dump_info(const std::string& path) {
  dump_layout layout;
  {
    nb::gil_scoped_release release;
    layout = inspect_dump(path);
  }
  nlohmann::json j;
  j["file"] = layout.file;
  j["attributes"] = layout.attributes;
  j["splits"] = nlohmann::json::array();
  for (const auto& s : layout.splits) {
    j["splits"].push_back({{"name", s.name},
                           {"n", s.num_samples},
                           {"k", s.num_classes},
                           {"is_probs", s.is_probs},
                           {"value_type", s.value_type},
                           {"label_type", s.label_type},
                           {"other_datasets", s.extra_datasets}});
  }
  return parse_json(j);
}

/// One split to write: its name and the two arrays.
using split_arrays = std::tuple<std::string, any_array, any_array>;

void write_dump_arrays(const std::string& path, const std::vector<split_arrays>& splits, bool is_probs,
                       const std::map<std::string, std::string>& string_attributes,
                       const std::map<std::string, double>& number_attributes) {
  std::vector<std::pair<array_view, array_view>> views;
  std::vector<std::string> names;
  for (const auto& [name, values, labels] : splits) {
    views.emplace_back(view_of(values, fmt::format("splits['{}'] values", name)),
                       view_of(labels, fmt::format("splits['{}'] labels", name)));
    names.push_back(name);
  }
  nb::gil_scoped_release release;
  for (const auto& required : required_splits()) {
    if (std::find(names.begin(), names.end(), required) == names.end())
      throw input_error(fmt::format("{}: a dump needs the splits {} (got {})", path,
                                    fmt::join(required_splits(), " and "), fmt::join(names, ", ")));
  }
  // Storage for the splits that must be converted; the others are written from the caller's memory.
  std::vector<std::vector<float>> float_storage(views.size());
  std::vector<std::vector<double>> double_storage(views.size());
  std::vector<std::vector<std::int32_t>> label_storage(views.size());
  std::vector<split_to_write> out;
  std::int64_t num_classes = -1;
  for (std::size_t i = 0; i < views.size(); ++i) {
    const auto& [v, y] = views[i];
    check_matrix(v);
    const std::int64_t n = v.shape[0], k = v.shape[1];
    if (num_classes >= 0 && k != num_classes)
      throw input_error(fmt::format("{}: K = {} differs from the first split's K = {}", v.name, k, num_classes));
    num_classes = k;
    split_to_write w;
    w.name = names[i];
    w.num_samples = n;
    w.num_classes = k;
    const bool contiguous = c_contiguous_matrix(v);
    const bool float_code = v.dtype.code == static_cast<std::uint8_t>(nb::dlpack::dtype_code::Float);
    if (is_probs) {
      // Probabilities are stored as float64 (as `fit --save` does).
      if (float_code && v.dtype.bits == 64 && contiguous) {
        w.probs = reinterpret_cast<const double*>(v.data);
        check_values(v.name, w.probs, n, k, true);
      } else {
        ++g_input_copies;
        double_storage[i] = read_matrix(v);
        check_values(v.name, double_storage[i].data(), n, k, true);
        w.probs = double_storage[i].data();
      }
    } else {
      // Logits are stored as float32 (as `calibench synth` does); float64 input rounds.
      std::span<const float> logits = sweep_logits(v, false, float_storage[i]);
      w.logits = logits.data();
    }
    w.labels = read_labels(y, n, k, v.name, label_storage[i]).data();
    out.push_back(w);
  }
  write_dump(path, string_attributes, number_attributes, num_classes, out);
}

nb::object device_info() {
  const device_report d = discover_devices();
  nlohmann::json j{{"cuda_built", d.cuda_built}, {"devices", d.device_count}, {"device", d.name}, {"reason", d.reason}};
  return parse_json(j);
}

}  // namespace
}  // namespace calibench::python

NB_MODULE(_core, m) {
  using namespace calibench;
  using namespace calibench::python;
  m.doc() = "calibench engine bindings; use the calibench package, not this module directly.";

  // Bad input -> ValueError, every other failure -> RuntimeError, both with the engine's message.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const input_error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "calibench: out of memory");
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  nb::class_<convention_args>(m, "_conventions")
      .def(nb::init<>())
      .def_rw("preset", &convention_args::preset)
      .def_rw("binning", &convention_args::binning)
      .def_rw("classwise_binning", &convention_args::classwise_binning)
      .def_rw("adaptive", &convention_args::adaptive)
      .def_rw("classwise_reduction", &convention_args::classwise_reduction)
      .def_rw("brier", &convention_args::brier)
      .def_rw("nll_clip", &convention_args::nll_clip);

  m.def("evaluate", &evaluate, nb::arg("values"), nb::arg("labels"), nb::arg("probs"), nb::arg("bins"),
        nb::arg("conventions"), nb::arg("bootstrap"), nb::arg("seed"), nb::arg("level"), nb::arg("reliability"),
        nb::arg("values_name"));

  nb::class_<fit_args>(m, "_fit_args")
      .def(nb::init<>())
      .def_rw("method", &fit_args::method)
      .def_rw("objective", &fit_args::objective)
      .def_rw("grid", &fit_args::grid)
      .def_rw("calib_bins", &fit_args::calib_bins)
      .def_rw("iterations", &fit_args::iterations)
      .def_rw("accuracy_constraint", &fit_args::accuracy_constraint)
      .def_rw("cts_search", &fit_args::cts_search)
      .def_rw("odir_lambda", &fit_args::odir_lambda)
      .def_rw("odir_mu", &fit_args::odir_mu)
      .def_rw("train", &fit_args::train)
      .def_rw("bins", &fit_args::bins)
      .def_rw("conventions", &fit_args::conventions)
      .def_rw("backend", &fit_args::backend);

  nb::class_<fitted>(m, "_fitted")
      .def_prop_ro("method", [](const fitted& f) { return f.cal.method; })
      .def_prop_ro("is_probs", [](const fitted& f) { return f.is_probs; })
      .def_prop_ro("backend", [](const fitted& f) { return f.backend_name; })
      .def("params", &fitted::params)
      .def("to_json", &fitted::to_json)
      .def("transform", &fitted::transform, nb::arg("values"), nb::arg("probs"), nb::arg("values_name"))
      .def("evaluate", &fitted::evaluate, nb::arg("values"), nb::arg("labels"), nb::arg("probs"), nb::arg("bins"),
           nb::arg("conventions"), nb::arg("bootstrap"), nb::arg("seed"), nb::arg("level"), nb::arg("reliability"),
           nb::arg("values_name"));

  m.def("fit", &fit, nb::arg("values"), nb::arg("labels"), nb::arg("probs"), nb::arg("args"), nb::arg("values_name"),
        nb::arg("labels_name"));
  m.def("calibrator_from_json", &calibrator_from_json, nb::arg("text"), nb::arg("probs"));
  m.def("method_names", [] { return method_names(); });

  nb::class_<sweep_args>(m, "_sweep_args")
      .def(nb::init<>())
      .def_rw("family", &sweep_args::family)
      .def_rw("candidates", &sweep_args::candidates)
      .def_prop_rw(
          "grid", [](const sweep_args& a) { return std::make_tuple(a.grid.start, a.grid.step, a.grid.count); },
          [](sweep_args& a, std::tuple<double, double, std::int64_t> g) {
            a.grid = {std::get<0>(g), std::get<1>(g), std::get<2>(g)};
          })
      .def_rw("bins", &sweep_args::bins)
      .def_rw("binning", &sweep_args::binning)
      .def_rw("backend", &sweep_args::backend)
      .def_rw("adaece", &sweep_args::adaece)
      .def_rw("per_bin", &sweep_args::per_bin);
  m.def("sweep", &sweep, nb::arg("values"), nb::arg("labels"), nb::arg("probs"), nb::arg("args"),
        nb::arg("values_name"));

  m.def("parse_grid", [](const std::string& text, const std::string& option) { return parse_grid(text, option); });
  m.def("parse_arithmetic_grid", [](const std::string& text, const std::string& option) {
    const arithmetic_grid g = parse_arithmetic_grid(text, option);
    return std::make_tuple(g.start, g.step, static_cast<std::int64_t>(g.count));
  });

  m.def("read_dump", &read_dump, nb::arg("path"), nb::arg("split"));
  m.def("dump_info", &dump_info, nb::arg("path"));
  m.def("write_dump", &write_dump_arrays, nb::arg("path"), nb::arg("splits"), nb::arg("probs"),
        nb::arg("string_attributes"), nb::arg("number_attributes"));

  m.def("preset_names", [] {
    std::vector<std::string> names;
    for (auto n : preset_names()) names.emplace_back(n);
    return names;
  });
  m.def("device_info", &device_info);
  m.def("version", [] { return std::string(CALIBENCH_VERSION); });
  m.def("_input_copies", [] { return g_input_copies.load(); });
}
