// Running the cells of a study (docs/experiments.md): each cell fits its method on the
// dataset's validation split (re-split by its seed), scores both splits and writes
// DIR/cells/<id>.json atomically; finished cells are skipped, so an interrupted sweep resumes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/experiment/spec.hpp"

namespace calibench {

struct sweep_run_options {
  bool verbose = false;   ///< one line per finished cell on stderr
  bool progress = false;  ///< the cells' progress on stderr (common/progress.hpp chooses live or lines)
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

/// DIR/cells/<id>.json of a cell.
std::string cell_path(const std::string& out_dir, const cell& c);

/// A finished cell's JSON, or null when absent or unreadable.
nlohmann::json read_cell(const std::string& path);

}  // namespace calibench
