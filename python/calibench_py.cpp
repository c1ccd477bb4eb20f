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

#include "common/error.hpp"
#include "common/parallel.hpp"
#include "common/progress.hpp"
#include "host/calibrators/registry.hpp"
#include "host/io/dump.hpp"
#include "host/io/grid.hpp"
#include "host/metrics/bootstrap.hpp"
#include "host/metrics/conventions.hpp"
#include "host/metrics/metrics.hpp"
#include "host/metrics/report.hpp"
#include "host/sweep/backend.hpp"
#include "host/sweep/device.hpp"
#include "python/arrays.hpp"

namespace nb = nanobind;

namespace calibench::python {
namespace {

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
                           std::uint64_t seed, double level, bool reliability, bool classwise) {
  eval_report r;
  r.options = options;
  r.metrics = compute_metrics(scored, options);
  if (bootstrap > 0) r.bootstrap = bootstrap_metrics(scored, options, {bootstrap, seed, level});
  if (reliability) r.reliability = reliability_bins(scored, options);
  if (classwise) r.classwise = breakdown_classwise(scored, options);
  return eval_json(r);
}

nb::object evaluate(const any_array& values, const any_array& labels, bool is_probs, std::int32_t bins,
                    const convention_args& conventions, std::int64_t bootstrap, std::uint64_t seed, double level,
                    bool reliability, bool classwise, const std::string& metrics, const std::string& values_name) {
  const array_view v = view_of(values, values_name);
  const array_view y = view_of(labels, "labels");
  nlohmann::json j;
  {
    nb::gil_scoped_release release;
    metric_options options = metric_options_of(bins, conventions);
    options.selected = metric_selection::parse(metrics);
    if (bootstrap < 0) throw input_error(fmt::format("bootstrap must be >= 0 resamples (got {})", bootstrap));
    j = eval_object(score_arrays(v, y, is_probs, needs_of(options, classwise)), options, bootstrap, seed, level,
                    reliability, classwise);
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

  /// The split of `values` as apply() reads it (labels unused but for log p_label: zeros).
  static split_data values_split(const array_view& v, bool probs, const std::string& name) {
    check_matrix(v);
    split_data s;
    s.file = k_memory_source;
    s.name = "test";
    s.num_samples = v.shape[0];
    s.num_classes = v.shape[1];
    s.is_probs = probs;
    s.value_type = dtype_name(v.dtype);
    s.values = read_matrix(v);
    check_scores(name, s.values.data(), s.num_samples, s.num_classes, probs);
    s.labels.assign(static_cast<std::size_t>(s.num_samples), 0);
    return s;
  }

  nb::object transform(const any_array& values, bool probs, const std::string& name) const {
    const array_view v = view_of(values, name);
    std::vector<double> out;
    std::int64_t n = 0, k = 0;
    {
      nb::gil_scoped_release release;
      const split_data s = values_split(v, probs, name);
      n = s.num_samples;
      k = s.num_classes;
      out = std::move(cal.apply(s).probs);
    }
    return owned_array(std::move(out), {static_cast<std::size_t>(n), static_cast<std::size_t>(k)});
  }

  /// The per-sample outputs besides the probabilities (`fit --save` writes them, e.g.
  /// venn_abers_p0 / _p1), by name: [N] or [N, columns].
  nb::dict outputs(const any_array& values, bool probs, const std::string& name) const {
    const array_view v = view_of(values, name);
    std::vector<vector_to_write> got;
    std::int64_t n = 0;
    {
      nb::gil_scoped_release release;
      const split_data s = values_split(v, probs, name);
      n = s.num_samples;
      got = cal.outputs(s, "test");
    }
    nb::dict out;
    for (auto& o : got) {
      const std::string key = o.path.substr(o.path.rfind('/') + 1);
      std::vector<std::size_t> shape{static_cast<std::size_t>(n)};
      if (o.columns > 0) shape.push_back(static_cast<std::size_t>(o.columns));
      out[key.c_str()] = owned_array(std::move(o.values), shape);
    }
    return out;
  }

  /// The metrics that `calibench fit` reports for a split: the calibrator's scores (weight
  /// methods keep the uncalibrated decision) under the given bins and conventions.
  nb::object evaluate(const any_array& values, const any_array& labels, bool probs, std::int32_t bins,
                      const convention_args& conventions, std::int64_t bootstrap, std::uint64_t seed, double level,
                      bool reliability, bool classwise, const std::string& metrics, const std::string& name) const {
    const array_view v = view_of(values, name);
    const array_view y = view_of(labels, "labels");
    nlohmann::json j;
    {
      nb::gil_scoped_release release;
      metric_options options = metric_options_of(bins, conventions);
      options.selected = metric_selection::parse(metrics);
      if (bootstrap < 0) throw input_error(fmt::format("bootstrap must be >= 0 resamples (got {})", bootstrap));
      const split_data s = make_split(v, y, probs, "test");
      j = eval_object(cal.apply(s), options, bootstrap, seed, level, reliability, classwise);
    }
    return parse_json(j);
  }
};

struct fit_args {
  std::string method = "ts";
  std::map<std::string, std::string> options;  ///< fit options (host/calibrators/request.hpp) as text
  std::int32_t bins = 15;
  convention_args conventions;
  std::string backend = "auto";
};

fitted fit(const any_array& values, const any_array& labels, bool is_probs, const fit_args& a,
           const std::string& values_name, const std::string& labels_name) {
  const array_view v = view_of(values, values_name);
  const array_view y = view_of(labels, labels_name);
  nb::gil_scoped_release release;
  const backend_choice choice = parse_backend_choice(a.backend);  // before the O(N K) conversion
  const fit_request request = parse_fit_request(a.method, option_list(a.options.begin(), a.options.end()),
                                                metric_options_of(a.bins, a.conventions), choice);
  check_fit_backend(request);
  const split_data val = make_split(v, y, is_probs, "val");
  if (!method_named(request.method).uses_backend(request))
    return {fit_calibrator(val, request, nullptr), is_probs, fit_site_name(request, nullptr)};
  backend_slot& slot = backend_for(backend_choice_name(backend_for_rule(choice, request.metrics.bin_rule)));
  const std::lock_guard<std::mutex> lock(slot.mutex);
  return {fit_calibrator(val, request, slot.backend.get()), is_probs, slot.backend->name()};
}

fitted calibrator_from_json(const std::string& text, bool is_probs) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw input_error("calibrator JSON: not valid JSON");
  }
  return {calibrator::from_json(j, "calibrator JSON"), is_probs, ""};
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
    backend_slot& slot =
        backend_for(backend_choice_name(backend_for_rule(parse_backend_choice(a.backend), options.bin_rule)));
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
        check_scores(v.name, w.probs, n, k, true);
      } else {
        ++g_input_copies;
        double_storage[i] = read_matrix(v);
        check_scores(v.name, double_storage[i].data(), n, k, true);
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

/// Bad input -> ValueError, every other failure -> RuntimeError, both with the engine's message.
void translate_exception(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const input_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const os_error& e) {
    PyErr_SetObject(PyExc_OSError, nb::make_tuple(e.code, e.what()).ptr());
  } catch (const std::bad_alloc&) {
    PyErr_SetString(PyExc_MemoryError, "calibench: out of memory");
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
}

void bind_metrics(nb::module_& m) {
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
        nb::arg("classwise"), nb::arg("metrics"), nb::arg("values_name"));
  m.def("preset_names", [] {
    std::vector<std::string> names;
    for (auto n : preset_names()) names.emplace_back(n);
    return names;
  });
}

void bind_fit(nb::module_& m) {
  nb::class_<fit_args>(m, "_fit_args")
      .def(nb::init<>())
      .def_rw("method", &fit_args::method)
      .def_rw("options", &fit_args::options)
      .def_rw("bins", &fit_args::bins)
      .def_rw("conventions", &fit_args::conventions)
      .def_rw("backend", &fit_args::backend);
  nb::class_<fitted>(m, "_fitted")
      .def_prop_ro("method", [](const fitted& f) { return f.cal.method(); })
      .def_prop_ro("is_probs", [](const fitted& f) { return f.is_probs; })
      .def_prop_ro("backend", [](const fitted& f) { return f.backend_name; })
      .def("params", &fitted::params)
      .def("to_json", &fitted::to_json)
      .def("transform", &fitted::transform, nb::arg("values"), nb::arg("probs"), nb::arg("values_name"))
      .def("outputs", &fitted::outputs, nb::arg("values"), nb::arg("probs"), nb::arg("values_name"))
      .def("evaluate", &fitted::evaluate, nb::arg("values"), nb::arg("labels"), nb::arg("probs"), nb::arg("bins"),
           nb::arg("conventions"), nb::arg("bootstrap"), nb::arg("seed"), nb::arg("level"), nb::arg("reliability"),
           nb::arg("classwise"), nb::arg("metrics"), nb::arg("values_name"));
  m.def("fit", &fit, nb::arg("values"), nb::arg("labels"), nb::arg("probs"), nb::arg("args"), nb::arg("values_name"),
        nb::arg("labels_name"));
  m.def("calibrator_from_json", &calibrator_from_json, nb::arg("text"), nb::arg("probs"));
  m.def("method_names", [] { return method_names(); });
  m.def("fit_option_keys", [] {
    std::vector<std::string> keys;
    for (const auto& o : fit_option_table()) keys.emplace_back(o.key);
    return keys;
  });
}

void bind_sweeps(nb::module_& m) {
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
}

void bind_dumps(nb::module_& m) {
  m.def("read_dump", &read_dump, nb::arg("path"), nb::arg("split"));
  m.def("dump_info", &dump_info, nb::arg("path"));
  m.def("write_dump", &write_dump_arrays, nb::arg("path"), nb::arg("splits"), nb::arg("probs"),
        nb::arg("string_attributes"), nb::arg("number_attributes"));
}

}  // namespace
}  // namespace calibench::python

NB_MODULE(_core, m) {
  using namespace calibench;
  using namespace calibench::python;
  m.doc() = "calibench engine bindings; use the calibench package, not this module directly.";
  nb::register_exception_translator(translate_exception);
  start_thread_pool();
  bind_metrics(m);
  bind_fit(m);
  bind_sweeps(m);
  bind_dumps(m);
  m.def("device_info", &device_info);
  m.def("version", [] { return std::string(CALIBENCH_VERSION); });
  m.def("_input_copies", [] { return g_input_copies.load(); });
  // Progress lines on the process's stderr, or to a Python callable (common/progress.hpp).
  m.def(
      "set_progress",
      [](const std::string& mode, double interval, nb::object callback) {
        if (mode != "off" && mode != "live" && mode != "lines")
          throw input_error(fmt::format("progress: '{}' is not one of off, live, lines", mode));
        if (!(interval >= 0) || !std::isfinite(interval))
          throw input_error(fmt::format("progress interval {} must be a finite number >= 0", interval));
        if (!callback.is_none() && !PyCallable_Check(callback.ptr()))
          throw input_error("progress callback: expected a callable taking one str (or None)");
        progress_settings().mode = mode == "off"    ? progress_mode::off
                                   : mode == "live" ? progress_mode::live
                                                    : progress_mode::lines;
        progress_settings().interval = interval;
        progress_settings().sink = nullptr;
        if (!callback.is_none()) {
          // Called with the GIL released around the computation: take it for the call; an exception
          // in the callback is reported as unraisable and does not stop the computation.
          auto held = std::make_shared<nb::object>(callback);
          progress_settings().sink = [held](const std::string& line) {
            nb::gil_scoped_acquire gil;
            try {
              (*held)(line);
            } catch (nb::python_error& e) {
              e.discard_as_unraisable("calibench progress callback");
            }
          };
        }
      },
      nb::arg("mode"), nb::arg("interval"), nb::arg("callback").none());
}
