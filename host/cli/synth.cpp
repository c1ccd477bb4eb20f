// `calibench synth`: a classification dump with known ground truth (docs/synth.md), or with
// --segmentation a segmentation dump of blobs with perturbed domains (docs/segmentation.md).
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "host/cli/commands.hpp"
#include "host/cli/options.hpp"
#include "host/io/seg_synth.hpp"
#include "host/io/synth.hpp"

namespace calibench::cli {
namespace {

struct synth_args {
  synth_options so;
  std::string out;
  bool segmentation = false;
  seg_synth_options seg;
  bool classes_given = false, temperature_given = false;
};

int run_synth(synth_args& a) {
  if (!a.segmentation) {
    write_synth_dump(a.out, a.so);
    std::cout << fmt::format("wrote {} ({} classes, {} val, {} test samples, seed {})\n", a.out, a.so.num_classes,
                             a.so.n_val, a.so.n_test, a.so.seed);
    return 0;
  }
  // --classes and --temperature have segmentation defaults of their own (K 4, T 2.5).
  if (a.classes_given) a.seg.classes = a.so.num_classes;
  if (a.temperature_given) a.seg.temperature = a.so.temperature;
  a.seg.seed = a.so.seed;
  write_seg_synth_dump(a.out, a.seg);
  std::cout << fmt::format("wrote {} (segmentation: {} classes, {} images of {} x {} per group, seed {})\n", a.out,
                           a.seg.classes, a.seg.images, a.seg.height, a.seg.width, a.seg.seed);
  return 0;
}

void add_segmentation_options(CLI::App& cmd, synth_args& a) {
  cmd.add_flag("--segmentation", a.segmentation,
               "A segmentation dump instead (docs/segmentation.md): groups val, test, test_noise, "
               "test_bias_field, test_shift; K defaults to 4 and T to 2.5");
  cmd.add_option("--images", a.seg.images, "--segmentation: images per group")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 30));
  cmd.add_option("--height", a.seg.height, "--segmentation: image height")
      ->check(CLI::Range(std::int64_t{4}, std::int64_t{1} << 16));
  cmd.add_option("--width", a.seg.width, "--segmentation: image width")
      ->check(CLI::Range(std::int64_t{4}, std::int64_t{1} << 16));
  cmd.add_option("--augmentations", a.seg.augmentations, "--segmentation: stored augmented logits per image")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{64}));
}

}  // namespace

command_runner setup_synth(CLI::App& cmd) {
  auto a = std::make_shared<synth_args>();
  synth_options& so = a->so;
  cmd.add_option("--out", a->out, "Output HDF5 file")->required();
  CLI::Option* classes = cmd.add_option("--classes", so.num_classes, "Number of classes K")
                             ->check(CLI::Range(std::int64_t{2}, std::int64_t{1} << 20));
  cmd.add_option("--n-val", so.n_val, "Validation samples")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  cmd.add_option("--n-test", so.n_test, "Test samples")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  const auto positive = finite_number(0.0, 1e300, true, false, "a finite number > 0");
  const auto non_negative = finite_number(0.0, 1e300, false, false, "a finite number >= 0");
  cmd.add_option("--seed", so.seed, "Seed")->check(k_seed_text);
  cmd.add_option("--logit-scale", so.logit_scale, "Standard deviation s of the true logits")->check(positive);
  CLI::Option* temperature =
      cmd.add_option("--temperature", so.temperature, "Over-confidence T: observed logits are T times sharper")
          ->check(positive);
  cmd.add_option("--class-distortion", so.class_distortion, "Std of log per-class scale")->check(non_negative);
  cmd.add_option("--class-bias", so.class_bias, "Std of per-class logit offsets")->check(non_negative);
  add_segmentation_options(cmd, *a);
  return [a, classes, temperature] {
    a->classes_given = classes->count() > 0;
    a->temperature_given = temperature->count() > 0;
    return run_synth(*a);
  };
}

}  // namespace calibench::cli
