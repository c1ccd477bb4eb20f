// Loss-trained calibrators (host/calibrators/trained/trained_fit.hpp): the analytic gradient of every base map
// under every loss against central finite differences, method-name parsing, the loss values
// against a naive evaluation, thread-count independence of the whole fit, and bad options.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/rng.hpp"
#include "host/calibrators/trained/trained_fit.hpp"

namespace calibench {
namespace {

/// ||analytic - central difference||_inf / max(1e-3, ||analytic||_inf). Step 1e-5: truncation
/// ~h^2 |f'''| ~ 1e-10, rounding ~ eps |f| / h ~ 1e-11 against gradients of size 1e-3 .. 1.
constexpr double k_gradient_rtol = 1e-6;
constexpr double k_fd_step = 1e-5;

split_data random_split(std::int64_t n, std::int64_t k, std::uint64_t seed) {
  auto rng = make_stream(seed, 0);
  split_data s;
  s.file = "random.h5";
  s.name = "val";
  s.num_samples = n;
  s.num_classes = k;
  s.values.resize(static_cast<std::size_t>(n * k));
  s.labels.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    // Over-confident logits whose top class is the label about 70 % of the time.
    const auto y = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
    s.labels[static_cast<std::size_t>(i)] = y;
    const bool right = rng.uniform() < 0.7;
    const auto top = right ? y : static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(k)));
    for (std::int64_t j = 0; j < k; ++j)
      s.values[static_cast<std::size_t>(i * k + j)] = 2.0 * rng.normal() + (j == top ? 6.0 : 0.0);
  }
  return s;
}

/// A generic point of each base's parameters (away from the start, T > 0 everywhere for pts).
trained_model random_model(const trained_method& m, std::int64_t k, std::uint64_t seed) {
  auto rng = make_stream(seed, 7);
  trained_model t;
  t.method = m;
  t.num_classes = k;
  t.temperature = 1.5 + 0.5 * rng.uniform();
  t.weights = {0.6, 0.3, 0.1};
  if (m.base == trained_base::ets_sctl) t.weights = {0.8 + 0.1 * rng.normal(), 0.2 * rng.normal(), 0.3};
  for (std::int64_t j = 0; j < k; ++j) t.temperatures.push_back(1.0 + rng.uniform());
  if (m.base == trained_base::pts || m.base == trained_base::pts_sctl) {
    // A trained network's shape with small random weights and positive output biases.
    const bool sctl = m.base == trained_base::pts_sctl;
    const std::int64_t top = std::min<std::int64_t>(10, k), h = sctl ? 2 : 5;
    std::vector<std::pair<std::int64_t, std::int64_t>> dims = {{top, h}};
    for (int l = 0; l < (sctl ? 3 : 1); ++l) dims.push_back({h, h});
    dims.push_back({h, 1});
    for (const auto& [in, out] : dims) {
      mlp_layer l;
      l.in = in;
      l.out = out;
      for (std::int64_t e = 0; e < in * out; ++e) l.weight.push_back(0.05 * rng.normal() + 0.02);
      for (std::int64_t e = 0; e < out; ++e) l.bias.push_back(0.5 + 0.2 * rng.uniform());
      t.network.push_back(l);
    }
    t.network.back().bias[0] = 2.0;
    t.top_k = top;
  }
  return t;
}

/// The flat parameters training_loss differentiates, and a setter.
std::vector<double>& flat(trained_model& t, std::vector<double>& storage, bool write) {
  const auto m = t.method;
  if (!write) {
    storage.clear();
    switch (m.base) {
      case trained_base::ts: storage = {t.temperature}; break;
      case trained_base::ets: storage = {t.weights[0], t.weights[1], t.weights[2]}; break;
      case trained_base::ets_sctl: storage = {t.temperature, t.weights[0], t.weights[1], t.weights[2]}; break;
      case trained_base::cts_nll: storage = t.temperatures; break;
      default:
        for (const auto& l : t.network) {
          storage.insert(storage.end(), l.weight.begin(), l.weight.end());
          storage.insert(storage.end(), l.bias.begin(), l.bias.end());
        }
    }
    return storage;
  }
  switch (m.base) {
    case trained_base::ts: t.temperature = storage[0]; break;
    case trained_base::ets: t.weights = {storage[0], storage[1], storage[2]}; break;
    case trained_base::ets_sctl:
      t.temperature = storage[0];
      t.weights = {storage[1], storage[2], storage[3]};
      break;
    case trained_base::cts_nll: t.temperatures = storage; break;
    default: {
      std::size_t o = 0;
      for (auto& l : t.network) {
        for (auto& w : l.weight) w = storage[o++];
        for (auto& b : l.bias) b = storage[o++];
      }
    }
  }
  return storage;
}

class TrainedGradient : public ::testing::TestWithParam<std::tuple<trained_base, trained_loss>> {};

TEST_P(TrainedGradient, MatchesCentralDifferences) {
  const auto [base, loss] = GetParam();
  const trained_method m{base, loss};
  for (const std::int64_t k : {3, 12}) {
    const split_data val = random_split(400, k, 11 + static_cast<std::uint64_t>(k));
    train_options o;
    // sctl's gradient holds the class weights constant (they are computed from detached
    // losses, as the authors' code does): with beta = 0 every weight is 0 and the loss is the
    // plain sum of class-mean losses, whose central differences the gradient must match.
    // (The torch parity suite checks the weighted case against autograd.)
    if (loss == trained_loss::sctl) o.sctl.start_beta = 0.0;
    trained_model model = random_model(m, k, 5);
    std::vector<double> grad, x, xs;
    training_loss(val, m, o, model, &grad);
    flat(model, x, false);
    ASSERT_EQ(grad.size(), x.size()) << trained_method_name(m);
    double gmax = 0, err = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      xs = x;
      xs[i] = x[i] + k_fd_step;
      trained_model up = model;
      flat(up, xs, true);
      const double fu = training_loss(val, m, o, up, nullptr);
      xs[i] = x[i] - k_fd_step;
      trained_model down = model;
      flat(down, xs, true);
      const double fd = training_loss(val, m, o, down, nullptr);
      const double numeric = (fu - fd) / (2 * k_fd_step);
      gmax = std::max(gmax, std::abs(grad[i]));
      err = std::max(err, std::abs(numeric - grad[i]));
    }
    EXPECT_LE(err / std::max(1e-3, gmax), k_gradient_rtol)
        << trained_method_name(m) << " K=" << k << ": max |analytic - numeric| = " << err << ", max |g| = " << gmax;
  }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<trained_base, trained_loss>>& info) {
  return std::string(trained_base_name(std::get<0>(info.param))) + "_" + trained_loss_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(
    AllBasesAndLosses, TrainedGradient,
    ::testing::Combine(::testing::Values(trained_base::ts, trained_base::ets, trained_base::ets_sctl,
                                         trained_base::cts_nll, trained_base::pts, trained_base::pts_sctl),
                       ::testing::Values(trained_loss::ce, trained_loss::ls, trained_loss::fl, trained_loss::lsplus,
                                         trained_loss::sctl, trained_loss::mse)),
    case_name);

TEST(TrainedFit, DetachedFocalGradientIsTheWeightedCrossEntropy) {
  // The SCTL code's focal loss: gradient of -(1 - p_y)^g l_y with the factor held constant, so
  // it differs from the central differences of the loss by the factor's own derivative.
  const split_data val = random_split(300, 5, 3);
  const trained_method m{trained_base::ts, trained_loss::fl};
  train_options full, detached;
  detached.focal_detached = true;
  trained_model model = random_model(m, 5, 1);
  std::vector<double> g_full, g_detached;
  const double f_full = training_loss(val, m, full, model, &g_full);
  const double f_detached = training_loss(val, m, detached, model, &g_detached);
  EXPECT_EQ(f_full, f_detached);  // the same loss value
  EXPECT_GT(std::abs(g_full[0] - g_detached[0]), 1e-4 * std::abs(g_full[0]));
}

TEST(TrainedFit, LossValuesMatchNaiveFormulas) {
  const split_data val = random_split(200, 4, 9);
  const std::int64_t k = 4;
  trained_model model;
  model.temperature = 1.7;
  // Naive log-softmax of z / T, float64, one row at a time.
  std::vector<std::vector<double>> l(200, std::vector<double>(4));
  for (std::int64_t i = 0; i < 200; ++i) {
    double m = -INFINITY, s = 0;
    for (std::int64_t j = 0; j < k; ++j) m = std::max(m, val.values[static_cast<std::size_t>(i * k + j)] / 1.7);
    for (std::int64_t j = 0; j < k; ++j) s += std::exp(val.values[static_cast<std::size_t>(i * k + j)] / 1.7 - m);
    for (std::int64_t j = 0; j < k; ++j)
      l[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)] =
          val.values[static_cast<std::size_t>(i * k + j)] / 1.7 - m - std::log(s);
  }
  double ce = 0, ls = 0, fl = 0, mse = 0;
  for (std::int64_t i = 0; i < 200; ++i) {
    const auto& r = l[static_cast<std::size_t>(i)];
    const auto y = static_cast<std::size_t>(val.labels[static_cast<std::size_t>(i)]);
    ce -= r[y];
    for (std::size_t j = 0; j < 4; ++j) {
      ls -= (0.05 / 4 + (j == y ? 0.95 : 0.0)) * r[j];
      const double d = std::exp(r[j]) - (j == y ? 1.0 : 0.0);
      mse += d * d / 4;
    }
    fl -= std::pow(1 - std::exp(r[y]), 3.0) * r[y];
  }
  train_options o;
  const auto value = [&](trained_loss loss) {
    model.method = {trained_base::ts, loss};
    return training_loss(val, model.method, o, model, nullptr);
  };
  EXPECT_NEAR(value(trained_loss::ce), ce / 200, 1e-12);
  EXPECT_NEAR(value(trained_loss::ls), ls / 200, 1e-12);
  EXPECT_NEAR(value(trained_loss::fl), fl / 200, 1e-12);
  EXPECT_NEAR(value(trained_loss::mse), mse / 200, 1e-12);
}

TEST(TrainedFit, ResultsDoNotDependOnTheThreadCount) {
  const split_data val = random_split(700, 6, 21);
  train_options o;
  o.iterations = 60;
  for (const char* name : {"ts+sctl", "cts_nll+fl", "ets_sctl+ls", "pts_sctl", "pts+lsplus", "ets+sctl"}) {
    const auto m = parse_trained_method(name);
    ASSERT_TRUE(m.has_value()) << name;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto one = fit_trained(val, *m, o).params();
    omp_set_num_threads(std::max(2, threads));
    const auto many = fit_trained(val, *m, o).params();
    omp_set_num_threads(threads);
    EXPECT_EQ(one.dump(), many.dump()) << name;
  }
}

TEST(TrainedFit, NamesRoundTrip) {
  for (const auto& name : trained_method_names()) {
    const auto m = parse_trained_method(name);
    ASSERT_TRUE(m.has_value()) << name;
    const auto again = parse_trained_method(trained_method_name(*m));
    ASSERT_TRUE(again.has_value()) << name;
    EXPECT_EQ(again->base, m->base);
    EXPECT_EQ(again->loss, m->loss);
  }
  EXPECT_EQ(trained_method_name(*parse_trained_method("ets_sctl+ce")), "ets_sctl");
  EXPECT_EQ(trained_method_name(*parse_trained_method("pts+mse")), "pts");
  EXPECT_FALSE(parse_trained_method("ts").has_value());
  EXPECT_FALSE(parse_trained_method("cts_nll").has_value());
  EXPECT_FALSE(parse_trained_method("ts+mse").has_value());
  EXPECT_FALSE(parse_trained_method("ts+").has_value());
  EXPECT_EQ(parse_trained_method("pts")->loss, trained_loss::mse);
  EXPECT_EQ(parse_trained_method("ets_sctl")->loss, trained_loss::ce);
}

TEST(TrainedFit, BadOptionsAndInputsAreErrors) {
  const split_data val = random_split(50, 3, 2);
  train_options o;
  o.schedule = train_schedule::on;
  o.lr = 0.1;
  EXPECT_THROW(fit_trained(val, *parse_trained_method("ts+ls"), o), input_error);
  train_options wd;
  wd.weight_decay = 0.1;
  EXPECT_THROW(fit_trained(val, *parse_trained_method("ts+ce"), wd), input_error);
  const train_options defaults;
  split_data bad = val;
  bad.values[7] = NAN;
  try {
    fit_trained(bad, *parse_trained_method("ts+ce"), defaults);
    FAIL() << "no error for a NaN logit";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 1]"), std::string::npos) << e.what();
  }
  split_data one_class = val;
  for (auto& y : one_class.labels) y = 1;
  EXPECT_THROW(fit_trained(one_class, *parse_trained_method("ts+sctl"), defaults), input_error);
}

TEST(TrainedFit, ZeroIterationsKeepTheStart) {
  const split_data val = random_split(80, 4, 4);
  train_options o;
  o.iterations = 0;
  const auto t = fit_trained(val, *parse_trained_method("cts_nll+ce"), o);
  for (double v : t.temperatures) EXPECT_EQ(v, 1.0);
  EXPECT_TRUE(t.stages.empty());
}

}  // namespace
}  // namespace calibench
