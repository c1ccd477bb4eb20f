// HDF5 dumps: write/read round trip, structural inspection, synth determinism and truth.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "host/io/dump.hpp"
#include "host/io/synth.hpp"
#include "host/metrics/metrics.hpp"

namespace calibench {
namespace {

namespace fs = std::filesystem;

class DumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("calibench_dump_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(DumpTest, RoundTrip) {
  const std::vector<float> logits{1.5f, -2.0f, 0.25f, 3.0f, 0.0f, -1.0f};
  const std::vector<std::int32_t> labels{2, 0};
  write_dump(
      path("a.h5"), {{"dataset", "unit"}}, {}, 3,
      {{"val", 2, 3, logits.data(), labels.data(), nullptr}, {"test", 2, 3, logits.data(), labels.data(), nullptr}});
  const auto layout = inspect_dump(path("a.h5"));
  ASSERT_EQ(layout.splits.size(), 2u);
  EXPECT_EQ(layout.attributes.at("format"), "calibench-logits");
  EXPECT_EQ(layout.attributes.at("num_classes"), "3");
  EXPECT_EQ(layout.attributes.at("dataset"), "unit");
  const auto s = read_split(path("a.h5"), "test");
  EXPECT_EQ(s.num_samples, 2);
  EXPECT_EQ(s.num_classes, 3);
  EXPECT_FALSE(s.is_probs);
  EXPECT_EQ(s.value_type, "float32");
  EXPECT_EQ(s.labels, labels);
  for (std::size_t i = 0; i < logits.size(); ++i) EXPECT_EQ(s.values[i], static_cast<double>(logits[i]));
  EXPECT_FALSE(fs::exists(path("a.h5.tmp." + std::to_string(::getpid()))));
}

TEST_F(DumpTest, RejectsWithFileAndDataset) {
  const std::vector<float> logits{1.0f, NAN, 0.0f, 1.0f};
  const std::vector<std::int32_t> labels{0, 1};
  write_dump(
      path("nan.h5"), {}, {}, 2,
      {{"val", 2, 2, logits.data(), labels.data(), nullptr}, {"test", 2, 2, logits.data(), labels.data(), nullptr}});
  try {
    read_split(path("nan.h5"), "test");
    FAIL() << "NaN accepted";
  } catch (const input_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path("nan.h5")), std::string::npos) << what;
    EXPECT_NE(what.find("/test/logits"), std::string::npos) << what;
    EXPECT_NE(what.find("index [0, 1]"), std::string::npos) << what;
  }
  { std::ofstream(path("text.h5")) << "not hdf5\n"; }
  EXPECT_THROW(inspect_dump(path("text.h5")), input_error);
  EXPECT_THROW(inspect_dump(path("missing.h5")), input_error);
}

TEST_F(DumpTest, SynthIsDeterministicAndOverconfident) {
  synth_options o;
  o.num_classes = 5;
  o.n_val = 3000;
  o.n_test = 2500;  // not a multiple of the generator's chunk
  o.seed = 42;
  write_synth_dump(path("s1.h5"), o);
  write_synth_dump(path("s2.h5"), o);
  const auto a = read_split(path("s1.h5"), "test");
  const auto b = read_split(path("s2.h5"), "test");
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.labels, b.labels);
  const auto layout = inspect_dump(path("s1.h5"));
  EXPECT_EQ(layout.splits[1].extra_datasets, std::vector<std::string>{"true_probs"});

  o.seed = 43;
  write_synth_dump(path("s3.h5"), o);
  EXPECT_NE(read_split(path("s3.h5"), "test").values, a.values);

  // Observed logits are sharper than the truth (T = 1.5): mean confidence exceeds accuracy.
  const auto s = score_split(read_split(path("s1.h5"), "test"));
  const auto m = compute_metrics(s, {});
  double mean_conf = 0;
  for (double c : s.confidence) mean_conf += c;
  mean_conf /= static_cast<double>(s.num_samples);
  EXPECT_GT(mean_conf, m.accuracy + 0.02);
  EXPECT_GT(m.ece, 0.02);
}

TEST_F(DumpTest, SynthWithoutDistortionIsCalibratedAtTemperatureOne) {
  synth_options o;
  o.num_classes = 4;
  o.n_val = 100;
  o.n_test = 40000;
  o.temperature = 1.0;
  o.class_distortion = 0.0;
  o.class_bias = 0.0;
  write_synth_dump(path("cal.h5"), o);
  const auto m = compute_metrics(score_split(read_split(path("cal.h5"), "test")), {});
  // Labels are drawn from softmax of the stored logits, so only sampling noise remains:
  // with 40,000 samples and 15 bins the ECE of a calibrated model is about 0.5%.
  EXPECT_LT(m.ece, 0.012);
}

}  // namespace
}  // namespace calibench
