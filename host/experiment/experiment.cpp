// The experiment runner behind `calibench sweep` (docs/experiments.md): spec parsing with
// toml++, cell expansion with content hashes, resumable cell execution with atomic writes,
// and the reports (CSV, JSON, HDF5, Markdown, LaTeX).
#include "host/experiment/experiment.hpp"
#include "host/segmentation/segmentation.hpp"

#include <fcntl.h>
#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "host/metrics/bootstrap.hpp"
#include "host/calibrators/calibrator.hpp"
#include "host/io/dump.hpp"
#include "common/error.hpp"
#include "host/metrics/report.hpp"
#include "common/rng.hpp"
#include "host/sweep/backend.hpp"
#include "host/io/synth.hpp"

namespace calibench {
namespace {

namespace fs = std::filesystem;

const std::set<std::string> k_option_keys{"objective",  "grid",       "calib_bins", "iterations",
                                          "accuracy_constraint", "cts_search"};

[[noreturn]] void spec_fail(const std::string& file, const std::string& what) {
  throw input_error(fmt::format("{}: {}", file, what));
}

/// 64-bit FNV-1a, finished with the SplitMix64 mixer: stable across runs and machines.
struct hasher {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  std::uint64_t value() const {
    std::uint64_t x = h + 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  }
};

std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(fmt::format("{}: cannot read the file", path));
  hasher h;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    h.add(buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  return fmt::format("{:016x}", h.value());
}

/// A TOML scalar as the text a fit option takes.
std::string scalar_text(const toml::node& node, const std::string& file, const std::string& key) {
  if (auto s = node.value<std::string>()) return *s;
  if (node.is_boolean()) return *node.value<bool>() ? "on" : "off";
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (node.is_floating_point()) return fmt::format("{}", *node.value<double>());
  spec_fail(file, fmt::format("{}: expected a string, number or boolean", key));
}

std::int64_t integer_at(const toml::table& t, const std::string& key, std::int64_t fallback, const std::string& file,
                        std::int64_t min_value) {
  const auto* node = t.get(key);
  if (node == nullptr) return fallback;
  const auto v = node->value<std::int64_t>();
  if (!v || !node->is_integer()) spec_fail(file, fmt::format("{}: expected an integer", key));
  if (*v < min_value) spec_fail(file, fmt::format("{} = {}: must be at least {}", key, *v, min_value));
  return *v;
}

std::string string_at(const toml::table& t, const std::string& key, const std::string& fallback,
                      const std::string& file, const std::vector<std::string>& allowed = {}) {
  const auto* node = t.get(key);
  if (node == nullptr) return fallback;
  const auto v = node->value<std::string>();
  if (!v || !node->is_string()) spec_fail(file, fmt::format("{}: expected a string", key));
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), *v) == allowed.end())
    spec_fail(file, fmt::format("{} = '{}': expected one of {}", key, *v, fmt::join(allowed, ", ")));
  return *v;
}

/// `synth = { segmentation = true, ... }`: a segmentation dump generated into DIR/data.
std::vector<dataset_entry> seg_synth_dataset(const toml::table& synth, const std::string& file,
                                             const std::string& out_dir, std::size_t index) {
  seg_synth_options o;
  const std::string where = fmt::format("datasets[{}].synth", index);
  for (const auto& [key, node] : synth) {
    const std::string k(key.str());
    static const std::set<std::string> known{"segmentation", "classes", "images", "height", "width", "seed",
                                             "temperature", "augmentations", "name"};
    if (!known.contains(k)) spec_fail(file, fmt::format("{}: unknown key '{}'", where, k));
  }
  o.classes = integer_at(synth, "classes", o.classes, file, 2);
  o.images = integer_at(synth, "images", o.images, file, 1);
  o.height = integer_at(synth, "height", o.height, file, 4);
  o.width = integer_at(synth, "width", o.width, file, 4);
  o.augmentations = integer_at(synth, "augmentations", o.augmentations, file, 0);
  o.seed = static_cast<std::uint64_t>(integer_at(synth, "seed", 0, file, 0));
  if (const auto* node = synth.get("temperature")) {
    const auto v = node->value<double>();
    if (!v || !(*v > 0)) spec_fail(file, fmt::format("{}.temperature: expected a number > 0", where));
    o.temperature = *v;
  }
  hasher h;
  h.add(fmt::format("seg {} {} {} {} {} {} {}", o.classes, o.images, o.height, o.width, o.seed, o.temperature,
                    o.augmentations));
  const std::string name = string_at(synth, "name", fmt::format("seg-k{}-s{}", o.classes, o.seed), file);
  const fs::path dir = fs::path(out_dir) / "data";
  fs::create_directories(dir);
  const fs::path path = dir / fmt::format("{}-{:016x}.h5", name, h.value());
  if (!fs::exists(path)) write_seg_synth_dump(path.string(), o);  // atomic
  return {{path.string(), name, ""}};
}

std::vector<dataset_entry> synth_dataset(const toml::table& synth, const std::string& file, const std::string& out_dir,
                                         std::size_t index) {
  if (synth.get("segmentation") != nullptr) {
    if (!synth.get("segmentation")->value<bool>().value_or(false))
      spec_fail(file, fmt::format("datasets[{}].synth.segmentation: expected true (or leave it out)", index));
    return seg_synth_dataset(synth, file, out_dir, index);
  }
  synth_options o;
  const std::string where = fmt::format("datasets[{}].synth", index);
  for (const auto& [key, node] : synth) {
    const std::string k(key.str());
    static const std::set<std::string> known{"classes", "n_val", "n_test", "seed", "logit_scale", "temperature",
                                             "class_distortion", "class_bias", "name"};
    if (!known.contains(k)) spec_fail(file, fmt::format("{}: unknown key '{}'", where, k));
  }
  o.num_classes = integer_at(synth, "classes", o.num_classes, file, 2);
  o.n_val = integer_at(synth, "n_val", o.n_val, file, 1);
  o.n_test = integer_at(synth, "n_test", o.n_test, file, 1);
  o.seed = static_cast<std::uint64_t>(integer_at(synth, "seed", 0, file, 0));
  auto number = [&](const char* key, double fallback) {
    const auto* node = synth.get(key);
    if (node == nullptr) return fallback;
    const auto v = node->value<double>();
    if (!v) spec_fail(file, fmt::format("{}.{}: expected a number", where, key));
    return *v;
  };
  o.logit_scale = number("logit_scale", o.logit_scale);
  o.temperature = number("temperature", o.temperature);
  o.class_distortion = number("class_distortion", o.class_distortion);
  o.class_bias = number("class_bias", o.class_bias);
  hasher h;
  h.add(fmt::format("{} {} {} {} {} {} {} {}", o.num_classes, o.n_val, o.n_test, o.seed, o.logit_scale,
                    o.temperature, o.class_distortion, o.class_bias));
  const std::string name =
      string_at(synth, "name", fmt::format("synth-k{}-s{}", o.num_classes, o.seed), file);
  const fs::path dir = fs::path(out_dir) / "data";
  fs::create_directories(dir);
  const fs::path path = dir / fmt::format("{}-{:016x}.h5", name, h.value());
  if (!fs::exists(path)) write_synth_dump(path.string(), o);  // atomic: a partial file never appears
  return {{path.string(), name, ""}};
}

std::vector<dataset_entry> path_datasets(const toml::table& t, const std::string& file, std::size_t index,
                                         std::vector<std::string>& notes) {
  const std::string pattern = string_at(t, "path", "", file);
  const bool optional = t.get("optional") != nullptr && t.get("optional")->value<bool>().value_or(false);
  const fs::path spec_dir = fs::path(file).parent_path();
  const fs::path full = fs::path(pattern).is_absolute() ? fs::path(pattern) : spec_dir / pattern;
  glob_t g{};
  const int rc = ::glob(full.c_str(), 0, nullptr, &g);
  std::vector<dataset_entry> out;
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) {
      const fs::path p(g.gl_pathv[i]);
      out.push_back({p.string(), p.stem().string(), ""});
    }
  }
  ::globfree(&g);
  if (out.empty()) {
    if (!optional)
      spec_fail(file, fmt::format("datasets[{}].path = '{}': no file matches {}", index, pattern, full.string()));
    notes.push_back(fmt::format("datasets[{}]: no file matches {} (optional, skipped)", index, full.string()));
  }
  if (const auto* name = t.get("name"); name != nullptr && out.size() == 1) {
    out[0].name = name->value<std::string>().value_or(out[0].name);
  }
  return out;
}

std::vector<method_config> expand_method(const toml::table& t, const std::string& file, std::size_t index) {
  const std::string where = fmt::format("methods[{}]", index);
  std::vector<std::string> methods = method_names();
  methods.push_back("uncalibrated");
  const std::string method = string_at(t, "method", "", file, methods);
  if (method.empty()) spec_fail(file, fmt::format("{}: 'method' is required", where));
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (const auto& [key, node] : t) {
    const std::string k(key.str());
    if (k == "method" || k == "label") continue;
    const auto& train_keys = train_option_keys();
    if (!k_option_keys.contains(k) && std::find(train_keys.begin(), train_keys.end(), k) == train_keys.end())
      spec_fail(file, fmt::format("{}: unknown option '{}'", where, k));
    std::vector<std::string> values;
    if (const auto* arr = node.as_array()) {
      for (const auto& v : *arr) values.push_back(scalar_text(v, file, where + "." + k));
      if (values.empty()) spec_fail(file, fmt::format("{}.{}: empty list", where, k));
    } else {
      values.push_back(scalar_text(node, file, where + "." + k));
    }
    axes.emplace_back(k, values);
  }
  const std::string label_template = string_at(t, "label", "", file);
  std::vector<method_config> out{{"", method, {}}};
  for (const auto& [key, values] : axes) {
    std::vector<method_config> next;
    for (const auto& m : out) {
      for (const auto& v : values) {
        auto copy = m;
        copy.options[key] = v;
        next.push_back(std::move(copy));
      }
    }
    out = std::move(next);
  }
  for (auto& m : out) {
    if (!label_template.empty()) {
      m.label = label_template;
      for (const auto& [key, value] : m.options) {
        const std::string placeholder = "{" + key + "}";
        for (auto pos = m.label.find(placeholder); pos != std::string::npos; pos = m.label.find(placeholder))
          m.label.replace(pos, placeholder.size(), value);
      }
    } else {
      m.label = method == "uncalibrated" ? "uncal" : method;
      for (const auto& [key, values] : axes) {
        if (values.size() > 1) m.label += fmt::format(" {}={}", key, m.options[key]);
      }
    }
  }
  return out;
}

// ---- running a cell --------------------------------------------------------------------------

/// val and test of a dump; for seed > 0 they are pooled (val rows, then test rows) and split
/// again at random with the same sizes (a Fisher-Yates shuffle from stream 0x5EED of the seed).
std::pair<split_data, split_data> load_splits(const std::string& path, std::uint64_t seed) {
  split_data val = read_split(path, "val");
  split_data test = read_split(path, "test");
  if (seed == 0) return {std::move(val), std::move(test)};
  if (val.is_probs != test.is_probs)
    throw input_error(fmt::format("{}: /val and /test store different kinds of scores; cannot re-split", path));
  const std::int64_t k = val.num_classes, nv = val.num_samples, nt = test.num_samples, n = nv + nt;
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  auto rng = make_stream(seed, 0x5EED);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(perm[i], perm[static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  auto row = [&](std::int64_t r) -> std::pair<const double*, std::int32_t> {
    return r < nv ? std::pair{val.values.data() + r * k, val.labels[r]}
                  : std::pair{test.values.data() + (r - nv) * k, test.labels[r - nv]};
  };
  auto take = [&](const split_data& like, const std::string& name, std::int64_t begin, std::int64_t count) {
    split_data s = like;
    s.name = name;
    s.num_samples = count;
    s.values.resize(static_cast<std::size_t>(count * k));
    s.labels.resize(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
      const auto [values, label] = row(perm[begin + i]);
      std::copy_n(values, k, s.values.data() + i * k);
      s.labels[i] = label;
    }
    return s;
  };
  split_data new_val = take(val, "val", 0, nv);
  split_data new_test = take(test, "test", nv, nt);
  return {std::move(new_val), std::move(new_test)};
}

nlohmann::json metrics_object(const metric_set& m, const metric_options& options) {
  eval_report r;
  r.metrics = m;
  r.options = options;
  return eval_json(r);
}

/// A segmentation cell: one method on every group of one dump (docs/segmentation.md).
nlohmann::json run_seg_cell(const experiment_spec& spec, const cell& c) {
  seg_eval_options o;
  o.metrics = resolve_conventions(spec.conventions, spec.bins);
  o.roi = spec.roi;
  o.roi_dilation = spec.roi_dilation;
  o.background = spec.background;
  o.methods = {c.method->method};
  o.backend = spec.backend;
  const seg_report r = evaluate_segmentation(c.dataset->path, o);
  nlohmann::json groups = nlohmann::json::object();
  for (const auto& x : r.results) {
    const auto& m = x.metrics;
    nlohmann::json dice = nlohmann::json::array();
    for (double d : m.dice) dice.push_back(json_number(d));
    groups[x.group] = {{"roi_pixels", m.roi_pixels}, {"pixels", m.pixels},
                       {"accuracy", json_number(m.accuracy)}, {"ece", json_number(m.ece)},
                       {"mce", json_number(m.mce)}, {"sce", json_number(m.sce)},
                       {"nll", json_number(m.nll)}, {"brier", json_number(m.brier)},
                       {"dice", dice}, {"mean_dice", json_number(m.mean_dice)}};
  }
  nlohmann::json out{{"groups", groups}, {"seconds", r.seconds}};
  out["params"] = r.temperature > 0 ? nlohmann::json{{"temperature", r.temperature}, {"fit_pixels", r.fit_pixels}}
                                    : nlohmann::json::object();
  out["backend"] = r.backend.empty() ? "cpu" : r.backend;
  return out;
}

nlohmann::json run_cell(const experiment_spec& spec, const cell& c, sweep_backend& backend) {
  if (spec.task == "segmentation") return run_seg_cell(spec, c);
  const auto started = std::chrono::steady_clock::now();
  auto [val, test] = load_splits(c.dataset->path, c.seed);
  const metric_options mo = resolve_conventions(spec.conventions, spec.bins);
  nlohmann::json out;
  scored_split v_scores, t_scores;
  const scored_split t_raw = uncalibrated(test);
  const scored_split v_raw = uncalibrated(val);
  if (c.method->method == "uncalibrated") {
    v_scores = v_raw;
    t_scores = t_raw;
    out["params"] = nlohmann::json::object();
  } else {
    fit_options o;
    o.method = c.method->method;
    o.metrics = mo;
    const auto& opt = c.method->options;
    auto get = [&](const char* key, const std::string& fallback) {
      const auto it = opt.find(key);
      return it == opt.end() ? fallback : it->second;
    };
    o.objective = get("objective", o.objective);
    o.grid = get("grid", "");
    o.calib_bins = get("calib_bins", o.calib_bins);
    o.cts_search = get("cts_search", o.cts_search);
    const std::string constraint = get("accuracy_constraint", "on");
    if (constraint != "on" && constraint != "off")
      throw input_error(fmt::format("accuracy_constraint = '{}': expected on or off", constraint));
    o.accuracy_constraint = constraint == "on";
    if (const auto it = opt.find("iterations"); it != opt.end()) {
      try {
        o.iterations = std::stoll(it->second);
      } catch (const std::exception&) {
        throw input_error(fmt::format("iterations = '{}': expected an integer", it->second));
      }
    }
    for (const auto& [key, value] : opt) {
      if (set_train_option(o.train, key, value)) check_train_option_applies(o.method, key, "");
    }
    const calibrator cal = fit_calibrator(val, o, backend);
    out["params"] = cal.params();
    if (!cal.curve_candidates.empty()) {
      nlohmann::json values = nlohmann::json::array();
      for (double v : cal.curve_values) values.push_back(json_number(v));
      out["objective_curve"] = {{"metric", cal.curve_metric}, {"candidates", cal.curve_candidates}, {"values", values}};
    }
    v_scores = cal.apply(val);
    t_scores = cal.apply(test);
  }
  out["val"] = metrics_object(compute_metrics(v_scores, mo), mo);
  out["test"] = metrics_object(compute_metrics(t_scores, mo), mo);
  // What the plots need: reliability bins of both splits, the test retention curve, and the
  // per-class validation accuracy of the uncalibrated model.
  auto reliability = [&](const scored_split& s) {
    nlohmann::json bins = nlohmann::json::array();
    for (const auto& b : reliability_bins(s, mo)) {
      const double cnt = static_cast<double>(b.count);
      bins.push_back({b.count, b.count ? json_number(b.sum_correct / cnt) : nlohmann::json(nullptr),
                      b.count ? json_number(b.sum_confidence / cnt) : nlohmann::json(nullptr)});
    }
    return bins;
  };
  out["reliability"] = {{"val", reliability(v_scores)}, {"test", reliability(t_scores)}};
  out["test_retention"] = retention_curve(t_scores, 101);
  nlohmann::json class_acc = nlohmann::json::array();
  for (double a : class_accuracy(v_raw)) class_acc.push_back(json_number(a));
  out["val_class_accuracy"] = class_acc;
  out["order_inversions"] = {{"val", json_number(order_inversions(v_raw.confidence, v_scores.confidence))},
                             {"test", json_number(order_inversions(t_raw.confidence, t_scores.confidence))}};
  if (spec.bootstrap > 0) {
    // Only the tables' quantities (test ECE and accuracy) are resampled: O(N) per resample
    // instead of the whole metric suite. Same generator and resamples as `eval --bootstrap`.
    std::vector<double> eces, accs;
    std::vector<bin_stats> bins(static_cast<std::size_t>(mo.slots()));
    for (std::int64_t b = 0; b < spec.bootstrap; ++b) {
      std::fill(bins.begin(), bins.end(), bin_stats{});
      double correct = 0;
      for (std::int64_t r : bootstrap_indices(t_scores.num_samples, spec.bootstrap_seed, b)) {
        const double conf = t_scores.confidence[r];
        const double hit = t_scores.prediction[r] == t_scores.labels[r] ? 1.0 : 0.0;
        correct += hit;
        const std::int32_t slot = bin_index(mo.bin_rule, conf, mo.num_bins);
        if (slot < 0) continue;  // guo-strict: in no bin, still in N
        auto& bin = bins[static_cast<std::size_t>(slot)];
        bin.count += 1;
        bin.sum_confidence += conf;
        bin.sum_correct += hit;
      }
      double ece = 0;
      for (const auto& bin : bins) ece += std::fabs(bin.sum_correct - bin.sum_confidence);
      eces.push_back(ece / static_cast<double>(t_scores.num_samples));
      accs.push_back(correct / static_cast<double>(t_scores.num_samples));
    }
    out["test_bootstrap_ece"] = eces;
    auto interval = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return nlohmann::json{linear_quantile(v, 0.025), linear_quantile(v, 0.975)};
    };
    out["test_ci95"] = {{"ece", interval(eces)}, {"accuracy", interval(accs)}};
  }
  out["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  out["backend"] = backend.name();
  return out;
}

std::string cell_path(const std::string& out_dir, const cell& c) {
  return (fs::path(out_dir) / "cells" / (c.id + ".json")).string();
}

/// A finished cell's JSON, or null when absent, unreadable or failed.
nlohmann::json read_cell(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return nullptr;  // cannot happen with atomic writes; treated as not run
  }
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
  const fs::path target(path);
  const fs::path temp = target.parent_path() / (target.filename().string() + fmt::format(".tmp.{}", ::getpid()));
  {
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw error(fmt::format("{}: cannot create", temp.string()));
    std::size_t done = 0;
    while (done < content.size()) {
      const ssize_t w = ::write(fd, content.data() + done, content.size() - done);
      if (w <= 0) {
        ::close(fd);
        throw error(fmt::format("{}: write failed", temp.string()));
      }
      done += static_cast<std::size_t>(w);
    }
    ::fsync(fd);
    ::close(fd);
  }
  fs::rename(temp, target);
  const int dir = ::open(target.parent_path().empty() ? "." : target.parent_path().c_str(), O_RDONLY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

namespace {

const std::vector<std::string>& seg_method_names() {
  static const std::vector<std::string> names{"uncalibrated", "ts", "temperature-map", "augmented-mean"};
  return names;
}

/// The segmentation part of a spec: `methods` is a list of seg-eval method names; one dump's
/// own groups are the domains, so there are no re-splits (seeds) and no bootstrap.
experiment_spec load_seg_spec(const toml::table& root, const std::string& path, experiment_spec spec) {
  if (spec.seeds != std::vector<std::uint64_t>{0}) spec_fail(path, "seeds: a segmentation study has no re-splits");
  if (spec.bootstrap > 0) spec_fail(path, "bootstrap: not available for segmentation studies");
  spec.roi = string_at(root, "roi", "dilate", path, {"dilate", "stored", "all"});
  spec.roi_dilation = static_cast<std::int32_t>(integer_at(root, "roi_dilation", 10, path, 0));
  spec.background = static_cast<std::int32_t>(integer_at(root, "background", 0, path, 0));
  const auto* methods = root.get_as<toml::array>("methods");
  if (methods == nullptr || methods->empty())
    spec_fail(path, fmt::format("methods: expected a list of {}", fmt::join(seg_method_names(), ", ")));
  for (const auto& node : *methods) {
    const auto name = node.value<std::string>();
    if (!name || std::find(seg_method_names().begin(), seg_method_names().end(), *name) == seg_method_names().end())
      spec_fail(path, fmt::format("methods: expected names from {}", fmt::join(seg_method_names(), ", ")));
    spec.methods.push_back({*name, *name, {}});
  }
  return spec;
}

}  // namespace

experiment_spec load_spec(const std::string& path, const std::string& out_dir) {
  if (!fs::exists(path)) throw input_error(fmt::format("{}: no such file", path));
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw input_error(fmt::format("{}: line {}: {}", path, e.source().begin.line, e.description()));
  }
  static const std::set<std::string> known{
      "name",    "description", "bins",  "binning",   "conventions",    "classwise_binning", "adaptive",
      "classwise_reduction", "brier", "nll_clip", "backend", "seeds", "bootstrap", "bootstrap_seed",
      "datasets", "methods", "notes", "table_metric", "task", "roi", "roi_dilation", "background"};
  for (const auto& [key, node] : root) {
    if (!known.contains(std::string(key.str()))) spec_fail(path, fmt::format("unknown key '{}'", key.str()));
  }
  experiment_spec spec;
  spec.file = path;
  spec.name = string_at(root, "name", fs::path(path).stem().string(), path);
  spec.bins = static_cast<std::int32_t>(integer_at(root, "bins", 15, path, 1));
  {
    auto& c = spec.conventions;
    c.preset = string_at(root, "conventions", "calibench", path);
    c.binning = string_at(root, "binning", "", path);
    c.classwise_binning = string_at(root, "classwise_binning", "", path);
    c.adaptive = string_at(root, "adaptive", "", path);
    c.classwise_reduction = string_at(root, "classwise_reduction", "", path);
    c.brier = string_at(root, "brier", "", path);
    if (const auto* node = root.get("nll_clip")) {
      const auto v = node->value<double>();
      if (!v) spec_fail(path, "nll_clip: expected a number");
      c.nll_clip = *v;
    }
    try {
      resolve_conventions(c, spec.bins);
    } catch (const input_error& e) {
      spec_fail(path, e.what());
    }
  }
  spec.backend = string_at(root, "backend", "auto", path, {"cpu", "cuda", "auto"});
  spec.bootstrap = integer_at(root, "bootstrap", 0, path, 0);
  spec.bootstrap_seed = static_cast<std::uint64_t>(integer_at(root, "bootstrap_seed", 0, path, 0));
  {
    std::vector<std::string> metrics;
    for (const auto& f : metric_fields()) metrics.emplace_back(f.name);
    spec.table_metric = string_at(root, "table_metric", "ece", path, metrics);
  }
  if (const auto* notes = root.get("notes")) {
    const auto* arr = notes->as_array();
    if (arr == nullptr) spec_fail(path, "notes: expected a list of strings");
    for (const auto& n : *arr) {
      const auto text = n.value<std::string>();
      if (!text) spec_fail(path, "notes: expected a list of strings");
      spec.notes.push_back(*text);
    }
  }
  if (const auto* seeds = root.get("seeds")) {
    spec.seeds.clear();
    if (const auto* arr = seeds->as_array()) {
      for (const auto& s : *arr) {
        const auto v = s.value<std::int64_t>();
        if (!v || *v < 0) spec_fail(path, "seeds: expected non-negative integers");
        spec.seeds.push_back(static_cast<std::uint64_t>(*v));
      }
    } else {
      spec.seeds.push_back(static_cast<std::uint64_t>(integer_at(root, "seeds", 0, path, 0)));
    }
    if (spec.seeds.empty()) spec_fail(path, "seeds: empty list");
  }
  const auto* datasets = root.get_as<toml::array>("datasets");
  auto model_of = [](const std::string& dump, const toml::table& spec_root) {
    try {
      const auto* task = spec_root.get("task");
      const auto layout = task != nullptr && task->value<std::string>().value_or("") == "segmentation"
                              ? dump_layout{dump, inspect_segmentation(dump).attributes, {}}
                              : inspect_dump(dump);
      const auto it = layout.attributes.find("model");
      return it == layout.attributes.end() ? std::string() : it->second;
    } catch (const input_error&) {
      return std::string();  // a bad dump fails in its cells, with the reader's message
    }
  };
  if (datasets == nullptr || datasets->empty()) spec_fail(path, "no [[datasets]]");
  for (std::size_t i = 0; i < datasets->size(); ++i) {
    const auto* t = (*datasets)[i].as_table();
    if (t == nullptr) spec_fail(path, fmt::format("datasets[{}]: expected a table", i));
    std::vector<dataset_entry> found;
    if (const auto* synth = t->get_as<toml::table>("synth")) {
      found = synth_dataset(*synth, path, out_dir, i);
    } else if (t->get("path") != nullptr) {
      found = path_datasets(*t, path, i, spec.notes);
    } else {
      spec_fail(path, fmt::format("datasets[{}]: needs 'path' or 'synth'", i));
    }
    for (auto& d : found) d.model = model_of(d.path, root);
    spec.datasets.insert(spec.datasets.end(), found.begin(), found.end());
  }
  spec.task = string_at(root, "task", "classification", path, {"classification", "segmentation"});
  if (spec.task == "segmentation") return load_seg_spec(root, path, std::move(spec));
  const auto* methods = root.get_as<toml::array>("methods");
  if (methods == nullptr || methods->empty()) spec_fail(path, "no [[methods]]");
  for (std::size_t i = 0; i < methods->size(); ++i) {
    const auto* t = (*methods)[i].as_table();
    if (t == nullptr) spec_fail(path, fmt::format("methods[{}]: expected a table", i));
    const auto expanded = expand_method(*t, path, i);
    spec.methods.insert(spec.methods.end(), expanded.begin(), expanded.end());
  }
  std::set<std::string> labels;
  for (const auto& m : spec.methods) {
    if (!labels.insert(m.label).second)
      spec_fail(path, fmt::format("two method configurations share the label '{}'; set 'label'", m.label));
  }
  return spec;
}

std::vector<cell> expand_cells(const experiment_spec& spec) {
  std::vector<cell> cells;
  const metric_options mo = resolve_conventions(spec.conventions, spec.bins);
  // The default conventions keep the identities cells had before conventions existed.
  nlohmann::json conventions = conventions_json(mo);
  const bool default_conventions = conventions == conventions_json(resolve_conventions({}, spec.bins)) ||
                                   (mo.preset == "calibench" && spec.conventions.classwise_binning.empty() &&
                                    spec.conventions.adaptive.empty() && spec.conventions.classwise_reduction.empty() &&
                                    spec.conventions.brier.empty() && !spec.conventions.nll_clip);
  for (const auto& d : spec.datasets) {
    const std::string content = file_hash(d.path);
    for (const auto& m : spec.methods) {
      for (const auto seed : spec.seeds) {
        const nlohmann::json identity{{"data", content},       {"method", m.method},          {"options", m.options},
                                      {"seed", seed},          {"bins", spec.bins},           {"binning", binning_name(mo.bin_rule)},
                                      {"bootstrap", spec.bootstrap}, {"bootstrap_seed", spec.bootstrap_seed},
                                      {"engine", CALIBENCH_VERSION}};
        hasher h;
        h.add(default_conventions ? identity.dump() : identity.dump() + conventions.dump());
        if (spec.task == "segmentation")
          h.add(nlohmann::json{{"task", spec.task}, {"roi", spec.roi}, {"roi_dilation", spec.roi_dilation},
                               {"background", spec.background}}
                    .dump());
        cells.push_back({fmt::format("{:016x}", h.value()), &d, &m, seed});
      }
    }
  }
  return cells;
}

sweep_summary run_cells(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir,
                        const sweep_run_options& options) {
  fs::create_directories(fs::path(out_dir) / "cells");
  auto backend = make_backend(spec.backend);
  sweep_summary s;
  const auto started = std::chrono::steady_clock::now();
  std::vector<const cell*> mine;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (static_cast<std::int32_t>(i % static_cast<std::size_t>(options.ranks)) == options.rank) mine.push_back(&cells[i]);
  }
  s.cells = static_cast<std::int64_t>(mine.size());
  std::int64_t done = 0;
  for (const cell* c : mine) {
    const std::string path = cell_path(out_dir, *c);
    const nlohmann::json previous = read_cell(path);
    if (!previous.is_null() && !previous.contains("error")) {
      ++s.skipped;
      ++done;
      continue;
    }
    nlohmann::json result{{"id", c->id},         {"dataset", c->dataset->name}, {"model", c->dataset->model},
                          {"file", c->dataset->path},
                          {"method", c->method->method}, {"label", c->method->label},
                          {"options", c->method->options}, {"seed", c->seed}};
    const auto cell_started = std::chrono::steady_clock::now();
    try {
      result.update(run_cell(spec, *c, *backend));
    } catch (const std::exception& e) {
      result["error"] = e.what();
      result["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - cell_started).count();
      ++s.failed;
    }
    write_file_atomic(path, result.dump(1));
    ++s.ran;
    ++done;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (options.verbose) {
      std::cerr << fmt::format("[{}/{}] {} | {} | seed {}: {}\n", done, s.cells, c->dataset->name, c->method->label,
                               c->seed,
                               result.contains("error")  ? "FAILED: " + result["error"].get<std::string>()
                               : !result.contains("test") ? fmt::format("{:.2f} s", result["seconds"].get<double>())
                                                          : fmt::format("test ECE {:.2f} %, {:.2f} s",
                                                                        100.0 * result["test"]["ece"].get<double>(),
                                                                        result["seconds"].get<double>()));
    } else if (options.progress) {
      const double rate = static_cast<double>(s.ran) / std::max(elapsed, 1e-9);
      const double eta = static_cast<double>(s.cells - done) / std::max(rate, 1e-9);
      std::cerr << fmt::format("\r{} / {} cells, {:.1f} cells/s, ETA {:.0f} s   ", done, s.cells, rate, eta)
                << std::flush;
    }
  }
  if (options.progress && !options.verbose) std::cerr << "\n";
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return s;
}

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (std::string("&%$#_{}").find(ch) != std::string::npos) out += '\\';
    if (ch == '~' || ch == '^' || ch == '\\') {
      out += fmt::format("\\char{}", static_cast<int>(ch));
      continue;
    }
    out += ch;
  }
  return out;
}

/// "right-closed" for the default conventions, else e.g. "conventions netcal: binning left-closed, ...".
std::string conventions_label(const experiment_spec& spec) {
  const metric_options o = resolve_conventions(spec.conventions, spec.bins);
  if (conventions_json(o) == conventions_json(resolve_conventions({}, spec.bins))) return binning_name(o.bin_rule);
  return fmt::format("conventions {}: binning {}, classwise binning {}, adaptive {}, classwise {}, brier {}{}", o.preset,
                     binning_name(o.bin_rule), binning_name(o.classwise_binning()), adaptive_name(o.adaptive),
                     classwise_reduction_name(o.reduction), brier_name(o.brier),
                     o.nll_clip > 0 ? fmt::format(", nll clip {:g}", o.nll_clip) : std::string());
}

double mean_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()); }

double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

}  // namespace

namespace {

/// Reports of a segmentation study: results.json, results.csv (one row per cell and group)
/// and table.md / table.tex shaped like the paper's Table 1: per dataset, methods as rows and
/// groups (domains) as columns, ECE % and SCE %, then mean Dice %.
std::string write_seg_reports(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir) {
  std::vector<nlohmann::json> results;
  for (const auto& c : cells) {
    nlohmann::json r = read_cell(cell_path(out_dir, c));
    if (r.is_null()) r = {{"id", c.id}, {"dataset", c.dataset->name}, {"label", c.method->label}, {"error", "not run"}};
    results.push_back(std::move(r));
  }
  write_file_atomic((fs::path(out_dir) / "results.json").string(), nlohmann::json(results).dump(1));
  std::string csv = "id,dataset,method,group,roi_pixels,pixels,accuracy,ece,mce,sce,nll,brier,mean_dice,params,error\n";
  for (const auto& r : results) {
    if (r.contains("error")) {
      csv += fmt::format("{},{},{},,,,,,,,,,,,{}\n", r.value("id", ""), csv_field(r.value("dataset", "")),
                         r.value("label", ""), csv_field(r.value("error", "")));
      continue;
    }
    for (const auto& [group, m] : r["groups"].items()) {
      csv += fmt::format("{},{},{},{},{},{}", r.value("id", ""), csv_field(r.value("dataset", "")), r.value("label", ""),
                         group, m["roi_pixels"].dump(), m["pixels"].dump());
      for (const char* key : {"accuracy", "ece", "mce", "sce", "nll", "brier", "mean_dice"})
        csv += fmt::format(",{}", m[key].is_null() ? "" : m[key].dump());
      csv += fmt::format(",{},\n", csv_field(r["params"].dump()));
    }
  }
  write_file_atomic((fs::path(out_dir) / "results.csv").string(), csv);

  std::string md = fmt::format("# {}\n\nSegmentation calibration over ROI pixels ({}{}), {} bins {}; methods as rows, "
                               "domain groups as columns; ECE and SCE %, mean Dice % over all pixels. Spec: `{}`.\n",
                               spec.name, spec.roi,
                               spec.roi == "dilate" ? fmt::format(": foreground dilated by r = {} px", spec.roi_dilation)
                                                    : std::string(),
                               spec.bins, conventions_label(spec), spec.file);
  std::string tex = fmt::format("% {} -- generated by calibench sweep from {}\n", latex_escape(spec.name),
                                latex_escape(spec.file));
  for (const auto& d : spec.datasets) {
    std::vector<std::string> groups;
    for (const auto& r : results) {
      if (r.value("dataset", "") != d.name || r.contains("error")) continue;
      for (const auto& [group, m] : r["groups"].items()) {
        if (std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(group);
      }
    }
    std::sort(groups.begin(), groups.end(), [](const std::string& a, const std::string& b) {
      const auto rank = [](const std::string& s) { return s == "val" ? 0 : (s == "test" ? 1 : 2); };
      return std::make_pair(rank(a), a) < std::make_pair(rank(b), b);
    });
    md += fmt::format("\n## {}\n", d.name);
    tex += fmt::format("% {}\n\\begin{{tabular}}{{l{}}}\n\\toprule\n", latex_escape(d.name),
                       std::string(groups.size(), 'r'));
    for (const auto& [title, key] : std::vector<std::pair<std::string, std::string>>{
             {"ECE %", "ece"}, {"SCE %", "sce"}, {"mean Dice %", "mean_dice"}}) {
      md += fmt::format("\n| {} |", title);
      for (const auto& g : groups) md += fmt::format(" {} |", g);
      md += "\n|---|" + std::string() ;
      for (std::size_t i = 0; i < groups.size(); ++i) md += "---|";
      md += "\n";
      tex += latex_escape(title);
      for (const auto& g : groups) tex += fmt::format(" & {}", latex_escape(g));
      tex += " \\\\\n\\midrule\n";
      for (const auto& m : spec.methods) {
        md += fmt::format("| {} |", m.label);
        tex += latex_escape(m.label);
        const nlohmann::json* row = nullptr;
        for (const auto& r : results) {
          if (r.value("dataset", "") == d.name && r.value("label", "") == m.label) row = &r;
        }
        for (const auto& g : groups) {
          std::string text = "n/a";
          if (row != nullptr && row->contains("error")) {
            text = "failed";
          } else if (row != nullptr && (*row)["groups"].contains(g) && !(*row)["groups"][g][key].is_null()) {
            text = fmt::format("{:.2f}", 100.0 * (*row)["groups"][g][key].get<double>());
          }
          md += fmt::format(" {} |", text);
          tex += fmt::format(" & {}", text);
        }
        md += "\n";
        tex += " \\\\\n";
      }
      tex += "\\midrule\n";
    }
    tex += "\\bottomrule\n\\end{tabular}\n";
  }
  write_file_atomic((fs::path(out_dir) / "table.md").string(), md);
  write_file_atomic((fs::path(out_dir) / "table.tex").string(), tex);
  return md;
}

}  // namespace

std::string write_reports(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir) {
  if (spec.task == "segmentation") return write_seg_reports(spec, cells, out_dir);
  std::vector<nlohmann::json> results;
  for (const auto& c : cells) {
    nlohmann::json r = read_cell(cell_path(out_dir, c));
    if (r.is_null()) {
      r = {{"id", c.id}, {"dataset", c.dataset->name}, {"label", c.method->label}, {"seed", c.seed},
           {"error", "not run"}};
    }
    r["model"] = c.dataset->model;  // from the dump, so that older cell files report it too
    results.push_back(std::move(r));
  }

  // results.json and results.csv: one row per cell and split.
  write_file_atomic((fs::path(out_dir) / "results.json").string(), nlohmann::json(results).dump(1));
  const auto fields = metric_fields();
  std::string csv = "id,dataset,model,file,method,label,options,seed,split,n,k";
  for (const auto& f : fields) csv += fmt::format(",{}", f.name);
  csv += ",order_inversions,params,seconds,backend,error\n";
  for (const auto& r : results) {
    for (const char* split : {"val", "test"}) {
      csv += fmt::format("{},{},{},{},{},{},{},{},{}", r.value("id", ""), csv_field(r.value("dataset", "")),
                         csv_field(r.value("model", "")), csv_field(r.value("file", "")), r.value("method", ""), csv_field(r.value("label", "")),
                         csv_field(r.contains("options") ? r["options"].dump() : "{}"), r.value("seed", 0), split);
      const bool ok = !r.contains("error");
      const auto& m = ok ? r[split] : nlohmann::json::object();
      csv += fmt::format(",{},{}", ok ? m["n"].dump() : "", ok ? m["k"].dump() : "");
      for (const auto& f : fields) csv += fmt::format(",{}", ok && !m[f.name].is_null() ? m[f.name].dump() : "");
      csv += fmt::format(",{},{},{},{},{}\n", ok ? r["order_inversions"][split].dump() : "",
                         csv_field(ok ? r["params"].dump() : ""), r.contains("seconds") ? r["seconds"].dump() : "",
                         csv_field(r.value("backend", "")), csv_field(r.value("error", "")));
    }
  }
  write_file_atomic((fs::path(out_dir) / "results.csv").string(), csv);

  // results.h5: every cell's parameters (JSON) as attributes of /cells/<id>.
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> groups;
  for (const auto& r : results) {
    std::map<std::string, std::string> attrs{{"dataset", r.value("dataset", "")}, {"label", r.value("label", "")},
                                             {"method", r.value("method", "")}, {"seed", std::to_string(r.value("seed", 0))}};
    if (r.contains("params")) attrs["params"] = r["params"].dump();
    if (r.contains("error")) attrs["error"] = r["error"].get<std::string>();
    groups.emplace_back("/cells/" + r.value("id", ""), std::move(attrs));
  }
  write_attribute_groups((fs::path(out_dir) / "results.h5").string(), groups);

  // Tables: rows datasets, columns method labels, test ECE % (accuracy %) over seeds.
  std::vector<std::string> rows, cols;
  for (const auto& d : spec.datasets) rows.push_back(d.name);
  for (const auto& m : spec.methods) cols.push_back(m.label);
  struct agg {
    std::vector<double> ece, acc;
    bool failed = false;
    nlohmann::json ci;
    std::vector<double> boot;  // first seed's bootstrap ECEs
  };
  std::map<std::pair<std::string, std::string>, agg> table;
  for (const auto& r : results) {
    auto& a = table[{r.value("dataset", ""), r.value("label", "")}];
    if (r.contains("error")) {
      a.failed = true;
      continue;
    }
    const auto& value = r["test"][spec.table_metric];
    if (value.is_null()) continue;  // undefined for this cell (e.g. auroc with one class)
    a.ece.push_back(value.get<double>());
    a.acc.push_back(r["test"]["accuracy"].get<double>());
    if (r.contains("test_ci95") && a.ci.is_null()) a.ci = r["test_ci95"]["ece"];
    if (r.contains("test_bootstrap_ece") && a.boot.empty()) {
      for (const auto& x : r["test_bootstrap_ece"]) a.boot.push_back(x.is_null() ? NAN : x.get<double>());
    }
  }
  const auto field = std::find_if(fields.begin(), fields.end(),
                                  [&](const metric_field& f) { return spec.table_metric == f.name; });
  const double scale = field->percent ? 100.0 : 1.0;
  const bool lower_is_better = spec.table_metric != "accuracy" && spec.table_metric != "auroc" &&
                               spec.table_metric != "precision" && spec.table_metric != "recall" &&
                               spec.table_metric != "f1" && spec.table_metric != "r_auc";
  const bool many_seeds = spec.seeds.size() > 1;
  auto cell_text = [&](const agg& a, bool latex) {
    if (a.ece.empty()) return std::string(a.failed ? "failed" : "-");
    std::string t = many_seeds ? fmt::format("{:.2f} {} {:.2f}", scale * mean_of(a.ece), latex ? "$\\pm$" : "±",
                                             scale * std_of(a.ece))
                               : fmt::format("{:.2f}", scale * a.ece[0]);
    if (!many_seeds && spec.table_metric == "ece" && a.ci.is_array() && !a.ci[0].is_null())
      t += fmt::format(" [{:.2f}, {:.2f}]", 100 * a.ci[0].get<double>(), 100 * a.ci[1].get<double>());
    t += fmt::format(" ({:.2f})", 100 * mean_of(a.acc));
    if (a.failed) t += latex ? "$^{*}$" : " *";
    return t;
  };
  std::string md = fmt::format("# {}\n\nTest {}{} ({} bins, {}){}{}, test accuracy % in parentheses; "
                               "the best value of each row in bold. Spec: `{}`.\n\n",
                               spec.name, spec.table_metric, field->percent ? " %" : "", spec.bins,
                               conventions_label(spec),
                               many_seeds ? fmt::format(", mean ± std over {} seeds", spec.seeds.size()) : "",
                               spec.bootstrap > 0 && !many_seeds
                                   ? fmt::format(", [95% bootstrap interval, {} resamples]", spec.bootstrap)
                                   : "",
                               spec.file);
  std::string tex = fmt::format("% {} -- generated by calibench sweep from {}\n\\begin{{tabular}}{{l{}}}\n\\toprule\n",
                                spec.name, spec.file, std::string(cols.size(), 'r'));
  md += "| dataset |";
  tex += "dataset";
  for (const auto& c : cols) {
    md += fmt::format(" {} |", c);
    tex += fmt::format(" & {}", latex_escape(c));
  }
  md += "\n|---|" + [&] {
    std::string s;
    for (std::size_t i = 0; i < cols.size(); ++i) s += "---|";
    return s;
  }() + "\n";
  tex += " \\\\\n\\midrule\n";
  bool any_failed = false;
  for (const auto& row : rows) {
    double best = lower_is_better ? INFINITY : -INFINITY;
    for (const auto& c : cols) {
      const auto& a = table[{row, c}];
      if (!a.ece.empty()) best = lower_is_better ? std::min(best, mean_of(a.ece)) : std::max(best, mean_of(a.ece));
    }
    md += fmt::format("| {} |", row);
    tex += latex_escape(row);
    for (const auto& c : cols) {
      const auto& a = table[{row, c}];
      any_failed = any_failed || a.failed;
      const bool is_best = !a.ece.empty() && mean_of(a.ece) == best;
      const std::string t = cell_text(a, false);
      md += is_best ? fmt::format(" **{}** |", t) : fmt::format(" {} |", t);
      const std::string tt = latex_escape(cell_text(a, true));
      tex += is_best ? fmt::format(" & \\textbf{{{}}}", tt) : fmt::format(" & {}", tt);
    }
    md += "\n";
    tex += " \\\\\n";
  }
  tex += "\\bottomrule\n\\end{tabular}\n";
  if (any_failed) md += "\n`failed` / `*`: some cells of that entry failed; see results.csv for the errors.\n";
  for (const auto& note : spec.notes) md += fmt::format("\nNote: {}\n", note);

  // Paired bootstrap comparisons: P(ECE of the row method < ECE of the column method) over
  // the same test resamples (first seed).
  if (spec.bootstrap > 0 && cols.size() > 1) {
    md += fmt::format("\n## Paired bootstrap comparisons\n\nP(row method has lower test ECE than column method) "
                      "over {} paired resamples of the test split (seed {}).\n",
                      spec.bootstrap, spec.seeds.front());
    for (const auto& row : rows) {
      md += fmt::format("\n**{}**\n\n| |", row);
      for (const auto& c : cols) md += fmt::format(" {} |", c);
      md += "\n|---|";
      for (std::size_t i = 0; i < cols.size(); ++i) md += "---|";
      md += "\n";
      for (const auto& a_label : cols) {
        md += fmt::format("| {} |", a_label);
        const auto& a = table[{row, a_label}].boot;
        for (const auto& b_label : cols) {
          const auto& b = table[{row, b_label}].boot;
          if (a_label == b_label || a.empty() || a.size() != b.size()) {
            md += " - |";
            continue;
          }
          std::int64_t wins = 0, total = 0;
          for (std::size_t i = 0; i < a.size(); ++i) {
            if (std::isnan(a[i]) || std::isnan(b[i])) continue;
            ++total;
            wins += a[i] < b[i] ? 1 : 0;
          }
          md += total > 0 ? fmt::format(" {:.2f} |", static_cast<double>(wins) / static_cast<double>(total)) : " - |";
        }
        md += "\n";
      }
    }
  }
  write_file_atomic((fs::path(out_dir) / "table.md").string(), md);
  write_file_atomic((fs::path(out_dir) / "table.tex").string(), tex);
  return md;
}

}  // namespace calibench
