// What `eval --plot` and `fit --plot` hand to python/calibench/plots.py: one panel per scored
// split (reliability bins, ECE, accuracy, the retention curve of the kept predictions, the
// confidence histograms of correct and incorrect predictions), in the JSON schema plots.py
// validates (docs/metrics.md, "Plots"). calibench.plot_data computes the same panel in Python.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "host/metrics/metrics.hpp"

namespace calibench {

/// One panel. Reliability: `reliability_bins` under `options` (equal-width; the bin rule must
/// have M slots: right-closed, left-closed or guo-strict); retention: for i = 1..100 the
/// accuracy of the k_i = ceil(i N / 100) most confident predictions (descending confidence,
/// ties by index), entry 0 null; density: counts of the top-label confidence in 50 bins
/// [j/50, (j+1)/50) (confidence 1 in the last), correct and incorrect apart.
nlohmann::json plot_panel(const scored_split& s, const metric_options& options, const std::string& label);

/// The document: {"title", "bins", "bin_rule", "panels"}. Throws input_error for a bin rule
/// the plots cannot draw.
nlohmann::json plot_document(const std::string& title, const metric_options& options, nlohmann::json panels);

}  // namespace calibench
