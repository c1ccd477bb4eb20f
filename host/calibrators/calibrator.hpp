// A fitted calibrator: its method's name, its parameters (one calibration_map type per method
// family, in that family's file) and the objective curve its fit searched. Saving and loading
// go through the method registry (host/calibrators/registry.hpp), so this type knows no method.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/io/dump.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {

/// The parameters of one fitted method: what `calibench fit` prints, and how they calibrate
/// a split. Each family defines its own (host/calibrators/<family>.cpp).
class calibration_map {
 public:
  virtual ~calibration_map() = default;
  /// The JSON `params` object of `calibench fit`; the registry's loader reads it back.
  virtual nlohmann::json params() const = 0;
  /// The calibrated probabilities of a split, scored for the metric suite.
  virtual scored_split apply(const split_data& split) const = 0;
  /// Per-sample outputs besides the probabilities that `--save` writes into the split's
  /// `group` (venn_abers: its intervals); none by default.
  virtual std::vector<vector_to_write> outputs(const split_data&, const std::string&) const { return {}; }
};

/// The objective over the grid a fit searched (ts ece/adaece, ws; cts_greedy: its initial
/// one-temperature grid), for metric-versus-candidate plots; empty for other fits.
struct fit_curve {
  std::string metric;
  std::vector<double> candidates, values;
  bool empty() const { return candidates.empty(); }
};

class calibrator {
 public:
  /// `num_classes`: the K it was fitted on (0: not known, e.g. loaded from JSON); apply refuses
  /// a split of another K.
  calibrator(std::string method, std::shared_ptr<const calibration_map> map, fit_curve curve = {},
             std::int64_t num_classes = 0);

  /// The method as the registry names it (e.g. "ts", "ts+sctl").
  const std::string& method() const { return method_; }
  /// Parameters as the JSON `params` object of `calibench fit`.
  nlohmann::json params() const { return map_->params(); }
  /// {"method": ..., "params": ...}; from_json reads it back (throws input_error naming `where`).
  nlohmann::json to_json() const;
  static calibrator from_json(const nlohmann::json& j, const std::string& where);
  /// The calibrated probabilities of a split, scored for the metric suite.
  scored_split apply(const split_data& split) const;
  /// The map's extra per-sample outputs of a split for `--save` (calibration_map::outputs).
  std::vector<vector_to_write> outputs(const split_data& split, const std::string& group) const {
    return map_->outputs(split, group);
  }
  const fit_curve& curve() const { return curve_; }
  /// The parameters as their family's type, or nullptr (tests, callers that need one value).
  template <class Map>
  const Map* map_as() const {
    return dynamic_cast<const Map*>(map_.get());
  }

 private:
  std::string method_;
  std::shared_ptr<const calibration_map> map_;
  fit_curve curve_;
  std::int64_t num_classes_ = 0;
};

}  // namespace calibench
