// The method registry: one row per calibration method, name -> {options that apply, the
// objectives it takes, whether its fit runs on the sweep backend, fit, load}. Every front end
// finds methods here; nothing else compares method names. A family's rows are defined in its
// own file and listed once in host/calibrators/methods.def.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/calibrators/calibrator.hpp"
#include "host/calibrators/request.hpp"
#include "host/io/dump.hpp"
#include "host/sweep/backend.hpp"

namespace calibench {

/// What a fit reads: the validation split, the request, and the sweep backend (set exactly
/// when the method's row says this request fits on it).
struct fit_input {
  const split_data& val;
  const fit_request& request;
  sweep_backend* backend = nullptr;
};

/// What a fit returns: the parameters and, for grid searches, the objective curve.
struct fitted {
  std::shared_ptr<const calibration_map> map;
  fit_curve curve;
};

struct method_info {
  std::string name;
  /// The fit_option_table() keys the method reads (others are refused when given).
  std::vector<std::string_view> options;
  /// The --objective values it takes (nll for every method).
  std::vector<fit_objective> objectives{fit_objective::nll};
  /// Why other objectives are refused, in the refusal message.
  std::string_view objective_note = "ts: nll | ece | adaece; ets: nll | mse";
  /// True when fitting `request` runs on the sweep backend (the grid searches); null: the host.
  bool (*on_backend)(const fit_request& request) = nullptr;
  /// A loss-trained method (its options include the training options).
  bool loss_trained = false;
  /// Checks that need more than one option (null: none); throws input_error.
  void (*check)(const fit_request& request) = nullptr;
  std::function<fitted(const fit_input& input)> fit;
  /// Reads the params() of a fitted map back (`calibench apply`); input_error naming `where`.
  std::function<std::shared_ptr<const calibration_map>(const nlohmann::json& params, const std::string& where)> load;

  bool uses_backend(const fit_request& request) const { return on_backend != nullptr && on_backend(request); }
  bool takes(std::string_view key) const;
};

/// Every method, in the order `calibench fit --help` and calibench.methods list them.
const std::vector<method_info>& method_table();
/// The row of `name`, or nullptr.
const method_info* find_method(std::string_view name);
/// The row of `name`; input_error "unknown method 'x' (--method takes: ts, ws, ...)" otherwise.
const method_info& method_named(std::string_view name);
/// The names of method_table(), in order.
std::vector<std::string> method_names();

/// Fits `request.method` on the validation split. `backend` is needed exactly when the
/// method's row uses it for this request (otherwise it may be null and is not touched).
calibrator fit_calibrator(const split_data& val, const fit_request& request, sweep_backend* backend);

/// An explicit fit (`calibench fit`, Python `fit`) that asks for --backend cuda although its
/// method fits on the host is refused (input_error): the output would name a backend that
/// never ran. Studies (sweep specs) run such fits on the host instead.
void check_fit_backend(const fit_request& request);

/// "host" for host fits, else the backend's name: what outputs report as "backend".
std::string fit_site_name(const fit_request& request, const sweep_backend* backend);

}  // namespace calibench
