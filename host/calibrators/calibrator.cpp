// The calibrator type (host/calibrators/calibrator.hpp); loading goes through the registry.
#include "host/calibrators/calibrator.hpp"

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/registry.hpp"

namespace calibench {

calibrator::calibrator(std::string method, std::shared_ptr<const calibration_map> map, fit_curve curve)
    : method_(std::move(method)), map_(std::move(map)), curve_(std::move(curve)) {
  CALIBENCH_EXPECTS(map_ != nullptr, "a calibrator needs parameters");
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
