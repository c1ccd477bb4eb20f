// The affine logit maps trained by the validation NLL (docs/calibrators.md): vector scaling
// (vs), matrix scaling (ms), per-class temperatures (cts_nll), and the regularised maps of
// host/calibrators/regularised_maps.cpp (ms_odir; dir_odir, dir_l2, dir_diag on log-softmax inputs). L-BFGS with
// analytic gradients (host/calibrators/logit_map_fit.hpp), float64 on the host.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "host/calibrators/calibrator.hpp"
#include "host/calibrators/logit_map_fit.hpp"

namespace calibench {

/// Default L-BFGS iterations of every logit-map fit (docs/calibrators.md).
inline constexpr std::int64_t k_default_lbfgs_iterations = 1000;

/// The input of a logit map: the logits (log p for probability dumps), or with `log_softmax`
/// (dir_odir) their log-softmax z - logsumexp(z) (= log p, finite even where exp underflows).
std::vector<double> logit_map_input(const split_data& split, bool log_softmax);

/// ODIR's internal cross-validation of lambda and mu (docs/calibrators.md): 5 folds from a
/// splitmix64 shuffle with seed 15.
inline constexpr std::int64_t k_odir_folds = 5;
inline constexpr std::uint64_t k_odir_fold_seed = 15;

/// A regularised fit's record (ODIR or L2): the penalty used and, when it was cross-validated,
/// every candidate.
struct odir_record {
  map_penalty penalty;
  double objective = 0;                            ///< mean NLL plus penalty at the parameters
  std::vector<double> cv_lambdas, cv_mus, cv_nll;  ///< empty when lambda and mu were given
};

/// The parameters of one fitted affine logit map, stored as `calibench fit` prints them.
class affine_logit_map final : public calibration_map {
 public:
  /// `method` names the map in messages; `log_softmax`: the input is log-softmax (dir_odir, dir_l2, dir_diag).
  affine_logit_map(std::string method, logit_map map, bool log_softmax);
  /// From the flat parameters of host/calibrators/logit_map_fit.hpp and the fit's record.
  void set_fit(const logit_map_fit& fit, std::int64_t num_classes, double final_nll);
  void set_odir(odir_record record) { odir_ = std::move(record); }

  nlohmann::json params() const override;
  scored_split apply(const split_data& split) const override;
  /// Reads params() back; with `penalty`, the record's keys of that penalty form too.
  static std::shared_ptr<const calibration_map> load(std::string method, logit_map map, bool log_softmax,
                                                     std::optional<penalty_form> penalty, const nlohmann::json& p,
                                                     const std::string& where);

 private:
  /// The flat parameters, checked against the split's K.
  std::vector<double> flat(const split_data& split) const;

  std::string method_;
  logit_map map_;
  bool log_softmax_;
  std::vector<double> weights_, matrix_, biases_, temperatures_;
  std::int64_t iterations_run_ = 0;
  double final_nll_ = 0;
  std::string stop_;
  std::optional<odir_record> odir_;
};

}  // namespace calibench
