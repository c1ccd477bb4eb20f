// Loss-trained calibrators (host/calibrators/trained/trained_fit.hpp): the method names, the
// training plan of the authors' code, and the fit: a base map (host/calibrators/trained/maps.hpp)
// trained with a loss (losses.hpp) by torch's L-BFGS or Adam (optimisers.hpp), stage by stage.
// Sources of each rule: docs/calibrators.md, "Loss-trained calibrators"; the class-wise loss
// scaling code (SeungjinJung/SCTL, models/optimizer.py and models/__init__.py).
#include "host/calibrators/trained/trained_fit.hpp"

#include <nlopt.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <fstream>
#include <limits>
#include <memory>
#include <numeric>

#include <fmt/format.h>

#include "common/error.hpp"
#include "host/calibrators/trained/losses.hpp"
#include "host/calibrators/trained/maps.hpp"
#include "host/calibrators/trained/mlp.hpp"
#include "host/calibrators/trained/optimisers.hpp"

namespace calibench {
namespace {

using namespace detail;

constexpr double k_inf = std::numeric_limits<double>::infinity();

constexpr std::array<trained_base, 6> k_bases{trained_base::ts,      trained_base::ets, trained_base::ets_sctl,
                                              trained_base::cts_nll, trained_base::pts, trained_base::pts_sctl};
constexpr std::array<trained_loss, 5> k_variant_losses{trained_loss::ce, trained_loss::ls, trained_loss::fl,
                                                       trained_loss::lsplus, trained_loss::sctl};

}  // namespace

// ---- names -----------------------------------------------------------------------------------

const char* trained_base_name(trained_base b) {
  switch (b) {
    case trained_base::ts: return "ts";
    case trained_base::ets: return "ets";
    case trained_base::ets_sctl: return "ets_sctl";
    case trained_base::cts_nll: return "cts_nll";
    case trained_base::pts: return "pts";
    case trained_base::pts_sctl: return "pts_sctl";
  }
  return "?";
}

const char* trained_loss_name(trained_loss l) {
  switch (l) {
    case trained_loss::ce: return "ce";
    case trained_loss::ls: return "ls";
    case trained_loss::fl: return "fl";
    case trained_loss::lsplus: return "lsplus";
    case trained_loss::sctl: return "sctl";
    case trained_loss::mse: return "mse";
  }
  return "?";
}

std::string trained_method_name(const trained_method& m) {
  const bool plain =
      (m.base == trained_base::pts && m.loss == trained_loss::mse) ||
      ((m.base == trained_base::ets_sctl || m.base == trained_base::pts_sctl) && m.loss == trained_loss::ce);
  if (plain) return trained_base_name(m.base);
  return fmt::format("{}+{}", trained_base_name(m.base), trained_loss_name(m.loss));
}

const std::vector<std::string>& trained_method_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto b : k_bases) {
      if (b == trained_base::ets_sctl || b == trained_base::pts || b == trained_base::pts_sctl)
        v.emplace_back(trained_base_name(b));
      for (const auto l : k_variant_losses)
        v.push_back(fmt::format("{}+{}", trained_base_name(b), trained_loss_name(l)));
    }
    v.emplace_back("pts+mse");
    return v;
  }();
  return names;
}

std::optional<trained_method> parse_trained_method(std::string_view name) {
  for (const auto b : k_bases) {
    const std::string base = trained_base_name(b);
    if (name == base) {
      if (b == trained_base::pts) return trained_method{b, trained_loss::mse};
      if (b == trained_base::ets_sctl || b == trained_base::pts_sctl) return trained_method{b, trained_loss::ce};
      return std::nullopt;  // ts, ets, cts_nll: the converged fits of host/calibrators/calibrator.cpp
    }
    for (const auto l : k_variant_losses) {
      if (name == fmt::format("{}+{}", base, trained_loss_name(l))) return trained_method{b, l};
    }
  }
  if (name == "pts+mse") return trained_method{trained_base::pts, trained_loss::mse};
  return std::nullopt;
}

const char* train_schedule_name(train_schedule schedule) {
  switch (schedule) {
    case train_schedule::automatic: return "auto";
    case train_schedule::on: return "on";
    case train_schedule::off: return "off";
  }
  return "?";
}

namespace {

/// One optimiser stage of the authors' code: (lr, max_iter or steps).
struct stage_plan {
  double lr;
  std::int64_t iterations;
};

/// The stages: the ls/fl schedule (three fresh optimisers, models/optimizer.py `*_schedule`) or one.
std::vector<stage_plan> plan_stages(const trained_method& m, const train_options& o) {
  const bool given = o.lr >= 0 || o.iterations >= 0;
  bool schedule = m.loss == trained_loss::ls || m.loss == trained_loss::fl;
  if (o.schedule == train_schedule::on) {
    if (given) throw input_error("--lr and --iterations set one stage: use them with --schedule off (or auto)");
    schedule = true;
  } else if (o.schedule == train_schedule::off || given) {
    schedule = false;
  }
  if (schedule) return {{0.005, 200}, {0.003, 400}, {0.001, 400}};
  return {{o.lr >= 0 ? o.lr : 0.02, o.iterations >= 0 ? o.iterations : 1000}};
}

void check_options(const trained_method& m, const train_options& o) {
  auto positive = [](double v, const char* what) {
    if (!(v > 0) || !std::isfinite(v)) throw input_error(fmt::format("{} must be a positive number (got {})", what, v));
  };
  if (o.lr >= 0) positive(o.lr, "--lr");
  if (!(o.tolerance_grad >= 0) || !(o.tolerance_change >= 0))
    throw input_error("--tolerance-grad and --tolerance-change must be >= 0");
  if (!(o.ls_alpha >= 0 && o.ls_alpha <= 1))
    throw input_error(fmt::format("--ls-alpha must lie in [0, 1] (got {})", o.ls_alpha));
  if (!(o.fl_gamma >= 0) || !std::isfinite(o.fl_gamma))
    throw input_error(fmt::format("--fl-gamma must be >= 0 (got {})", o.fl_gamma));
  if (!(o.lsplus_weight >= 0 && o.lsplus_weight <= 1))
    throw input_error(fmt::format("--lsplus-weight must lie in [0, 1] (got {})", o.lsplus_weight));
  if (o.pts_top_k < 1 || o.pts_layers < 1 || o.pts_nodes < 1)
    throw input_error("--pts-top-k, --pts-layers and --pts-nodes must be at least 1");
  if (m.loss == trained_loss::sctl && (o.sctl.grid < 2 || o.sctl.grid > 4096))
    throw input_error(fmt::format("--sctl-grid must lie in [2, 4096] (got {})", o.sctl.grid));
  if (o.weight_decay >= 0 && !is_network(m.base))
    throw input_error(fmt::format("--weight-decay applies to pts and pts_sctl (Adam), not {}", trained_method_name(m)));
  if (!o.pts_init.empty() && !is_network(m.base))
    throw input_error(fmt::format("--pts-init applies to pts and pts_sctl, not {}", trained_method_name(m)));
}

/// Non-finite logits (log of a probability 0) have no gradient: refused, naming the first one.
void check_finite(const split_data& val, const std::vector<double>& z, const trained_method& m) {
  const std::int64_t k = val.num_classes;
  for (std::size_t i = 0; i < z.size(); ++i) {
    if (!std::isfinite(z[i]))
      throw input_error(fmt::format(
          "{}: {}: non-finite logit at [{}, {}] (log of a probability 0?): {} needs finite logits", val.file,
          val.values_path(), i / static_cast<std::size_t>(k), i % static_cast<std::size_t>(k), trained_method_name(m)));
  }
}

struct slsqp_data {
  loss_context* c;
  const std::vector<double>* a;
  const std::vector<double>* b;
  std::int64_t evaluations = 0;
  nlopt_opt opt = nullptr;
  std::exception_ptr failure;  ///< an exception of the objective, rethrown after nlopt_optimize
};

/// NLopt's objective: C frames must not be unwound, so an exception stops the run and is kept.
double ets_slsqp_objective(unsigned, const double* w, double* grad, void* data) {
  auto* d = static_cast<slsqp_data*>(data);
  ++d->evaluations;
  try {
    return loss_at_mixture(*d->c, *d->a, *d->b, w, grad, true);
  } catch (...) {
    d->failure = std::current_exception();
    nlopt_force_stop(d->opt);
    return k_inf;
  }
}

double simplex_constraint(unsigned, const double* w, double* grad, void*) {
  if (grad != nullptr) grad[0] = grad[1] = grad[2] = 1.0;
  return w[0] + w[1] + w[2] - 1.0;
}

/// The ets weights on the simplex by NLopt's SLSQP from (1, 0, 0) (Mix-n-Match fits them with
/// SciPy's SLSQP, tol 1e-12); the result is clipped to [0, 1] and renormalised to sum 1.
training_stage fit_ets_simplex(loss_context& c, const std::vector<double>& a, const std::vector<double>& b,
                               std::array<double, 3>& w) {
  constexpr int max_evaluations = 1000;
  training_stage st;
  st.parameters = std::string(1, 'w');  // not = "w": GCC 12 reports a false -Wrestrict on it here
  st.optimizer = "slsqp";
  st.iterations = max_evaluations;
  const std::unique_ptr<nlopt_opt_s, decltype(&nlopt_destroy)> opt(nlopt_create(NLOPT_LD_SLSQP, 3), &nlopt_destroy);
  if (!opt) throw error("ets: NLopt could not create an SLSQP optimiser");
  slsqp_data data{&c, &a, &b, 0, opt.get(), nullptr};
  const double lower[3] = {0, 0, 0}, upper[3] = {1, 1, 1};
  nlopt_set_lower_bounds(opt.get(), lower);
  nlopt_set_upper_bounds(opt.get(), upper);
  nlopt_set_min_objective(opt.get(), &ets_slsqp_objective, &data);
  nlopt_add_equality_constraint(opt.get(), &simplex_constraint, nullptr, 1e-12);
  nlopt_set_ftol_abs(opt.get(), 1e-12);
  nlopt_set_maxeval(opt.get(), max_evaluations);
  double x[3] = {1.0, 0.0, 0.0};
  // SLSQP needs the gradient of the value it minimises: the focal loss's full gradient, and for
  // sctl class weights held at their values at the start (1, 0, 0) for the whole phase (they are
  // recomputed from detached losses at every evaluation of the gradient-trained phases, which
  // gives a gradient of no fixed function).
  const bool detached = c.focal_detached;
  c.focal_detached = false;
  if (c.kind == trained_loss::sctl) {
    // The class losses at the start, where the mixture is a = softmax(z / t), weighed as the scaler would.
    std::vector<double> sums(static_cast<std::size_t>(c.k), 0.0);
    for (std::int64_t i = 0; i < c.n; ++i) {
      const auto y = static_cast<std::size_t>((*c.labels)[static_cast<std::size_t>(i)]);
      sums[y] -= std::log(std::max(a[static_cast<std::size_t>(i * c.k) + y], std::numeric_limits<double>::min()));
    }
    std::vector<double> losses;
    for (const std::int64_t cls : c.present)
      losses.push_back(sums[static_cast<std::size_t>(cls)] /
                       static_cast<double>(c.class_count[static_cast<std::size_t>(cls)]));
    const auto class_w = sctl_weights(sctl_normalise(losses, c.norm), c.scaler->alpha(), c.scaler->beta());
    c.frozen_scale.clear();
    for (double wi : class_w) c.frozen_scale.push_back(1.0 + wi);
  }
  st.loss_before = loss_at_mixture(c, a, b, x, nullptr, false);
  double fx = 0;
  const nlopt_result status = nlopt_optimize(opt.get(), x, &fx);
  if (data.failure) std::rethrow_exception(data.failure);
  st.stop = nlopt_status_name(status);
  double sum = 0;
  for (double& v : x) sum += (v = std::clamp(v, 0.0, 1.0));
  if (!(sum > 0)) {
    x[0] = 1;
    x[1] = x[2] = 0;
    sum = 1;
  }
  for (int q = 0; q < 3; ++q) w[static_cast<std::size_t>(q)] = x[q] / sum;
  st.evaluations = data.evaluations;
  st.iterations_run = data.evaluations;
  st.loss_after = loss_at_mixture(c, a, b, w.data(), nullptr, false);
  c.focal_detached = detached;
  return st;
}

/// The loss context of a training run on `val` (lsplus priors, sctl classes and scaler).
std::unique_ptr<loss_context> make_context(const split_data& val, const trained_method& m, const train_options& o) {
  auto c = std::make_unique<loss_context>();
  const std::int64_t k = val.num_classes;
  c->kind = m.loss;
  c->n = val.num_samples;
  c->k = k;
  c->labels = &val.labels;
  c->ls_alpha = o.ls_alpha;
  c->fl_gamma = o.fl_gamma;
  c->focal_detached = o.focal_detached;
  c->lsplus_weight = o.lsplus_weight;
  if (m.loss == trained_loss::lsplus) {
    for (const auto& p : compute_lsplus_priors(val, o.lsplus_rule).classes) {
      c->prior_true.push_back(p.prior_true);
      c->prior_other.push_back(p.prior_other);
      double h = 0;
      if (p.prior_true > 0) h += p.prior_true * std::log(p.prior_true);
      if (p.prior_other > 0) h += static_cast<double>(k - 1) * p.prior_other * std::log(p.prior_other);
      c->prior_entropy.push_back(h);
    }
  }
  if (m.loss == trained_loss::sctl) {
    c->class_count.assign(static_cast<std::size_t>(k), 0);
    for (const auto y : val.labels) ++c->class_count[static_cast<std::size_t>(y)];
    for (std::int64_t cls = 0; cls < k; ++cls)
      if (c->class_count[static_cast<std::size_t>(cls)] > 0) c->present.push_back(cls);
    if (c->present.size() < 2)
      throw input_error(fmt::format("{}: {}: +sctl needs validation samples of at least 2 classes ({} present)",
                                    val.file, val.values_path(), c->present.size()));
    c->norm = o.sctl.norm;
    c->scaler = std::make_unique<sctl_scaler>(o.sctl);
  }
  return c;
}

/// Logits of a split as double (log p for probability dumps), checked finite.
std::vector<double> finite_logits(const split_data& val, const trained_method& m) {
  std::vector<double> z = val.values;
  if (val.is_probs) {
    for (double& x : z) x = std::log(x);
  }
  check_finite(val, z, m);
  return z;
}

/// The network of pts/pts_sctl before training: --pts-init, or the seeded default.
std::vector<mlp_layer> initial_network(const trained_method& m, std::int64_t top, const train_options& o) {
  std::vector<mlp_layer> net = network_shape(m.base, top, o);
  if (o.pts_init.empty()) {
    network_init(net, m.base, o.seed);
    return net;
  }
  std::ifstream in(o.pts_init);
  if (!in) throw input_error(fmt::format("{}: cannot open --pts-init file", o.pts_init));
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw input_error(fmt::format("{}: not JSON ({})", o.pts_init, e.what()));
  }
  return network_from_json(j, net, o.pts_init);
}

/// One training run: the validation logits, the loss context and the map's inputs, the
/// model as it is trained.
struct trainer {
  const split_data& val;
  const trained_method& m;
  const train_options& o;
  std::vector<double> z;
  std::vector<stage_plan> stages;
  std::unique_ptr<loss_context> context;
  map_inputs in;
  std::vector<mlp_layer> work;  ///< the network's shape, for map_loss
  trained_model model;

  trainer(const split_data& split, const trained_method& method, const train_options& options)
      : val(split),
        m(method),
        o(options),
        z(finite_logits(split, method)),
        stages(plan_stages(method, options)),
        context(make_context(split, method, options)) {
    const std::int64_t n = val.num_samples, k = val.num_classes;
    model.method = m;
    model.num_classes = k;
    model.ls_alpha = o.ls_alpha;
    model.fl_gamma = o.fl_gamma;
    model.focal_detached = o.focal_detached;
    model.lsplus_weight = o.lsplus_weight;
    model.lsplus_prior = context->prior_true;
    if (m.loss == trained_loss::sctl) {
      model.sctl_classes = context->present;
      model.sctl_normalisation = o.sctl.norm;
      model.sctl_solver = o.sctl.solver == sctl_solver::slsqp ? "slsqp" : "grid";
    }
    in.z = &z;
    in.n = n;
    in.k = k;
    if (is_network(m.base)) {
      in.top = std::min(o.pts_top_k, k);
      in.features = network_features(m.base, z, n, k, in.top);
      model.top_k = in.top;
      model.network = initial_network(m, in.top, o);
      model.weight_decay = o.weight_decay >= 0 ? o.weight_decay : (m.base == trained_base::pts ? 0.002 : 0.0);
      work = model.network;
    }
  }

  /// One optimiser run per stage over the parameters `free` of the map's full vector `full`
  /// (the others fixed), as the authors' code runs one optimiser per phase.
  void train(std::vector<double>& full, const std::vector<std::size_t>& free, trained_base map, const char* what) {
    std::vector<double> x;
    for (const auto i : free) x.push_back(full[i]);
    const closure_fn f = [&](const std::vector<double>& xs, std::vector<double>& g) {
      std::vector<double> at = full, gf;
      for (std::size_t q = 0; q < free.size(); ++q) at[free[q]] = xs[q];
      const double value = map_loss(*context, map, in, at, &gf, true, work);
      g.resize(free.size());
      for (std::size_t q = 0; q < free.size(); ++q) g[q] = gf[free[q]];
      return value;
    };
    for (const auto& s : stages) {
      if (s.iterations == 0) continue;
      auto st = is_network(map) ? torch_adam(x, s.lr, s.iterations, model.weight_decay, f)
                                : torch_lbfgs(x, s.lr, s.iterations, o.tolerance_grad, o.tolerance_change, f);
      st.parameters = what;
      if (st.stop == "non_finite")
        throw input_error(fmt::format(
            "{}: {} diverged: the training loss or its gradient is not finite in stage {} "
            "({} of {}, lr {}, evaluation {}); try a smaller --lr or another start",
            val.file, trained_method_name(m), model.stages.size() + 1, st.optimizer, what, st.lr, st.evaluations));
      model.stages.push_back(st);
    }
    for (std::size_t q = 0; q < free.size(); ++q) full[free[q]] = x[q];
    for (double v : x) {
      if (!std::isfinite(v))
        throw input_error(fmt::format("{}: {} diverged (non-finite parameters); try a smaller --lr", val.file,
                                      trained_method_name(m)));
    }
  }

  /// Trains the base map's parameters; returns them as map_loss reads them.
  std::vector<double> train_base() {
    const auto all = [](std::size_t size) {
      std::vector<std::size_t> v(size);
      std::iota(v.begin(), v.end(), std::size_t{0});
      return v;
    };
    std::vector<double> full;
    switch (m.base) {
      case trained_base::ts:
      case trained_base::ets:
        full = {1.0};
        train(full, {0}, trained_base::ts, "t");
        model.temperature = full[0];
        break;
      case trained_base::ets_sctl:
        full = {1.0, 1.0, 0.0, 0.0};
        train(full, {0}, m.base, "t");
        train(full, {1, 2, 3}, m.base, "w");
        model.temperature = full[0];
        model.weights = {full[1], full[2], full[3]};
        break;
      case trained_base::cts_nll:
        full.assign(static_cast<std::size_t>(val.num_classes), 1.0);
        train(full, all(full.size()), m.base, "T");
        model.temperatures = full;
        break;
      case trained_base::pts:
      case trained_base::pts_sctl:
        full = network_flat(model.network);
        train(full, all(full.size()), m.base, "network");
        network_unflat(model.network, full);
        break;
    }
    return full;
  }

  /// A temperature map must end with t > 0 (t <= 0 reverses or flattens every row: torch would
  /// return it silently), and per-class temperatures must not be 0 (negative ones are counted).
  void check_temperatures() {
    if ((m.base == trained_base::ts || m.base == trained_base::ets || m.base == trained_base::ets_sctl) &&
        !(model.temperature > 0))
      throw input_error(
          fmt::format("{}: {} ended at t = {} <= 0, which reverses or flattens every prediction; try a "
                      "smaller --lr",
                      val.file, trained_method_name(m), model.temperature));
    if (m.base != trained_base::cts_nll) return;
    for (std::size_t j = 0; j < model.temperatures.size(); ++j) {
      if (model.temperatures[j] == 0)
        throw input_error(
            fmt::format("{}: {} ended with T_{} = 0; try a smaller --lr", val.file, trained_method_name(m), j));
      if (model.temperatures[j] < 0) ++model.nonpositive_temperatures;
    }
  }

  /// The final training loss (ets: after its simplex weights are fitted).
  void finish_loss(const std::vector<double>& full) {
    const std::int64_t n = val.num_samples, k = val.num_classes;
    if (m.base == trained_base::ets) {
      const auto a = softmax_rows(z, n, k, 1.0 / model.temperature);
      const auto b = softmax_rows(z, n, k, 1.0);
      model.stages.push_back(fit_ets_simplex(*context, a, b, model.weights));
      model.final_loss = loss_at_mixture(*context, a, b, model.weights.data(), nullptr, false);
    } else {
      model.final_loss = map_loss(*context, m.base, in, full, nullptr, false, work);
    }
    if (!model.stages.empty() && model.stages.back().optimizer != "slsqp")
      model.stages.back().loss_after = model.final_loss;
  }

  /// pts, pts_sctl: min, median and max of T(x) on the validation split.
  void network_temperatures() {
    std::vector<double> raw_t;
    network_logits(m.base, model.network, z, in.features, val.num_samples, val.num_classes, in.top, &raw_t);
    std::vector<double> temps(raw_t.size());
    for (std::size_t i = 0; i < raw_t.size(); ++i) {
      temps[i] = temperature_of(m.base, raw_t[i]);
      if (raw_t[i] <= 0) ++model.nonpositive_temperatures;
    }
    std::sort(temps.begin(), temps.end());
    model.temperature_range = {temps.front(), temps[temps.size() / 2], temps.back()};
  }
};

}  // namespace

trained_model fit_trained(const split_data& val, const trained_method& m, const train_options& o) {
  check_options(m, o);
  if (val.num_samples < 1 || val.num_classes < 2)
    throw input_error(fmt::format("{}: {} needs samples and K >= 2", val.file, trained_method_name(m)));
  trainer t(val, m, o);
  const std::vector<double> full = t.train_base();
  t.check_temperatures();
  t.finish_loss(full);
  if (is_network(m.base)) t.network_temperatures();
  if (!std::isfinite(t.model.final_loss))
    throw input_error(
        fmt::format("{}: {} ended with a non-finite training loss (a temperature of 0?); try a smaller "
                    "--lr or another start",
                    val.file, trained_method_name(m)));
  if (t.context->scaler && t.context->scaler->fitted()) t.model.sctl = t.context->scaler->fit();
  return std::move(t.model);
}

double training_loss(const split_data& val, const trained_method& m, const train_options& o, const trained_model& model,
                     std::vector<double>* gradient) {
  check_options(m, o);
  const std::vector<double> z = finite_logits(val, m);
  const auto context = make_context(val, m, o);
  const std::int64_t n = val.num_samples, k = val.num_classes;
  if (m.base == trained_base::ets) {
    const auto a = softmax_rows(z, n, k, 1.0 / model.temperature);
    const auto b = softmax_rows(z, n, k, 1.0);
    if (gradient != nullptr) gradient->assign(3, 0.0);
    return loss_at_mixture(*context, a, b, model.weights.data(), gradient != nullptr ? gradient->data() : nullptr,
                           false);
  }
  map_inputs in;
  in.z = &z;
  in.n = n;
  in.k = k;
  std::vector<mlp_layer> work = model.network;
  std::vector<double> x;
  switch (m.base) {
    case trained_base::ts: x = {model.temperature}; break;
    case trained_base::ets_sctl: x = {model.temperature, model.weights[0], model.weights[1], model.weights[2]}; break;
    case trained_base::cts_nll: x = model.temperatures; break;
    default:
      in.top = model.top_k;
      in.features = network_features(m.base, z, n, k, in.top);
      x = network_flat(model.network);
      break;
  }
  return map_loss(*context, m.base, in, x, gradient, false, work);
}

}  // namespace calibench
