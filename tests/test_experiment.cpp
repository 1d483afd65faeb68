// End to end through the real plugins and the real Fashion-MNIST files (the
// set-up step of README.md installs them), on small subsets.
#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/experiment.hpp>

#include <sstream>

namespace qlab {
namespace {

using test::build_registry;

std::vector<ResultRow> run(const std::string& toml, const std::string& cache) {
  RunSettings s;
  s.cache_dir = cache;
  s.progress = false;
  std::ostringstream log;
  return run_experiment(parse_experiment(toml, "test.toml"), build_registry(), s, log);
}

const char* kSmallLenet = R"(
[model]
name = "lenet"
[dataset]
name = "fashion-mnist"
limit_train = 8000
limit_test = 1000
[train]
epochs = 2
[backend]
name = "cpu"
threads = 2
[metrics]
names = ["accuracy", "loss"]
)";

TEST(Experiment, LenetTrainsOnASubsetAndReusesTheCachedBaseline) {
  test::TempDir cache;
  const auto first = run(kSmallLenet, cache.path().string());
  ASSERT_EQ(first.size(), 1u);
  const auto& row = first[0];
  EXPECT_EQ(row.model, "lenet");
  EXPECT_EQ(row.dataset, "fashion-mnist");
  EXPECT_EQ(row.mode, Mode::fp32);
  EXPECT_GT(row.metrics.at("accuracy"), 60.0);  // chance is 10%
  EXPECT_LT(row.metrics.at("loss"), 1.5);
  EXPECT_EQ(row.config["train"]["lr"], 0.05);  // the model's default recipe
  EXPECT_EQ(row.config["train"]["epochs"], 2);
  EXPECT_NE(row.notes.at(0).find("trained"), std::string::npos);

  const auto second = run(kSmallLenet, cache.path().string());
  EXPECT_NE(second[0].notes.at(0).find("loaded from cache"), std::string::npos);
  EXPECT_DOUBLE_EQ(second[0].metrics.at("accuracy"), row.metrics.at("accuracy"));
  EXPECT_DOUBLE_EQ(second[0].metrics.at("loss"), row.metrics.at("loss"));

  const auto json = to_json(row);
  for (const auto* key : {"model", "dataset", "quantizer", "backend", "mode", "config", "metrics"})
    EXPECT_TRUE(json.contains(key)) << key;

  // `qlab export --weights` writes the cached baseline; [model] weights
  // reads it back instead of training, to the same accuracy.
  RunSettings s;
  s.cache_dir = cache.path().string();
  s.progress = false;
  std::ostringstream log;
  const std::string file = (cache.path() / "lenet.safetensors").string();
  const auto notes = export_float_weights(parse_experiment(kSmallLenet, "test.toml"),
                                          build_registry(), s, file, log);
  EXPECT_NE(notes.front().find("loaded from cache"), std::string::npos) << notes.front();
  std::string with_weights = kSmallLenet;
  with_weights.insert(with_weights.find("[dataset]"), "weights = \"" + file + "\"\n");
  test::TempDir empty_cache;
  const auto third = run(with_weights, empty_cache.path().string());
  EXPECT_NE(third[0].notes.at(0).find("float weights loaded from " + file), std::string::npos)
      << third[0].notes.at(0);
  EXPECT_DOUBLE_EQ(third[0].metrics.at("accuracy"), row.metrics.at("accuracy"));
  EXPECT_EQ(third[0].config["model"]["weights"], file);
}

TEST(Experiment, ReconstructionModelsHaveALossButNoAccuracy) {
  test::TempDir cache;
  const auto rows = run(R"(
[model]
name = "vae"
[dataset]
limit_train = 2000
limit_test = 500
[train]
epochs = 1
[quantizer]
name = "dynamic"
[metrics]
names = ["accuracy", "loss"]
)",
                        cache.path().string());
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.metrics.count("accuracy"), 0u);  // absent, never zero
    EXPECT_GT(r.metrics.at("loss"), 100.0);      // BCE + KLD per 784-pixel image
    EXPECT_LT(r.metrics.at("loss"), 600.0);
  }
  EXPECT_NEAR(rows[1].metrics.at("loss"), rows[0].metrics.at("loss"),
              0.01 * rows[0].metrics.at("loss"));
  EXPECT_NE(rows[0].notes.back().find("metric 'accuracy' does not apply"), std::string::npos);
}

std::string error_of(const std::string& toml) {
  test::TempDir cache;
  try {
    run(toml, cache.path().string());
  } catch (const Error& e) {
    // Nothing may be trained before the configuration is known to be good.
    EXPECT_TRUE(std::filesystem::is_empty(cache.path())) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << toml;
  return "";
}

TEST(Experiment, ConfigurationErrorsStopBeforeTraining) {
  auto msg =
      error_of("[model]\nname = \"lenet\"\n[metrics]\nnames = [\"accuracy\", \"latencyy\"]\n");
  EXPECT_NE(msg.find("test.toml:4:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown metric plugin 'latencyy'"), std::string::npos) << msg;

  msg = error_of("[model]\nname = \"resnet\"\n");
  EXPECT_NE(msg.find("unknown model plugin 'resnet' (installed: lenet, logreg, mnist_cnn"),
            std::string::npos)
      << msg;

  msg = error_of("[dataset]\nname = \"fashion-mnist\"\n");
  EXPECT_NE(msg.find("[model] name is required"), std::string::npos) << msg;

  msg = error_of("[model]\nname = \"lenet\"\n[train]\nlr = \"high\"\n");
  EXPECT_NE(msg.find("test.toml:4:"), std::string::npos) << msg;

  msg = error_of("[model]\nname = \"lenet\"\n[quantizer]\nname = \"awq\"\n");
  EXPECT_NE(msg.find("test.toml:4:"), std::string::npos) << msg;
  EXPECT_NE(
      msg.find("unknown quantizer plugin 'awq' (installed: dorefa, dynamic, lsq, qat, static)"),
      std::string::npos)
      << msg;

  msg = error_of("[model]\nname = \"lenet\"\n[quantizer]\nname = \"static\"\nweight_bits = 32\n");
  EXPECT_NE(msg.find("[quantizer] weight_bits"), std::string::npos) << msg;

  msg = error_of("[model]\nname = \"lenet\"\n[quantizer]\nweight_bits = 4\n");
  EXPECT_NE(msg.find("no quantizer name"), std::string::npos) << msg;

  msg = error_of("[model]\nname = \"lenet\"\n[backend]\nname = \"fbgemm\"\n");
  EXPECT_NE(msg.find("backend 'fbgemm' is unavailable"), std::string::npos) << msg;

  msg = error_of("[model]\nname = \"lenet\"\n[backend]\nthreads = -1\n");
  EXPECT_NE(msg.find("[backend] threads"), std::string::npos) << msg;

  msg =
      error_of("[model]\nname = \"lenet\"\n[dataset]\nname = \"mnist\"\npath = \"/nonexistent\"\n");
  EXPECT_NE(msg.find("dataset 'mnist': files not found"), std::string::npos) << msg;
}

}  // namespace
}  // namespace qlab
