#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/registry.hpp>

#include <gtest/gtest.h>

namespace qlab {
namespace {

const std::string kTestPlugins = test::test_plugin_dir();

std::string so(const std::string& name) {
  return kTestPlugins + "/" + name + "/libqlab_" + (name == "wrong_kind" ? "model" : "metric") +
         "_test_" + name + ".so";
}

std::string load_error(Registry& r, const std::string& file) {
  try {
    r.load_file(file);
  } catch (const PluginError& e) {
    return e.what();
  }
  ADD_FAILURE() << "loaded " << file;
  return "";
}

TEST(Registry, LoadsTheInTreePlugins) {
  Registry r;
  r.load_dir(test::build_plugin_dir());
  EXPECT_TRUE(r.problems().empty());
  EXPECT_EQ(r.names(PluginKind::model), (std::vector<std::string>{"lenet", "logreg", "mnist_cnn",
                                                                  "mobilenet_v2", "vae", "vgg16"}));
  EXPECT_EQ(r.names(PluginKind::quantizer),
            (std::vector<std::string>{"dorefa", "dynamic", "lsq", "qat", "static"}));
  EXPECT_EQ(
      r.names(PluginKind::backend),
      (std::vector<std::string>{"bitserial", "cpu", "cuda", "fbgemm", "onednn", "qnnpack", "x86"}));
  EXPECT_EQ(r.names(PluginKind::metric),
            (std::vector<std::string>{"accuracy", "latency", "loss", "memory", "runtime", "size"}));
  EXPECT_EQ(r.record(PluginKind::model, "lenet").api_version, kPluginApiVersion);
  EXPECT_EQ(r.record(PluginKind::model, "lenet").torch_version, kTorchVersion);
  EXPECT_NE(r.model("lenet"), nullptr);
}

TEST(Registry, RefusesAnotherApiVersionNamingFileAndBothVersions) {
  Registry r;
  const auto msg = load_error(r, so("bad_api"));
  EXPECT_NE(msg.find(so("bad_api")), std::string::npos) << msg;
  EXPECT_NE(msg.find("API version 999"), std::string::npos) << msg;
  EXPECT_NE(msg.find("version " + std::to_string(kPluginApiVersion)), std::string::npos) << msg;
}

TEST(Registry, RefusesAnotherLibTorchNamingBothVersions) {
  Registry r;
  const auto msg = load_error(r, so("bad_torch"));
  EXPECT_NE(msg.find(so("bad_torch")), std::string::npos) << msg;
  EXPECT_NE(msg.find("LibTorch 0.4.1"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::string("LibTorch ") + kTorchVersion), std::string::npos) << msg;
}

TEST(Registry, RefusesFilesThatAreNotPlugins) {
  Registry r;
  auto msg = load_error(r, kTestPlugins + "/not_plugin/libtest_not_plugin.so");
  EXPECT_NE(msg.find("not a qlab plugin"), std::string::npos) << msg;
  msg = load_error(r, kTestPlugins + "/does-not-exist.so");
  EXPECT_NE(msg.find("cannot be loaded"), std::string::npos) << msg;
}

TEST(Registry, RefusesDuplicateKindAndName) {
  Registry r;
  r.load_dir(test::build_plugin_dir());
  const auto msg = load_error(r, so("duplicate"));
  EXPECT_NE(msg.find("metric plugin 'accuracy' is already loaded from"), std::string::npos) << msg;
  EXPECT_NE(msg.find("libqlab_metric_accuracy.so"), std::string::npos) << msg;
}

TEST(Registry, ReportsAThrowingFactoryAndAWrongKind) {
  Registry r;
  auto msg = load_error(r, so("throwing"));
  EXPECT_NE(msg.find("factory failed: cannot open /dev/imaginary"), std::string::npos) << msg;
  msg = load_error(r, so("wrong_kind"));
  EXPECT_NE(msg.find("declares kind 'model'"), std::string::npos) << msg;
}

TEST(Registry, ScanningAFolderCollectsRefusalsAndGoesOn) {
  Registry r;
  r.load_dir(test::build_plugin_dir());
  r.load_dir(kTestPlugins + "/bad_api");
  r.load_dir(kTestPlugins + "/nowhere");
  EXPECT_EQ(r.problems().size(), 2u);
  EXPECT_EQ(r.names(PluginKind::model).size(), 6u);
}

TEST(Registry, RefusesPluginsEveryUserCanWrite) {
  namespace fs = std::filesystem;
  test::TempDir dir;
  const fs::path copy = dir.path() / "libqlab_metric_accuracy.so";
  fs::copy_file(fs::path(test::build_plugin_dir()) / "libqlab_metric_accuracy.so", copy);
  fs::permissions(copy, fs::perms::others_write, fs::perm_options::add);
  Registry r;
  const std::string msg = test::error_of([&] { r.load_file(copy); });
  EXPECT_NE(msg.find("the file " + copy.string() + " is writable by every user"), std::string::npos)
      << msg;
  fs::permissions(copy, fs::perms::others_write, fs::perm_options::remove);
  fs::permissions(dir.path(), fs::perms::others_write, fs::perm_options::add);
  EXPECT_NE(test::error_of([&] { r.load_file(copy); }).find("its folder"), std::string::npos);
  setenv("QLAB_ALLOW_WRITABLE_PLUGINS", "1", 1);
  r.load_file(copy);  // allowed explicitly
  unsetenv("QLAB_ALLOW_WRITABLE_PLUGINS");
  EXPECT_EQ(r.names(PluginKind::metric), std::vector<std::string>{"accuracy"});
}

TEST(Registry, UnknownNamesListWhatIsInstalled) {
  Registry r;
  r.load_dir(test::build_plugin_dir());
  try {
    r.model("resnet");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "unknown model plugin 'resnet' (installed: lenet, logreg, mnist_cnn, "
                 "mobilenet_v2, vae, vgg16)");
  }
  EXPECT_THROW(r.quantizer("awq"), Error);
}

TEST(Registry, PluginExceptionsAreTaggedWithPluginAndMethod) {
  Registry r;
  r.load_dir(test::build_plugin_dir());
  const auto& rec = r.record(PluginKind::backend, "cpu");
  try {
    plugin_call(rec, "lower", []() -> int { throw std::runtime_error("boom"); });
    FAIL();
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(), "backend plugin 'cpu' (lower): boom");
  }
}

// What the registry hands out is the plugin boundary: a model's loss (as a
// quantizer's fine-tuning calls it) and a lowered executable's run are
// tagged with their plugin and method like every other call.
TEST(Registry, EveryCallIntoAPluginIsTagged) {
  Registry r;
  r.load_dir(test::build_plugin_dir());
  auto model = r.model("lenet");
  auto message = [](const std::function<void()>& fn) -> std::string {
    try {
      fn();
    } catch (const PluginError& e) {
      return e.what();
    }
    return "no PluginError";
  };
  const std::string loss = message([&] {
    model->loss({torch::zeros({2, 10})}, torch::zeros({2, 1, 32, 32}), torch::tensor({1, 2, 3}));
  });
  EXPECT_EQ(loss.rfind("model plugin 'lenet' (loss): ", 0), 0u) << loss;
  auto exe = r.backend("cpu")->lower(GraphModule(model->build({}, {"synthetic", {1, 32, 32}, 10})));
  const std::string run = message([&] { exe->run(torch::zeros({2, 3, 5, 5})); });
  EXPECT_EQ(run.rfind("backend plugin 'cpu' (run): ", 0), 0u) << run;
}

TEST(Registry, ObjectsKeepTheirLibraryLoaded) {
  std::shared_ptr<Model> model;
  {
    Registry r;
    r.load_dir(test::build_plugin_dir());
    model = r.model("lenet");
  }
  // The registry is gone; the model's code must still be mapped.
  EXPECT_EQ(model->default_recipe().epochs, 3);
}

}  // namespace
}  // namespace qlab
