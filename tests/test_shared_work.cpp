// What a sweep's points share (shared_work.hpp, calibration_cache.hpp):
// each shared step runs once, and every point's rows are those it would
// have had alone.
#include "int8_cases.hpp"
#include "test_support.hpp"

#include <qlab/experiment.hpp>
#include <qlab/quant/ptq.hpp>

#include <sstream>

namespace qlab {
namespace {

void expect_same_activation_qparams(const QuantizedModel& a, const QuantizedModel& b) {
  ASSERT_EQ(a.activations.size(), b.activations.size());
  for (const auto& [name, qp] : a.activations) {
    const QParams& other = b.activations.at(name);
    EXPECT_TRUE(torch::equal(qp.scale, other.scale)) << name;
    EXPECT_TRUE(torch::equal(qp.zero_point, other.zero_point)) << name;
    EXPECT_EQ(qp.qmax, other.qmax) << name;
  }
}

TEST(CalibrationCache, PointsThatDifferInBitsCalibrateOnceWithTheUnsharedQparams) {
  const auto m = test::randomised(test::conv_flatten_linear(), 1);
  const Dataset data = test::calibration_for(m->graph(), 2);
  CalibrationCache cache;
  auto spec_for = [&](int bits, CalibrationCache* shared) {
    PtqSpec spec;
    spec.calibration_batches = 4;
    spec.config = default_config_list({}, {bits, bits, bits});
    spec.cache = shared;
    spec.model_id = "conv_flatten_linear, seed 1";
    return spec;
  };
  for (int bits : {8, 4, 2}) {
    const auto shared = post_training_quantize(m, spec_for(bits, &cache), data);
    const auto alone = post_training_quantize(m, spec_for(bits, nullptr), data);
    expect_same_activation_qparams(shared, alone);
    EXPECT_EQ(shared.activations.begin()->second.qmax, (1 << bits) - 1);
  }
  EXPECT_EQ(cache.calibrations(), 1u);
  // Another observer, or another model, is another calibration.
  PtqSpec histogram = spec_for(8, &cache);
  histogram.observer = "histogram";
  post_training_quantize(m, histogram, data);
  PtqSpec other_model = spec_for(8, &cache);
  other_model.model_id = "another model";
  post_training_quantize(m, other_model, data);
  EXPECT_EQ(cache.calibrations(), 3u);
}

std::string point(int weight_bits, int activation_bits) {
  return fmt::format(R"(
[model]
name = "lenet"
[dataset]
name = "fashion-mnist"
limit_train = 2000
limit_test = 500
[train]
epochs = 1
[quantizer]
name = "static"
weight_bits = {}
activation_bits = {}
calibration_batches = 4
[backend]
name = "onednn"
[metrics]
names = ["accuracy", "loss", "size"]
)",
                     weight_bits, activation_bits);
}

TEST(SharedWork, PointsOnOneBaselineLoadTrainMeasureAndCalibrateItOnce) {
  const Registry& registry = test::build_registry();
  if (!registry.backend("onednn")->availability().available) GTEST_SKIP() << "no onednn engine";
  test::TempDir cache;
  RunSettings shared;
  shared.cache_dir = cache.path().string();
  shared.progress = false;
  shared.shared = std::make_shared<SharedWork>();
  RunSettings alone = shared;
  alone.shared = nullptr;
  std::ostringstream log;
  const std::vector<std::pair<int, int>> bits = {{8, 8}, {4, 8}, {2, 4}};
  std::vector<std::vector<ResultRow>> rows;
  for (auto [w, a] : bits)
    rows.push_back(run_experiment(parse_experiment(point(w, a), "p.toml"), registry, shared, log));
  const SharedWork::Counts n = shared.shared->counts();
  EXPECT_EQ(n.datasets_loaded, 1);
  EXPECT_EQ(n.baselines_made, 1);
  EXPECT_EQ(n.fp32_measured, 1);
  EXPECT_EQ(n.calibrations, 1u);

  for (std::size_t i = 0; i < bits.size(); ++i) {
    SCOPED_TRACE(fmt::format("W{}A{}", bits[i].first, bits[i].second));
    ASSERT_EQ(rows[i].size(), 2u);
    // Every point still carries the fp32 row, with the training notes.
    EXPECT_EQ(to_json(rows[i][0]).dump(), to_json(rows[0][0]).dump());
    EXPECT_NE(rows[i][0].notes.at(0).find("float baseline trained"), std::string::npos);
    // And its quantized row is the one it gets alone (the baseline now
    // comes from the disk cache), calibration and metrics alike.
    const auto solo = run_experiment(
        parse_experiment(point(bits[i].first, bits[i].second), "p.toml"), registry, alone, log);
    EXPECT_EQ(rows[i][1].calibration.dump(), solo[1].calibration.dump());
    for (const char* metric : {"accuracy", "loss", "size_bytes"}) {
      EXPECT_EQ(rows[i][1].metrics.at(metric), solo[1].metrics.at(metric)) << metric;
      EXPECT_EQ(rows[i][0].metrics.at(metric), solo[0].metrics.at(metric)) << metric;
    }
  }
}

}  // namespace
}  // namespace qlab
