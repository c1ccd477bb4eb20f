// Synthetic dumps with known truth. Rows are generated in fixed-size chunks, each from its
// own generator stream, so the output depends only on the options, not on thread count.
#include "host/io/synth.hpp"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/parallel.hpp"
#include "common/rng.hpp"
#include "host/io/dump.hpp"

namespace calibench {
namespace {

/// Rows per generator stream.
constexpr std::int64_t k_rows_per_stream = 1024;

struct generated_split {
  std::vector<float> logits;
  std::vector<float> true_probs;
  std::vector<std::int32_t> labels;
};

generated_split generate_split(const synth_options& o, std::int64_t n, std::uint64_t split_id,
                               const std::vector<double>& scale, const std::vector<double>& bias) {
  const std::int64_t k = o.num_classes;
  generated_split g;
  g.logits.resize(static_cast<std::size_t>(n * k));
  g.true_probs.resize(static_cast<std::size_t>(n * k));
  g.labels.resize(static_cast<std::size_t>(n));
  const std::int64_t streams = (n + k_rows_per_stream - 1) / k_rows_per_stream;
  thread_errors errors;
#pragma omp parallel
  {
    std::vector<double> t, p;
    errors.run([&] {
      t.resize(static_cast<std::size_t>(k));
      p.resize(static_cast<std::size_t>(k));
    });
    const bool ready = p.size() == static_cast<std::size_t>(k);
#pragma omp for schedule(static)
    for (std::int64_t c = 0; c < streams; ++c) {
      if (!ready) continue;  // this thread could not allocate: errors.rethrow() below
      auto rng = make_stream(o.seed ^ (split_id << 56), static_cast<std::uint64_t>(c));
      const std::int64_t end = std::min(n, (c + 1) * k_rows_per_stream);
      for (std::int64_t i = c * k_rows_per_stream; i < end; ++i) {
        double m = -INFINITY;
        for (std::int64_t j = 0; j < k; ++j) {
          t[j] = o.logit_scale * rng.normal();
          m = std::max(m, t[j]);
        }
        double sum = 0;
        for (std::int64_t j = 0; j < k; ++j) sum += (p[j] = std::exp(t[j] - m));
        // Label drawn from the true probabilities by inversion.
        const double u = rng.uniform() * sum;
        std::int64_t y = k - 1;
        double acc = 0;
        for (std::int64_t j = 0; j < k; ++j) {
          acc += p[j];
          if (u < acc) {
            y = j;
            break;
          }
        }
        g.labels[i] = static_cast<std::int32_t>(y);
        for (std::int64_t j = 0; j < k; ++j) {
          g.true_probs[i * k + j] = static_cast<float>(p[j] / sum);
          g.logits[i * k + j] = static_cast<float>(scale[j] * t[j] + bias[j]);
        }
      }
    }
  }
  errors.rethrow();
  return g;
}

}  // namespace

void write_synth_dump(const std::string& path, const synth_options& o) {
  if (o.num_classes < 2) throw input_error(fmt::format("--classes must be at least 2 (got {})", o.num_classes));
  if (o.n_val < 1 || o.n_test < 1) throw input_error("--n-val and --n-test must be at least 1");
  if (!(o.logit_scale > 0) || !(o.temperature > 0) || !(o.class_distortion >= 0) || !(o.class_bias >= 0))
    throw input_error("--logit-scale and --temperature must be > 0, distortions >= 0");
  const std::int64_t k = o.num_classes;

  // Per-class distortion, drawn once per dump from its own stream.
  auto rng = make_stream(o.seed, 0xC1A55ULL << 32);
  std::vector<double> scale(static_cast<std::size_t>(k)), bias(static_cast<std::size_t>(k));
  for (std::int64_t j = 0; j < k; ++j) {
    scale[j] = o.temperature * std::exp(o.class_distortion * rng.normal());
    bias[j] = o.class_bias * rng.normal();
  }
  const auto val = generate_split(o, o.n_val, 1, scale, bias);
  const auto test = generate_split(o, o.n_test, 2, scale, bias);

  const std::map<std::string, std::string> text{
      {"dataset", fmt::format("synth-k{}", k)},
      {"model", "calibench synth (known-truth generator, docs/synth.md)"},
      {"source",
       fmt::format("calibench synth --classes {} --n-val {} --n-test {} --seed {} --logit-scale {} "
                   "--temperature {} --class-distortion {} --class-bias {}",
                   k, o.n_val, o.n_test, o.seed, o.logit_scale, o.temperature, o.class_distortion, o.class_bias)},
  };
  const std::map<std::string, double> numbers{
      {"synth_logit_scale", o.logit_scale},           {"synth_temperature", o.temperature},
      {"synth_class_distortion", o.class_distortion}, {"synth_class_bias", o.class_bias},
      {"synth_seed", static_cast<double>(o.seed)},
  };
  write_dump(path, text, numbers, k,
             {{"val", o.n_val, k, val.logits.data(), val.labels.data(), val.true_probs.data()},
              {"test", o.n_test, k, test.logits.data(), test.labels.data(), test.true_probs.data()}},
             {{"/truth/class_scale", scale}, {"/truth/class_bias", bias}});
}

}  // namespace calibench
