// Segmentation calibration at pixel scale (docs/segmentation.md). Every image is scored by
// its own accumulator (parallel over images), and accumulators are merged in image order, so
// results do not depend on the thread count.
#include "host/segmentation/segmentation.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common/error.hpp"
#include "common/parallel.hpp"
#include "common/progress.hpp"
#include "common/rng.hpp"
#include "host/calibrators/registry.hpp"
#include "host/calibrators/temperature_scaling.hpp"
#include "host/sweep/backend.hpp"

namespace calibench {
namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

/// Sums of one (method, group), or of one image before merging.
struct seg_accumulator {
  std::int64_t slots = 0, classes = 0;
  std::vector<bin_stats> top;        ///< top-label slots
  std::vector<bin_stats> classwise;  ///< K x slots: count, sum p_k, sum [y = k]
  std::vector<std::int64_t> tp, fp, fn;
  std::int64_t roi_pixels = 0, pixels = 0;
  double correct = 0, nll = 0, brier = 0;

  void reset(std::int64_t k, std::int64_t s) {
    classes = k;
    slots = s;
    top.assign(static_cast<std::size_t>(s), bin_stats{});
    classwise.assign(static_cast<std::size_t>(k * s), bin_stats{});
    tp.assign(static_cast<std::size_t>(k), 0);
    fp.assign(static_cast<std::size_t>(k), 0);
    fn.assign(static_cast<std::size_t>(k), 0);
    roi_pixels = pixels = 0;
    correct = nll = brier = 0;
  }
  void merge(const seg_accumulator& o) {
    const auto add = [](std::vector<bin_stats>& a, const std::vector<bin_stats>& b) {
      for (std::size_t i = 0; i < a.size(); ++i) {
        a[i].count += b[i].count;
        a[i].sum_confidence += b[i].sum_confidence;
        a[i].sum_correct += b[i].sum_correct;
      }
    };
    add(top, o.top);
    add(classwise, o.classwise);
    for (std::size_t j = 0; j < tp.size(); ++j) {
      tp[j] += o.tp[j];
      fp[j] += o.fp[j];
      fn[j] += o.fn[j];
    }
    roi_pixels += o.roi_pixels;
    pixels += o.pixels;
    correct += o.correct;
    nll += o.nll;
    brier += o.brier;
  }
};

/// How a method turns a pixel's stored scores into probabilities.
enum class seg_method { uncalibrated, ts, temperature_map, augmented_mean };

seg_method parse_method(const std::string& name) {
  if (name == "uncalibrated") return seg_method::uncalibrated;
  if (name == "ts") return seg_method::ts;
  if (name == "temperature-map") return seg_method::temperature_map;
  if (name == "augmented-mean") return seg_method::augmented_mean;
  throw input_error(
      fmt::format("--methods: unknown method '{}' (uncalibrated, ts, temperature-map, augmented-mean)", name));
}

/// The ROI of one image under the options.
std::vector<std::uint8_t> image_roi(const seg_image& img, const seg_group& g, const seg_eval_options& o) {
  if (o.roi == "stored") {
    std::vector<std::uint8_t> roi(img.roi.size());
    for (std::size_t i = 0; i < roi.size(); ++i) roi[i] = img.roi[i] != 0 ? 1 : 0;
    return roi;
  }
  if (o.roi == "all") return std::vector<std::uint8_t>(static_cast<std::size_t>(g.height * g.width), 1);
  return dilate_foreground(img.labels.data(), g.height, g.width, o.background, o.roi_dilation);
}

/// Scores every pixel of one image under one method into `acc`. `temperature` is the fitted
/// ts temperature; stored temperature maps and augmented logits come with the image.
void score_image(const seg_image& img, const std::vector<std::uint8_t>& roi, const seg_group& g, seg_method method,
                 double temperature, const metric_options& mo, seg_accumulator& acc) {
  const std::int64_t k = g.classes, hw = g.height * g.width;
  const std::int32_t m = mo.num_bins;
  const binning rule = mo.bin_rule, class_rule = mo.classwise_binning();
  const bool clip = mo.nll_clip > 0;
  const double log_lo = clip ? std::log(mo.nll_clip) : 0.0, log_hi = clip ? std::log(1.0 - mo.nll_clip) : 0.0;
  std::vector<double> z(static_cast<std::size_t>(k)), p(static_cast<std::size_t>(k));
  for (std::int64_t px = 0; px < hw; ++px) {
    // The pixel's logits after the method (probability inputs: z = log p, as the calibrators do).
    const bool as_probs = g.is_probs && method == seg_method::uncalibrated;
    for (std::int64_t c = 0; c < k; ++c) {
      double v = img.values[c * hw + px];
      if (g.is_probs && !as_probs && method != seg_method::augmented_mean) v = std::log(v);
      switch (method) {
        case seg_method::ts: v *= 1.0 / temperature; break;
        case seg_method::temperature_map: {
          const std::int64_t channel = g.temperature_channels == 1 ? 0 : c;
          v *= 1.0 / img.temperature[channel * hw + px];
          break;
        }
        case seg_method::augmented_mean: {
          double sum = 0;
          for (std::int64_t a = 0; a < g.augmentations; ++a) sum += img.augmented[(a * k + c) * hw + px];
          v = sum / static_cast<double>(g.augmentations);
          break;
        }
        case seg_method::uncalibrated: break;
      }
      z[c] = v;
    }
    std::int32_t pred = 0;
    for (std::int64_t c = 1; c < k; ++c) {
      if (z[c] > z[pred]) pred = static_cast<std::int32_t>(c);
    }
    const std::int32_t y = img.labels[px];
    double confidence = 0, log_p_label = 0;
    if (as_probs) {
      for (std::int64_t c = 0; c < k; ++c) p[c] = z[c];
      confidence = p[pred];
      log_p_label = std::log(p[y]);
    } else {
      const double top = z[pred];
      double sum = 0;
      for (std::int64_t c = 0; c < k; ++c) {
        p[c] = std::exp(z[c] - top);
        sum += p[c];
      }
      for (std::int64_t c = 0; c < k; ++c) p[c] /= sum;
      confidence = 1.0 / sum;
      log_p_label = z[y] - top - std::log(sum);
    }
    const bool hit = pred == y;
    acc.pixels += 1;
    if (hit) {
      acc.tp[pred] += 1;
    } else {
      acc.fp[pred] += 1;
      acc.fn[y] += 1;
    }
    if (roi[px] == 0) continue;

    acc.roi_pixels += 1;
    acc.correct += hit ? 1.0 : 0.0;
    acc.nll -= clip ? std::clamp(log_p_label, log_lo, log_hi) : log_p_label;
    if (mo.brier == brier_rule::top_label) {
      const double d = confidence - (hit ? 1.0 : 0.0);
      acc.brier += d * d;
    } else {
      double b = 0;
      for (std::int64_t c = 0; c < k; ++c) {
        const double d = p[c] - (c == y ? 1.0 : 0.0);
        b += d * d;
      }
      acc.brier += mo.brier == brier_rule::per_class_mean ? b / static_cast<double>(k) : b;
    }
    if (const std::int32_t s = bin_index(rule, confidence, m); s >= 0) {
      auto& bin = acc.top[static_cast<std::size_t>(s)];
      bin.count += 1;
      bin.sum_confidence += confidence;
      bin.sum_correct += hit ? 1.0 : 0.0;
    }
    for (std::int64_t c = 0; c < k; ++c) {
      const std::int32_t s = bin_index(class_rule, p[c], m);
      if (s < 0) continue;
      auto& bin = acc.classwise[static_cast<std::size_t>(c * acc.slots + s)];
      bin.count += 1;
      bin.sum_confidence += p[c];
      bin.sum_correct += c == y ? 1.0 : 0.0;
    }
  }
}

seg_metrics finish(const seg_accumulator& acc, const metric_options& mo, bool reliability) {
  seg_metrics r;
  r.roi_pixels = acc.roi_pixels;
  r.pixels = acc.pixels;
  const std::int64_t k = acc.classes;
  r.dice.resize(static_cast<std::size_t>(k));
  double dice_sum = 0;
  std::int64_t dice_classes = 0;
  for (std::int64_t c = 0; c < k; ++c) {
    const auto denominator = 2 * acc.tp[c] + acc.fp[c] + acc.fn[c];
    r.dice[c] = denominator > 0 ? 2.0 * static_cast<double>(acc.tp[c]) / static_cast<double>(denominator) : k_nan;
    if (c != 0 && denominator > 0) {
      dice_sum += r.dice[c];
      dice_classes += 1;
    }
  }
  r.mean_dice = dice_classes > 0 ? dice_sum / static_cast<double>(dice_classes) : k_nan;
  if (reliability) r.reliability = acc.top;  // every slot, empty ones included
  if (acc.roi_pixels == 0) {
    r.accuracy = r.ece = r.mce = r.sce = r.nll = r.brier = k_nan;
    return r;
  }
  const double n = static_cast<double>(acc.roi_pixels);
  r.accuracy = acc.correct / n;
  r.nll = acc.nll / n;
  r.brier = acc.brier / n;
  for (const auto& b : acc.top) {
    if (b.count == 0) continue;
    const double cnt = static_cast<double>(b.count);
    r.ece += std::fabs(b.sum_correct - b.sum_confidence);
    r.mce = std::max(r.mce, std::fabs(b.sum_correct / cnt - b.sum_confidence / cnt));
  }
  r.ece /= n;
  for (std::int64_t c = 0; c < k; ++c) {
    double ece = 0;
    for (std::int64_t s = 0; s < acc.slots; ++s) {
      const auto& b = acc.classwise[static_cast<std::size_t>(c * acc.slots + s)];
      ece += std::fabs(b.sum_correct - b.sum_confidence);
    }
    r.sce += ece / n;
  }
  if (mo.reduction == classwise_reduction::mean) r.sce /= static_cast<double>(k);
  return r;
}

/// The ROI pixels of a group as a classification split (N_roi x K), for the ts fit.
split_data roi_pixels(seg_reader& reader, const seg_group& g, const seg_eval_options& o) {
  split_data s;
  s.file = reader.layout().file;
  s.name = g.name;
  s.num_classes = g.classes;
  s.is_probs = g.is_probs;
  s.value_type = g.value_type;
  const std::int64_t hw = g.height * g.width;
  seg_image img;
  for (std::int64_t b = 0; b < g.images; ++b) {
    reader.read(g, b, img, o.roi == "stored", false, false);
    const auto roi = image_roi(img, g, o);
    for (std::int64_t px = 0; px < hw; ++px) {
      if (roi[px] == 0) continue;
      for (std::int64_t c = 0; c < g.classes; ++c) s.values.push_back(img.values[c * hw + px]);
      s.labels.push_back(img.labels[px]);
    }
  }
  s.num_samples = static_cast<std::int64_t>(s.labels.size());
  return s;
}

}  // namespace

std::vector<std::uint8_t> dilate_foreground(const std::int32_t* labels, std::int64_t height, std::int64_t width,
                                            std::int32_t background, std::int32_t radius) {
  CALIBENCH_EXPECTS(radius >= 0 && height >= 1 && width >= 1, "bad dilation");
  // Separable: a pixel is in the ROI when its row window of the column-dilated mask holds a
  // foreground pixel. Sliding-window counts make each pass O(H W) whatever the radius.
  const std::int64_t r = radius;
  std::vector<std::int32_t> cols(static_cast<std::size_t>(height * width), 0);
  for (std::int64_t j = 0; j < width; ++j) {
    std::int64_t count = 0;
    for (std::int64_t i = 0; i < std::min(r, height); ++i) count += labels[i * width + j] != background;
    for (std::int64_t i = 0; i < height; ++i) {
      if (i + r < height) count += labels[(i + r) * width + j] != background;
      if (i - r - 1 >= 0) count -= labels[(i - r - 1) * width + j] != background;
      cols[i * width + j] = count > 0 ? 1 : 0;
    }
  }
  std::vector<std::uint8_t> roi(static_cast<std::size_t>(height * width), 0);
  for (std::int64_t i = 0; i < height; ++i) {
    const std::int32_t* row = cols.data() + i * width;
    std::int64_t count = 0;
    for (std::int64_t j = 0; j < std::min(r, width); ++j) count += row[j];
    for (std::int64_t j = 0; j < width; ++j) {
      if (j + r < width) count += row[j + r];
      if (j - r - 1 >= 0) count -= row[j - r - 1];
      roi[i * width + j] = count > 0 ? 1 : 0;
    }
  }
  return roi;
}

namespace {

/// The images of the groups a seg-eval scores (its progress counts them).
std::int64_t total_images(const std::vector<const seg_group*>& groups) {
  std::int64_t n = 0;
  for (const auto* g : groups) n += g->images;
  return n;
}

}  // namespace

seg_report evaluate_segmentation(const std::string& path, const seg_eval_options& o) {
  const auto started = std::chrono::steady_clock::now();
  if (o.roi != "dilate" && o.roi != "stored" && o.roi != "all")
    throw input_error(fmt::format("--roi '{}' is not one of dilate, stored, all", o.roi));
  if (o.roi_dilation < 0) throw input_error(fmt::format("--roi-dilation {} must be >= 0", o.roi_dilation));
  seg_reader reader(path);
  seg_report report;
  report.layout = reader.layout();
  const std::int64_t k = report.layout.groups.front().classes;
  if (o.background < 0 || o.background >= k)
    throw input_error(fmt::format("--background {} outside [0, {})", o.background, k));

  std::vector<const seg_group*> groups;
  if (o.groups.empty()) {
    for (const auto& g : report.layout.groups) groups.push_back(&g);
  } else {
    for (const auto& name : o.groups) groups.push_back(&report.layout.group(name));
  }
  std::vector<seg_method> methods;
  for (const auto& name : o.methods) methods.push_back(parse_method(name));
  for (const auto* g : groups) {
    if (o.roi == "stored" && !g->has_roi)
      throw input_error(
          fmt::format("{}: /{}/roi: dataset not found (--roi stored needs a stored mask)", path, g->name));
    for (std::size_t i = 0; i < methods.size(); ++i) {
      if (methods[i] == seg_method::temperature_map && g->temperature_channels == 0)
        throw input_error(
            fmt::format("{}: /{}/temperature: dataset not found (method temperature-map needs it)", path, g->name));
      if (methods[i] == seg_method::augmented_mean && g->augmentations == 0)
        throw input_error(
            fmt::format("{}: /{}/augmented_logits: dataset not found (method augmented-mean needs it)", path, g->name));
    }
  }

  if (std::find(methods.begin(), methods.end(), seg_method::ts) != methods.end()) {
    const seg_group& fit_group = report.layout.group(o.fit_group);
    if (o.roi == "stored" && !fit_group.has_roi)
      throw input_error(
          fmt::format("{}: /{}/roi: dataset not found (--roi stored needs a stored mask)", path, fit_group.name));
    const split_data val = roi_pixels(reader, fit_group, o);
    if (val.num_samples == 0)
      throw input_error(
          fmt::format("{}: /{}: no ROI pixels to fit ts on (no foreground within the ROI rule)", path, fit_group.name));
    // ts by the NLL of the ROI pixels: a host fit (it runs on no sweep backend).
    const fit_request ts = parse_fit_request("ts", {}, o.metrics, parse_backend_choice(o.backend));
    report.backend = fit_site_name(ts, nullptr);
    report.temperature = fit_calibrator(val, ts, nullptr).map_as<temperature_map>()->temperature();
    report.fit_pixels = val.num_samples;
  }

  const std::int64_t slots = o.metrics.slots();
  progress shown("seg-eval", total_images(groups), "images");
  for (const auto* g : groups) {
    shown.detail("group " + g->name);
    const bool want_roi = o.roi == "stored";
    const bool want_t = std::find(methods.begin(), methods.end(), seg_method::temperature_map) != methods.end();
    const bool want_a = std::find(methods.begin(), methods.end(), seg_method::augmented_mean) != methods.end();
    std::vector<seg_accumulator> totals(methods.size());
    for (auto& t : totals) t.reset(k, slots);
    // Images in blocks: read serially (HDF5), score in parallel, merge in image order.
    constexpr std::int64_t k_block = 16;
    std::vector<seg_image> images(static_cast<std::size_t>(k_block));
    std::vector<seg_accumulator> partial(static_cast<std::size_t>(k_block * static_cast<std::int64_t>(methods.size())));
    for (std::int64_t b0 = 0; b0 < g->images; b0 += k_block) {
      const std::int64_t count = std::min(k_block, g->images - b0);
      for (std::int64_t i = 0; i < count; ++i) reader.read(*g, b0 + i, images[i], want_roi, want_t, want_a);
      thread_errors errors;
#pragma omp parallel for schedule(dynamic, 1)
      for (std::int64_t i = 0; i < count; ++i) {
        errors.run([&] {
          const auto roi = image_roi(images[i], *g, o);
          for (std::size_t mi = 0; mi < methods.size(); ++mi) {
            auto& acc = partial[static_cast<std::size_t>(i) * methods.size() + mi];
            acc.reset(k, slots);
            score_image(images[i], roi, *g, methods[mi], report.temperature, o.metrics, acc);
          }
        });
      }
      errors.rethrow();
      for (std::int64_t i = 0; i < count; ++i) {
        for (std::size_t mi = 0; mi < methods.size(); ++mi)
          totals[mi].merge(partial[static_cast<std::size_t>(i) * methods.size() + mi]);
      }
      shown.step(count);
    }
    for (std::size_t mi = 0; mi < methods.size(); ++mi) {
      report.results.push_back({o.methods[mi], g->name, finish(totals[mi], o.metrics, o.reliability)});
      report.pixels_evaluated += totals[mi].pixels;
    }
  }
  // Methods first, then groups: the paper's table has methods as rows, domains as columns.
  std::stable_sort(report.results.begin(), report.results.end(), [&](const seg_result& a, const seg_result& b) {
    const auto at = [&](const std::string& m) {
      return std::find(o.methods.begin(), o.methods.end(), m) - o.methods.begin();
    };
    return at(a.method) < at(b.method);
  });
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace calibench
