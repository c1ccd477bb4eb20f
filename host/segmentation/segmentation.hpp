// Segmentation calibration at pixel scale (docs/segmentation.md): pixels are samples, the
// region of interest is the dilated ground-truth foreground (or a stored mask), ECE and SCE over
// ROI pixels, Dice per class over whole images; calibration by one temperature fitted on the
// validation ROI pixels, by stored temperature maps, or by the mean of stored augmented logits.
// Images are streamed: memory is a few images, whatever the number of pixels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/io/dump.hpp"
#include "host/io/seg_dump.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {

/// The ROI of one image: pixels within Chebyshev distance `radius` of a pixel whose label is
/// not `background` (a square (2r+1) x (2r+1) dilation of the foreground), clipped to the image.
std::vector<std::uint8_t> dilate_foreground(const std::int32_t* labels, std::int64_t height, std::int64_t width,
                                            std::int32_t background, std::int32_t radius);

struct seg_eval_options {
  metric_options metrics;                            ///< bins, binning rules, classwise reduction, Brier, NLL clip
  std::string roi = "dilate";                        ///< dilate | stored | all
  std::int32_t roi_dilation = 10;                    ///< r of dilate_foreground
  std::int32_t background = 0;                       ///< the class outside the foreground
  std::vector<std::string> methods{"uncalibrated"};  ///< uncalibrated | ts | temperature-map | augmented-mean
  std::vector<std::string> groups;                   ///< empty: every group
  std::string fit_group = "val";                     ///< ts is fitted on this group's ROI pixels
  std::string backend = "auto";                      ///< sweep backend of the ts fit
  bool reliability = false;
};

/// Metrics of one (method, group).
struct seg_metrics {
  std::int64_t roi_pixels = 0, pixels = 0;
  double accuracy = 0, ece = 0, mce = 0, sce = 0, nll = 0, brier = 0;
  std::vector<double> dice;  ///< per class over all pixels; NaN when the class is neither predicted nor present
  double mean_dice = 0;      ///< mean over foreground classes with a defined Dice
  std::vector<bin_stats> reliability;
};

struct seg_result {
  std::string method, group;
  seg_metrics metrics;
};

struct seg_report {
  seg_layout layout;
  double temperature = 0;           ///< ts: the fitted temperature (0 when ts was not asked for)
  std::int64_t fit_pixels = 0;      ///< ts: ROI pixels it was fitted on
  std::string backend;              ///< ts: the sweep backend that ran
  std::vector<seg_result> results;  ///< methods x groups, in option order
  double seconds = 0;
  std::int64_t pixels_evaluated = 0;  ///< pixels x methods
};

seg_report evaluate_segmentation(const std::string& path, const seg_eval_options& options);

}  // namespace calibench
