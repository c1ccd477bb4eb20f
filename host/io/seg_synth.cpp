// The synthetic segmentation dump (host/io/seg_synth.hpp). Each image's random numbers come
// from streams of the seed named by the image and the domain, so images are independent of
// the number of images written.
#include "host/io/seg_synth.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/rng.hpp"
#include "host/io/seg_dump.hpp"

namespace calibench {
namespace {

/// The domains: val and test are clean; the perturbed test domains reuse the test images and
/// labels and perturb only the network's logits.
enum class domain_kind { clean, noise, bias_field, shift };
struct domain {
  const char* name;
  domain_kind kind;
};
constexpr domain k_domains[] = {{"val", domain_kind::clean},
                                {"test", domain_kind::clean},
                                {"test_noise", domain_kind::noise},
                                {"test_bias_field", domain_kind::bias_field},
                                {"test_shift", domain_kind::shift}};

struct group_data {
  std::vector<float> logits, temperature, augmented;
  std::vector<std::int32_t> labels;
};

/// The true logits of one image: class c >= 1 is an ellipse whose true logit is (1 - its
/// normalised radius) x size / boundary; the background's is 0.
void blob_truth(splitmix64& shapes, const seg_synth_options& o, std::vector<double>& truth) {
  const std::int64_t k = o.classes, h = o.height, w = o.width, hw = h * w;
  std::fill(truth.begin(), truth.end(), 0.0);
  for (std::int64_t c = 1; c < k; ++c) {
    const double cy = (0.2 + 0.6 * shapes.uniform()) * static_cast<double>(h);
    const double cx = (0.2 + 0.6 * shapes.uniform()) * static_cast<double>(w);
    const double ry = (0.08 + 0.15 * shapes.uniform()) * static_cast<double>(h);
    const double rx = (0.08 + 0.15 * shapes.uniform()) * static_cast<double>(w);
    for (std::int64_t i = 0; i < h; ++i) {
      for (std::int64_t j = 0; j < w; ++j) {
        const double dy = (static_cast<double>(i) - cy) / ry, dx = (static_cast<double>(j) - cx) / rx;
        const double radius = std::sqrt(dy * dy + dx * dx);
        truth[c * hw + i * w + j] = (1.0 - radius) * std::min(rx, ry) / o.boundary;
      }
    }
  }
}

/// Labels drawn from the true probabilities: blurred boundaries are genuinely uncertain.
void draw_labels(splitmix64& draws, const std::vector<double>& truth, std::int64_t k, std::int64_t hw,
                 std::int32_t* labels) {
  for (std::int64_t px = 0; px < hw; ++px) {
    double top = truth[px];
    for (std::int64_t c = 1; c < k; ++c) top = std::max(top, truth[c * hw + px]);
    double sum = 0;
    for (std::int64_t c = 0; c < k; ++c) sum += std::exp(truth[c * hw + px] - top);
    double u = draws.uniform() * sum;
    std::int32_t label = static_cast<std::int32_t>(k - 1);
    for (std::int64_t c = 0; c < k; ++c) {
      u -= std::exp(truth[c * hw + px] - top);
      if (u < 0) {
        label = static_cast<std::int32_t>(c);
        break;
      }
    }
    labels[px] = label;
  }
}

/// The network's logits of image b (over-confident by o.temperature, per-pixel noise, the
/// domain's perturbation), then its stored temperature map and augmented logits, in this
/// order from one stream.
void network_image(splitmix64& noise, const seg_synth_options& o, domain_kind kind, std::int64_t b,
                   const std::vector<double>& truth, group_data& gd) {
  const std::int64_t k = o.classes, h = o.height, w = o.width, hw = h * w, a_count = o.augmentations;
  const double phase = 6.283185307179586 * noise.uniform();
  for (std::int64_t c = 0; c < k; ++c) {
    for (std::int64_t i = 0; i < h; ++i) {
      for (std::int64_t j = 0; j < w; ++j) {
        std::int64_t si = i, sj = j;
        if (kind == domain_kind::shift) {  // logits misregistered by 3 pixels
          si = std::min(h - 1, i + 3);
          sj = std::min(w - 1, j + 3);
        }
        double v = o.temperature * truth[c * hw + si * w + sj] + 0.3 * noise.normal();
        if (kind == domain_kind::noise) v += 1.5 * noise.normal();
        if (kind == domain_kind::bias_field)
          v *= 1.0 + 0.6 * std::sin(phase + 3.0 * static_cast<double>(i) / static_cast<double>(h)) *
                         std::cos(2.0 * static_cast<double>(j) / static_cast<double>(w));
        gd.logits[(b * k + c) * hw + i * w + j] = static_cast<float>(v);
      }
    }
  }
  // Stored temperature map: the known over-confidence with 10% multiplicative noise.
  for (std::int64_t px = 0; px < hw; ++px)
    gd.temperature[b * hw + px] = static_cast<float>(o.temperature * std::exp(0.1 * noise.normal()));
  // Augmented logits: the network's logits under small perturbations.
  for (std::int64_t a = 0; a < a_count; ++a) {
    for (std::int64_t c = 0; c < k; ++c) {
      for (std::int64_t px = 0; px < hw; ++px) {
        gd.augmented[((b * a_count + a) * k + c) * hw + px] =
            gd.logits[(b * k + c) * hw + px] + static_cast<float>(0.8 * noise.normal());
      }
    }
  }
}

group_data domain_data(const seg_synth_options& o, std::size_t d) {
  const std::int64_t k = o.classes, hw = o.height * o.width, b_count = o.images;
  group_data gd;
  gd.logits.resize(static_cast<std::size_t>(b_count * k * hw));
  gd.labels.resize(static_cast<std::size_t>(b_count * hw));
  gd.temperature.resize(static_cast<std::size_t>(b_count * hw));
  gd.augmented.resize(static_cast<std::size_t>(b_count * o.augmentations * k * hw));
  // val and test images differ (different streams); the perturbed domains reuse the test's.
  const std::uint64_t image_stream = d == 0 ? 0 : 1;
  std::vector<double> truth(static_cast<std::size_t>(k * hw));
  for (std::int64_t b = 0; b < b_count; ++b) {
    auto shapes = make_stream(o.seed, image_stream * 1000003 + static_cast<std::uint64_t>(b));
    blob_truth(shapes, o, truth);
    auto draws = make_stream(o.seed, 2000003 + image_stream * 1000003 + static_cast<std::uint64_t>(b));
    draw_labels(draws, truth, k, hw, gd.labels.data() + b * hw);
    auto noise = make_stream(o.seed, 4000003 + d * 1000003 + static_cast<std::uint64_t>(b));
    network_image(noise, o, k_domains[d].kind, b, truth, gd);
  }
  return gd;
}

}  // namespace

void write_seg_synth_dump(const std::string& path, const seg_synth_options& o) {
  if (o.classes < 2) throw input_error(fmt::format("--classes {} must be at least 2", o.classes));
  if (o.images < 1 || o.height < 4 || o.width < 4)
    throw input_error(
        fmt::format("--images {} --height {} --width {}: need at least 1 image of 4 x 4", o.images, o.height, o.width));
  std::vector<group_data> data;
  for (std::size_t d = 0; d < std::size(k_domains); ++d) data.push_back(domain_data(o, d));
  std::vector<seg_group_to_write> groups;
  for (std::size_t d = 0; d < std::size(k_domains); ++d) {
    seg_group_to_write g;
    g.name = k_domains[d].name;
    g.images = o.images;
    g.height = o.height;
    g.width = o.width;
    g.logits = data[d].logits.data();
    g.labels = data[d].labels.data();
    g.temperature = data[d].temperature.data();
    if (o.augmentations > 0) {
      g.augmented = data[d].augmented.data();
      g.augmentations = o.augmentations;
    }
    groups.push_back(g);
  }
  write_segmentation_dump(
      path,
      {{"dataset", "calibench synth --segmentation"},
       {"model", fmt::format("synthetic: over-confidence T = {}, boundary {} px", o.temperature, o.boundary)},
       {"source", fmt::format("calibench synth --segmentation --seed {}", o.seed)}},
      o.classes, groups);
}

}  // namespace calibench
