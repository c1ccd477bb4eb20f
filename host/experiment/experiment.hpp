// `calibench sweep SPEC.toml --out DIR`: a study described once (datasets x methods with
// option grids x seeds), expanded into cells with stable identities, run resumably with
// atomic writes, and summarised as CSV, JSON, HDF5 and Markdown / LaTeX tables
// (docs/experiments.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/metrics/conventions.hpp"

namespace calibench {

/// One method configuration after expanding option lists.
struct method_config {
  std::string label;                          ///< column name in tables
  std::string method;                         ///< a fit method, or "uncalibrated"
  std::map<std::string, std::string> options; ///< fit options (objective, grid, ...)
};

/// One dataset of a spec: a dump file, or a synthetic dump generated into DIR/data.
struct dataset_entry {
  std::string path;   ///< resolved file path
  std::string name;   ///< row name in tables
  std::string model;  ///< the dump's `model` attribute ("" when absent)
};

/// A parsed and expanded spec.
struct experiment_spec {
  std::string name;
  std::string file;  ///< the spec's path
  std::int32_t bins = 15;
  convention_names conventions;  ///< metric conventions (docs/metrics.md); binning etc. keys of the spec
  std::string backend = "auto";
  std::vector<std::uint64_t> seeds{0};
  std::int64_t bootstrap = 0;
  std::uint64_t bootstrap_seed = 0;
  std::vector<dataset_entry> datasets;
  std::vector<method_config> methods;
  std::string table_metric = "ece";  ///< the metric of the tables' cells (any eval metric key)
  std::vector<std::string> notes;    ///< the spec's own notes, then e.g. unmatched optional globs
  /// "classification", or "segmentation" (docs/segmentation.md): methods are seg-eval methods,
  /// one cell per dataset and method, tables with methods as rows and domain groups as columns.
  std::string task = "classification";
  std::string roi = "dilate";        ///< segmentation: ROI rule
  std::int32_t roi_dilation = 10;    ///< segmentation: r of the square dilation
  std::int32_t background = 0;       ///< segmentation: the class outside the foreground
};

/// One unit of work.
struct cell {
  std::string id;  ///< 16 hex digits: hash of the resolved configuration and the dump's bytes
  const dataset_entry* dataset = nullptr;
  const method_config* method = nullptr;
  std::uint64_t seed = 0;
};

/// Parses SPEC.toml; synthetic datasets are generated into `out_dir`/data (once).
/// Throws input_error naming the spec file and the offending key.
experiment_spec load_spec(const std::string& path, const std::string& out_dir);

/// The Cartesian product datasets x methods x seeds with stable identities.
std::vector<cell> expand_cells(const experiment_spec& spec);

struct sweep_run_options {
  bool verbose = false;   ///< one line per finished cell on stderr
  bool progress = false;  ///< a live progress line on stderr (when it is a terminal)
  std::int32_t rank = 0;  ///< this process's share of the cells (cell i runs on rank i mod ranks)
  std::int32_t ranks = 1;
};

struct sweep_summary {
  std::int64_t cells = 0, skipped = 0, ran = 0, failed = 0;
  double seconds = 0;
};

/// Runs the cells (skipping finished ones) and writes DIR/cells/<id>.json atomically.
sweep_summary run_cells(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir,
                        const sweep_run_options& options);

/// Reads every cell result and writes results.csv, results.json, results.h5, table.md and
/// table.tex in DIR (atomically). Returns the Markdown table.
std::string write_reports(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir);

/// Writes `content` to `path` via a temporary file in the same folder, fsync and rename.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace calibench
