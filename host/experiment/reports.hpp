// The reports of a study (docs/experiments.md): results.csv, results.json, results.h5 and
// the Markdown / LaTeX tables with paired bootstrap comparisons, written atomically from the
// cells on disk (so that every rank's and every earlier run's cells are included).
#pragma once

#include <string>
#include <vector>

#include "host/experiment/spec.hpp"

namespace calibench {

/// Reads every cell result and writes results.csv, results.json, results.h5, table.md and
/// table.tex in DIR (atomically). Returns the Markdown table.
std::string write_reports(const experiment_spec& spec, const std::vector<cell>& cells, const std::string& out_dir);

}  // namespace calibench
