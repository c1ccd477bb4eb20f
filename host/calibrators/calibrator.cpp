// The calibrator type (host/calibrators/calibrator.hpp); loading goes through the registry.
#include "host/calibrators/calibrator.hpp"

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"

namespace calibench {

calibrator::calibrator(std::string method, std::shared_ptr<const calibration_map> map, fit_curve curve,
                       std::int64_t num_classes)
    : method_(std::move(method)), map_(std::move(map)), curve_(std::move(curve)), num_classes_(num_classes) {
  CALIBENCH_EXPECTS(map_ != nullptr, "a calibrator needs parameters");
}

scored_split calibrator::apply(const split_data& split) const {
  if (num_classes_ > 0 && split.num_classes != num_classes_)
    throw input_error(fmt::format("{}: {}: K = {}, but this {} calibrator was fitted on K = {}", split.file,
                                  split.values_path(), split.num_classes, method_, num_classes_));
  return map_->apply(split);
}

nlohmann::json calibrator::to_json() const { return {{"method", method_}, {"params", params()}}; }

calibrator calibrator::from_json(const nlohmann::json& j, const std::string& where) {
  try {
    const std::string method = j.at("method").get<std::string>();
    const method_info* row = find_method(method);
    if (row == nullptr) throw input_error(fmt::format("{}: unknown calibration method '{}'", where, method));
    return calibrator(row->name, row->load(j.at("params"), where));
  } catch (const nlohmann::json::exception& e) {
    throw input_error(fmt::format("{}: malformed calibrator parameters ({})", where, e.what()));
  }
}

}  // namespace calibench
