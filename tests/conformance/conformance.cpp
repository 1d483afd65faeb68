// qlab-conformance: the behaviour every plugin of a kind must show (STYLE.md
// practice 9), run for each plugin found. Installed with qlab, so a plugin
// built out of tree is checked in one line:
//
//   QLAB_PLUGIN_PATH=build/plugins qlab-conformance
//
// With QLAB_PLUGIN_PATH set, only the plugins in its folders are tested;
// without it, every plugin qlab finds (the build's own, in ctest).
#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/recipe.hpp>
#include <qlab/registry.hpp>

#include <cstdlib>
#include <sstream>

namespace qlab {
namespace {

const Registry& registry() {
  static const Registry r = [] {
    const char* path = std::getenv("QLAB_PLUGIN_PATH");
    if (!path || !*path) return Registry::discover();
    Registry reg;
    std::istringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');)
      if (!dir.empty()) reg.load_dir(dir);
    for (const auto& problem : reg.problems()) std::fprintf(stderr, "%s\n", problem.c_str());
    return reg;
  }();
  return r;
}

std::vector<std::string> names(PluginKind kind) { return registry().names(kind); }

class ModelConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelConformance, BuildsTrainableGraphsForEveryDatasetShape) {
  auto model = registry().model(GetParam());
  const Options opts = resolve(model->options(), RawSection{"model", {}, {}});
  for (const Shape& native : {Shape{1, 28, 28}, Shape{3, 32, 32}}) {
    const Shape in = model->input_shape(native, opts);
    ASSERT_EQ(in.size(), 3u);
    const Graph g = model->build(opts, {"synthetic", in, 10});
    GraphModule m(g);
    std::int64_t params = 0;
    for (const auto& p : m->parameters()) params += p.numel();
    EXPECT_EQ(params, g.parameter_count());
    EXPECT_GT(g.mac_count(), 0);
    EXPECT_FALSE(g.print().empty());
    Shape batch{2};
    batch.insert(batch.end(), in.begin(), in.end());
    auto x = torch::rand(batch);  // pixels in [0, 1], as a reconstruction loss expects
    auto out = m->forward(x);
    ASSERT_FALSE(out.empty());
    auto loss = model->loss(out, x, torch::tensor({1, 2}));
    EXPECT_EQ(loss.dim(), 0);
    loss.backward();
    if (model->task() == Task::classify) {
      EXPECT_EQ(out[0].sizes(), (std::vector<std::int64_t>{2, 10}));
    }
  }
  // The default recipe is valid against the [train] schema.
  EXPECT_NO_THROW(resolve(recipe_schema(model->default_recipe()), RawSection{"train", {}, {}}));
}

class BackendConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(BackendConformance, Fp32MatchesTheFloatModule) {
  auto backend = registry().backend(GetParam());
  const auto avail = backend->availability();
  if (!avail.available) GTEST_SKIP() << GetParam() << " unavailable: " << avail.reason;
  backend->configure(resolve(backend->options(), RawSection{"backend", {}, {}}));
  test::TinyModel model;
  GraphModule m(model.build({}, {"tiny", {1, 8, 8}, 3}));
  m->eval();
  auto x = torch::randn({5, 1, 8, 8});
  const auto expected = m->forward(x)[0].detach();
  if (!backend->supports(Op::conv2d, Mode::fp32)) GTEST_SKIP() << "no fp32 path";
  auto exe = backend->lower(m);
  EXPECT_EQ(exe->mode(), Mode::fp32);
  EXPECT_FALSE(exe->describe().empty());
  const auto got = exe->run(x)[0];
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-6));
}

class MetricConformance : public ::testing::TestWithParam<std::string> {};

class FakeContext : public MeasureContext {
 public:
  FakeContext() : graph_(model_.build({}, {"tiny", {1, 8, 8}, 3})), module_(graph_) {
    module_->eval();
    test_ = test::tiny_dataset(20, 1);
    exe_ = float_executable(module_);
  }
  const Model& model() const override { return model_; }
  const Graph& graph() const override { return graph_; }
  Executable& executable() override { return *exe_; }
  const Dataset& test_set() const override { return test_; }
  std::int64_t batch_size() const override { return 4; }
  const QuantizedModel* quantized() const override { return nullptr; }
  Executable* reference() override { return nullptr; }
  GraphModule float_module() const override { return module_; }
  const std::vector<torch::Tensor>& test_outputs() override {
    if (outputs_.empty()) outputs_ = exe_->run(test_.images);
    return outputs_;
  }

 private:
  test::TinyModel model_;
  Graph graph_;
  GraphModule module_;
  Dataset test_;
  std::unique_ptr<Executable> exe_;
  std::vector<torch::Tensor> outputs_;
};

TEST_P(MetricConformance, WritesOnlyItsDeclaredKeys) {
  auto metric = registry().metric(GetParam());
  const auto keys = metric->keys();
  ASSERT_FALSE(keys.empty());
  FakeContext ctx;
  MetricValues out;
  metric->measure(ctx, out);
  EXPECT_FALSE(out.empty()) << "a classifier on CPU is a case every in-tree metric covers";
  for (const auto& [k, v] : out) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
    EXPECT_TRUE(std::isfinite(v)) << k;
  }
}

class QuantizerConformance : public ::testing::TestWithParam<std::string> {};

// With its default options, every quantizer turns a trained model into a
// quantized one that leaves the float model untouched and lists every
// conv2d/linear layer as quantized or float.
TEST_P(QuantizerConformance, QuantizesWithDefaultsAndLeavesTheFloatModel) {
  auto quantizer = registry().quantizer(GetParam());
  const Options opts = resolve(quantizer->schema(), RawSection{"quantizer", {}, {}});
  test::TinyModel model;
  const Graph g = model.build({}, {"tiny", {1, 8, 8}, 3});
  torch::manual_seed(5);
  GraphModule m(g);
  const auto before = m->named_parameters()["features.0.weight"].clone();
  const Dataset data = test::tiny_dataset(128, 6);
  QuantizeContext ctx = test::training_context(model, data);
  ctx.rules = quantizer->caps().rules;
  ctx.config = config_list_option(opts, ctx.rules);
  const QuantizedModel q = quantizer->quantize(m, opts, ctx);
  EXPECT_TRUE(torch::equal(before, m->named_parameters()["features.0.weight"]));
  EXPECT_EQ(q.layers.size() + q.float_layers.size(), 2u);
  EXPECT_FALSE(q.layers.empty());
}

// A kind with no plugin here has no test, which is not an error.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(QuantizerConformance);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ModelConformance);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackendConformance);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(MetricConformance);
INSTANTIATE_TEST_SUITE_P(Plugins, QuantizerConformance,
                         ::testing::ValuesIn(names(PluginKind::quantizer)));
INSTANTIATE_TEST_SUITE_P(Plugins, ModelConformance, ::testing::ValuesIn(names(PluginKind::model)));
INSTANTIATE_TEST_SUITE_P(Plugins, BackendConformance,
                         ::testing::ValuesIn(names(PluginKind::backend)));
INSTANTIATE_TEST_SUITE_P(Plugins, MetricConformance,
                         ::testing::ValuesIn(names(PluginKind::metric)));

}  // namespace
}  // namespace qlab
