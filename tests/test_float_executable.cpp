// The fp32 executable: on oneDNN primitives it computes what the module
// computes, for every layer kind and batch size, and it says which kernels
// run it and why when they are LibTorch's.
#include <qlab/plugin/backend.hpp>

#include <gtest/gtest.h>

#include "int8_cases.hpp"

namespace qlab {
namespace {

// Whether the build found oneDNN (tests/CMakeLists.txt passes it on).
#ifdef QLAB_HAVE_DNNL
constexpr bool kOneDnn = true;
#else
constexpr bool kOneDnn = false;
#endif

// Odd map sizes (pooling floors), a depthwise conv, a linear straight after
// a conv, and a sigmoid output.
Graph depthwise_odd_sigmoid() {
  Graph g("DepthwiseOdd");
  auto x = g.input("input", {6, 11, 11});
  x = g.conv2d("dw", x, 6, 6, 3, 1, 1, 6, false);
  x = g.batch_norm2d("dw_bn", x, 6);
  x = g.relu6("dw_act", x);
  x = g.max_pool2d("pool", x, 2, 2);
  x = g.conv2d("pw", x, 6, 12, 1);
  x = g.avg_pool2d("avg", x, 3, 2);
  x = g.dropout("drop", x, 0.5);
  x = g.flatten("flatten", x);
  x = g.linear("fc", x, 12 * 2 * 2, 5);
  g.set_outputs({g.sigmoid("out", x)});
  return g;
}

// Two outputs, one of them a map, and a relu that no conv absorbs.
Graph two_outputs() {
  Graph g("TwoOutputs");
  auto x = g.input("input", {2, 8, 8});
  auto y = g.conv2d("conv", x, 2, 4, 3, 2, 1);
  auto s = g.add("add", y, g.conv2d("side", x, 2, 4, 1, 2));
  s = g.relu("relu", s);
  auto f = g.linear("fc", g.flatten("flatten", s), 4 * 4 * 4, 3);
  g.set_outputs({s, f});
  return g;
}

torch::Tensor batch_for(const Graph& g, std::int64_t n) {
  Shape shape{n};
  const auto& in = g.input_shape();
  shape.insert(shape.end(), in.begin(), in.end());
  return torch::randn(shape);
}

void expect_matches_module(const Graph& g) {
  auto module = test::randomised(g, 3);
  auto exe = float_executable(module);
  if (kOneDnn) {
    EXPECT_NE(exe->describe().find("oneDNN"), std::string::npos);
  }
  // A full batch and a short last one: each batch size has a plan of its own.
  for (std::int64_t n : {64, 7, 64}) {
    const auto x = batch_for(g, n);
    torch::NoGradGuard no_grad;
    const auto want = module->forward(x);
    const auto got = exe->run(x);
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i].sizes(), want[i].sizes()) << g.type_name() << " output " << i;
      // Float sums in another order: a few ulps of the output's scale.
      EXPECT_LT(test::normalised_error(got[i], want[i]), 1e-5) << g.type_name() << " batch " << n;
    }
  }
}

TEST(FloatExecutable, ComputesWhatTheModuleComputesForEveryLayerKind) {
  for (const auto& c : test::kCases) expect_matches_module(c.build());
  expect_matches_module(depthwise_odd_sigmoid());
  expect_matches_module(two_outputs());
}

TEST(FloatExecutable, ListsThePrimitiveOfEachLayerWithItsFusedActivation) {
  if (!kOneDnn) GTEST_SKIP() << "built without oneDNN";
  auto exe = float_executable(test::randomised(test::conv_bn_relu6_strided(), 1));
  exe->run(batch_for(test::conv_bn_relu6_strided(), 4));
  const auto lowered = exe->lowered();
  ASSERT_FALSE(lowered.empty());
  // Batch norm folded into the conv, ReLU6 a post-op of it: one primitive.
  EXPECT_EQ(lowered.front().rfind("conv: oneDNN convolution", 0), 0u) << lowered.front();
  EXPECT_NE(lowered.front().find("+ relu6"), std::string::npos) << lowered.front();
  for (const auto& line : lowered) {
    EXPECT_EQ(line.find("bn:"), std::string::npos) << line;
    EXPECT_EQ(line.find("act:"), std::string::npos) << line;
  }
}

TEST(FloatExecutable, FallsBackToLibTorchAndSaysWhyForAnOpOneDnnDoesNotLower) {
  Graph g("Vae");
  auto x = g.input("input", {4});
  auto mu = g.linear("mu", x, 4, 2);
  auto logvar = g.linear("logvar", x, 4, 2);
  g.set_outputs({g.reparameterize("z", mu, logvar)});
  auto exe = float_executable(GraphModule(g));
  EXPECT_NE(exe->describe().find("LibTorch"), std::string::npos) << exe->describe();
  if (kOneDnn) {
    EXPECT_NE(exe->describe().find("reparameterize (z)"), std::string::npos) << exe->describe();
  }
  EXPECT_EQ(exe->run(torch::randn({3, 4}))[0].sizes(), (std::vector<std::int64_t>{3, 2}));

  Graph bn_first("BatchNormFirst");
  auto y = bn_first.input("input", {2, 4, 4});
  bn_first.set_outputs({bn_first.batch_norm2d("bn", y, 2)});
  auto bn_exe = float_executable(test::randomised(bn_first, 2));
  EXPECT_NE(bn_exe->describe().find("LibTorch"), std::string::npos) << bn_exe->describe();
  const auto in = torch::randn({5, 2, 4, 4});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(bn_exe->run(in)[0], test::randomised(bn_first, 2)->forward(in)[0]));
}

TEST(FloatExecutable, LibTorchKernelsOnRequest) {
  auto module = test::randomised(test::conv_relu(), 4);
  auto exe = float_executable(module, FloatKernels::libtorch);
  EXPECT_EQ(exe->describe().find("oneDNN"), std::string::npos) << exe->describe();
  const auto x = batch_for(test::conv_relu(), 3);
  torch::NoGradGuard no_grad;
  EXPECT_LT(test::normalised_error(exe->run(x)[0], module->forward(x)[0]), 1e-6);
}

}  // namespace
}  // namespace qlab
