// The array layer of the Python module (python/calibench_py.cpp): views of any DLPack or
// NumPy array the caller passes, the dump readers' checks with the argument's name in place of
// the dataset path, and the conversions to the engine's types, counted when they copy
// (docs/python.md says where inputs are read in place).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "host/io/dump.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench::python {

namespace nb = nanobind;

/// Any array the caller passes: every dtype, shape, stride and device (checked here, so
/// that errors carry calibench's messages instead of nanobind's signature mismatch).
using any_array = nb::ndarray<nb::ro>;

/// Split data built from arrays names this as its "file" in engine messages.
inline constexpr const char* k_memory_source = "(in-memory arrays)";

/// Input arrays that had to be converted (copied) rather than read in place; tests read it
/// to check the zero-copy paths.
extern std::atomic<std::int64_t> g_input_copies;

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

/// "float32", "int64", "bfloat16", ...
std::string dtype_name(nb::dlpack::dtype t);

/// The view of `a` (host memory only; input_error naming `name` otherwise).
array_view view_of(const any_array& a, const std::string& name);

/// Row-major contiguity of a rank-2 view (size-1 dimensions may have any stride).
bool c_contiguous_matrix(const array_view& v);

/// Checks that `v` holds an N x K floating-point matrix the engine accepts (the structural
/// checks of host/io/dump.cpp, with the argument's name in place of the dataset path).
void check_matrix(const array_view& v);

/// The values of a checked matrix as row-major float64 (always a copy: the engine's split
/// data owns float64 values).
std::vector<double> read_matrix(const array_view& v);

/// Labels of `n` samples as int32 in [0, k): read in place when `v` is contiguous int32,
/// else converted into `storage`.
std::span<const std::int32_t> read_labels(const array_view& v, std::int64_t n, std::int64_t k,
                                          const std::string& values_name, std::vector<std::int32_t>& storage);

/// A split built from arrays, checked like a dump split (values copied to float64).
split_data make_split(const array_view& values, const array_view& labels, bool is_probs, const std::string& split_name);

/// The scored split of arrays, checked like a dump split: float32 and float64 matrices whose
/// rows are contiguous are read in place; any other dtype or layout is converted to float64
/// first (counted in g_input_copies).
scored_split score_arrays(const array_view& values, const array_view& labels, bool is_probs, const score_needs& needs);

/// float32 logits for the sweeps: read in place when `v` is C-contiguous float32 logits;
/// otherwise converted into `storage` (float64 rounds to float32, probabilities become log p).
std::span<const float> sweep_logits(const array_view& v, bool is_probs, std::vector<float>& storage);

/// A std::vector handed to NumPy without a copy: the array owns it through a capsule.
template <class T>
nb::object owned_array(std::vector<T>&& values, std::vector<std::size_t> shape) {
  auto* owner = new std::vector<T>(std::move(values));
  nb::capsule capsule(owner, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, T>(owner->data(), shape.size(), shape.data(), capsule));
}

}  // namespace calibench::python
