// The array layer of the Python module (python/arrays.hpp).
#include "python/arrays.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.hpp"

namespace calibench::python {

std::atomic<std::int64_t> g_input_copies{0};

namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

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

}  // namespace

std::string dtype_name(nb::dlpack::dtype t) {
  using code = nb::dlpack::dtype_code;
  const char* base = "unknown";
  switch (static_cast<code>(t.code)) {
    case code::Int: base = "int"; break;
    case code::UInt: base = "uint"; break;
    case code::Float: base = "float"; break;
    case code::Bfloat: base = "bfloat"; break;
    case code::Complex: base = "complex"; break;
    case code::Bool: return "bool";
    default: return fmt::format("dlpack type code {} ({} bits)", t.code, t.bits);
  }
  return t.lanes > 1 ? fmt::format("{}{}x{}", base, t.bits, t.lanes) : fmt::format("{}{}", base, t.bits);
}

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
    throw input_error(fmt::format("{}: expected rank 2 [N, K] (or a binary [N] or [N, 1]), found rank {} shape {}",
                                  v.name, v.shape.size(), shape_text(v.shape)));
  if (v.shape[0] == 0) throw input_error(fmt::format("{}: N = 0 samples (shape {})", v.name, shape_text(v.shape)));
  if (v.shape[1] < 2)
    throw input_error(
        fmt::format("{}: K = {} class (shape {}); need at least 2 classes", v.name, v.shape[1], shape_text(v.shape)));
  if (v.shape[1] > std::numeric_limits<std::int32_t>::max())
    throw input_error(fmt::format("{}: K = {} classes is more than calibench supports", v.name, v.shape[1]));
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
  check_scores(values.name, s.values.data(), s.num_samples, s.num_classes, is_probs);
  std::vector<std::int32_t> storage;
  const auto y = read_labels(labels, s.num_samples, s.num_classes, values.name, storage);
  s.labels = storage.empty() ? std::vector<std::int32_t>(y.begin(), y.end()) : std::move(storage);
  return s;
}

scored_split score_arrays(const array_view& values, const array_view& labels, bool is_probs, const score_needs& needs) {
  check_matrix(values);
  const std::int64_t n = values.shape[0], k = values.shape[1];
  using code = nb::dlpack::dtype_code;
  const bool is_float = values.dtype.code == static_cast<std::uint8_t>(code::Float);
  const std::int64_t row_stride = n == 1 ? k : values.strides[0];
  if (!(is_float && (values.dtype.bits == 32 || values.dtype.bits == 64) && values.strides[1] == 1 &&
        row_stride >= k)) {
    ++g_input_copies;
    return score_split(make_split(values, labels, is_probs, "test"), needs);
  }
  auto score = [&](const auto* data) {
    const score_rows<std::remove_cvref_t<decltype(*data)>> rows{data, n, k, row_stride};
    std::vector<std::int32_t> storage;
    std::span<const std::int32_t> y;
    try {
      y = read_labels(labels, n, k, values.name, storage);
    } catch (const input_error&) {  // as make_split checks them: a bad value is reported first
      check_score_rows(values.name, data, n, k, row_stride, is_probs);
      throw;
    }
    return score_values(rows, y, is_probs, values.name, needs);
  };
  if (values.dtype.bits == 32) return score(reinterpret_cast<const float*>(values.data));
  return score(reinterpret_cast<const double*>(values.data));
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
  check_scores(v.name, values.data(), n, k, is_probs);
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

}  // namespace calibench::python
