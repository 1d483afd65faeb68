// int8 layers on integer matrix products (plugins/backends/cuda/int_mm.hpp):
// the product against exact arithmetic on odd shapes, and whole models at
// every width against their fake-quant twin. Here they run on the CPU, where
// an exact int32 product stands in for at::_int_mm; on a machine with a GPU
// and LibTorch >= 2.1 each test runs on the GPU as well, through _int_mm.
#include "int8_cases.hpp"
#include "test_support.hpp"

#include <int_mm.hpp>
#include <qlab/quant/config_list.hpp>

#include <torch/cuda.h>

namespace qlab {
namespace {

using test::calibration_for;
using test::normalised_error;
using test::randomised;

using test::kTwinEqual;  // integer products are exact: equal codes

std::vector<torch::Device> devices() {
  std::vector<torch::Device> d{torch::kCPU};
  if (torch::cuda::is_available() && cuda::has_int_mm()) d.emplace_back(torch::kCUDA, 0);
  return d;
}

std::shared_ptr<const QuantizedModel> quantized(const Graph& g, int bits, std::uint64_t seed) {
  auto m = randomised(g, seed);
  PtqSpec spec;
  spec.config = default_config_list({}, {bits, bits, bits});
  spec.calibration_batches = 4;
  return std::make_shared<const QuantizedModel>(
      post_training_quantize(m, spec, calibration_for(m->graph(), seed + 1)));
}

TEST(IntMm, ProductIsExactOnOddShapes) {
  torch::manual_seed(5);
  for (const auto& device : devices())
    for (auto [m, k, n] : std::vector<std::array<std::int64_t, 3>>{
             {1, 1, 1}, {5, 7, 3}, {17, 9, 13}, {33, 64, 10}, {100, 1152, 96}}) {
      const auto a = torch::randint(-128, 128, {m, k}, torch::kInt8);
      const auto b = torch::randint(-128, 128, {k, n}, torch::kInt8);
      const auto got = cuda::int_mm(a.to(device), b.to(device)).to(torch::kCPU);
      ASSERT_EQ(got.scalar_type(), torch::kInt32);
      ASSERT_EQ(got.sizes(), (std::vector<std::int64_t>{m, n}));
      const auto exact = a.to(torch::kFloat64).mm(b.to(torch::kFloat64));
      EXPECT_TRUE(got.to(torch::kFloat64).equal(exact))
          << m << "x" << k << "x" << n << " on " << device;
    }
}

TEST(IntMm, EveryLayerKindAtEveryWidthMatchesItsTwin) {
  for (const auto& device : devices())
    for (const auto& c : test::kCases)
      for (int bits : {1, 2, 4, 8}) {
        const auto q = quantized(c.build(), bits, 60);
        auto exe = cuda::int_mm_executable(q, device);
        ASSERT_EQ(exe->mode(), Mode::int8) << c.name << ": " << exe->describe();
        const auto x = calibration_for(q->graph(), 62).images.slice(0, 0, 32);
        const auto got = exe->run(x)[0];
        EXPECT_TRUE(got.device().is_cpu());
        EXPECT_LT(normalised_error(got, test::twin(*q, x)), kTwinEqual)
            << c.name << " at " << bits << " bits on " << device;
      }
}

// A depthwise convolution has no int_mm lowering: it is simulated, and the
// executable says so in its mode, its description and its layer lines.
TEST(IntMm, GroupedConvolutionsAreSimulatedAndSaySo) {
  Graph g("Depthwise");
  auto x = g.input("input", {4, 10, 10});
  x = g.conv2d("expand", x, 4, 16, 1);
  x = g.relu6("expand_act", x);
  x = g.conv2d("depthwise", x, 16, 16, 3, 1, 1, 16);
  x = g.relu6("depthwise_act", x);
  x = g.adaptive_avg_pool2d("pool", x, 1);
  x = g.flatten("flatten", x);
  g.set_outputs({g.linear("fc", x, 16, 5)});
  const auto q = quantized(g, 8, 70);
  for (const auto& device : devices()) {
    auto exe = cuda::int_mm_executable(q, device);
    EXPECT_EQ(exe->mode(), Mode::simulated);
    EXPECT_NE(exe->describe().find("for depthwise"), std::string::npos) << exe->describe();
    const auto lines = exe->lowered();
    const auto line = [&](const std::string& node) {
      for (const auto& l : lines)
        if (l.rfind(node + ":", 0) == 0) return l;
      return std::string();
    };
    EXPECT_NE(line("expand").find("int8 x int8 -> int32"), std::string::npos) << line("expand");
    EXPECT_NE(line("fc").find("int8 x int8 -> int32"), std::string::npos) << line("fc");
    EXPECT_NE(line("depthwise").find("simulated in fp32 (a grouped convolution (16 groups)"),
              std::string::npos)
        << line("depthwise");
    const auto in = calibration_for(q->graph(), 72).images.slice(0, 0, 32);
    EXPECT_LT(normalised_error(exe->run(in)[0], test::twin(*q, in)), kTwinEqual) << device;
  }
}

TEST(IntMm, RefusesADynamicModel) {
  auto m = randomised(test::mlp(), 80);
  PtqSpec spec;
  spec.scheme = Scheme::dynamic;
  const auto q = std::make_shared<const QuantizedModel>(
      post_training_quantize(m, spec, calibration_for(m->graph(), 81)));
  try {
    cuda::int_mm_executable(q, torch::kCPU);
    ADD_FAILURE() << "a dynamic model was lowered onto int_mm";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("takes a static model on int8 grids"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace qlab
