// The cuda backend. Where this LibTorch has no CUDA or no GPU is visible
// (Debian's LibTorch, CI), only its refusal is tested and every GPU test is
// skipped saying why; on a GPU machine they compare the device against the
// CPU within the tolerances named here.
#include "int8_cases.hpp"
#include "test_support.hpp"

#include <int_mm.hpp>

#include <qlab/plugin/trainer.hpp>
#include <qlab/quant/ptq.hpp>

#include <ATen/Context.h>
#include <torch/cuda.h>

namespace qlab {
namespace {

// Normalised error ||gpu - cpu|| / ||cpu|| of the tiny model's logits.
constexpr double kFp32VsCpu = 1e-5;  // fp32 is strict: the backend turns TF32 off
constexpr double kFp16VsCpu = 5e-3;  // 11-bit mantissa
constexpr double kBf16VsCpu = 4e-2;  // 8-bit mantissa
// Fake-quant on the GPU against the same simulation on the CPU: a value on
// a rounding boundary may land one step apart.
constexpr double kSimulatedVsCpu = 2e-2;
// int8 on _int_mm against the model's fake-quant twin on the CPU: integer
// products are exact, so the codes are equal (test::kTwinEqual).

using test::normalised_error;

std::shared_ptr<Backend> cuda(const std::string& precision = "fp32") {
  auto backend = test::build_registry().backend("cuda");
  RawSection section{"backend", {}, {}};
  section.values["precision"] = {Value{precision}, {}};
  backend->configure(resolve(backend->options(), section));
  return backend;
}

#define SKIP_WITHOUT_GPU()                                                                    \
  do {                                                                                        \
    const auto a = test::build_registry().backend("cuda")->availability();                    \
    if (!a.available) GTEST_SKIP() << "no GPU test here: the cuda backend says " << a.reason; \
  } while (false)

GraphModule tiny_module() {
  torch::manual_seed(3);
  GraphModule m(test::TinyModel().build({}, {"tiny", {1, 8, 8}, 3}));
  m->eval();
  return m;
}

TEST(Cuda, SaysWhyItIsUnavailable) {
  const auto a = test::build_registry().backend("cuda")->availability();
  if (!at::hasCUDA()) {
    EXPECT_FALSE(a.available);
    EXPECT_NE(a.reason.find("this LibTorch has no CUDA"), std::string::npos) << a.reason;
  } else if (!torch::cuda::is_available()) {
    EXPECT_FALSE(a.available);
    EXPECT_NE(a.reason.find("no GPU is visible"), std::string::npos) << a.reason;
  } else {
    EXPECT_TRUE(a.available) << a.reason;
  }
}

TEST(Cuda, FloatInferenceMatchesTheCpuInEachPrecision) {
  SKIP_WITHOUT_GPU();
  auto m = tiny_module();
  const auto x = test::tiny_dataset(64, 5).images;
  const auto expected = m->forward(x)[0].detach();
  for (const auto& [precision, mode, tolerance] :
       std::vector<std::tuple<std::string, Mode, double>>{{"fp32", Mode::fp32, kFp32VsCpu},
                                                          {"fp16", Mode::fp16, kFp16VsCpu},
                                                          {"bf16", Mode::bf16, kBf16VsCpu}}) {
    auto exe = cuda(precision)->lower(m);
    EXPECT_EQ(exe->mode(), mode);
    const auto got = exe->run(x)[0];
    EXPECT_TRUE(got.device().is_cpu());
    EXPECT_LT(normalised_error(got, expected), tolerance) << precision;
    EXPECT_GE(exe->device_peak_bytes(), 0) << "the device allocator's peak is reported";
  }
}

// 10-bit grids do not embed in int8, so they run as a simulation.
TEST(Cuda, FakeQuantSimulationMatchesTheCpuSimulation) {
  SKIP_WITHOUT_GPU();
  auto m = tiny_module();
  PtqSpec spec;
  spec.config = default_config_list({}, {10, 10, 10});
  spec.calibration_batches = 2;
  auto q = std::make_shared<const QuantizedModel>(
      post_training_quantize(m, spec, test::tiny_dataset(64, 6)));
  const auto x = test::tiny_dataset(64, 7).images;
  const auto on_cpu = test::build_registry().backend("cpu")->lower(q)->run(x)[0];
  auto exe = cuda()->lower(q);
  EXPECT_EQ(exe->mode(), Mode::simulated);
  EXPECT_LT(normalised_error(exe->run(x)[0], on_cpu), kSimulatedVsCpu);
}

TEST(Cuda, StaticInt8RunsOnIntMmAndMatchesItsTwin) {
  SKIP_WITHOUT_GPU();
  if (!cuda::has_int_mm()) GTEST_SKIP() << "LibTorch " << TORCH_VERSION << " has no _int_mm";
  auto m = tiny_module();
  PtqSpec spec;
  spec.calibration_batches = 2;
  auto q = std::make_shared<const QuantizedModel>(
      post_training_quantize(m, spec, test::tiny_dataset(64, 6)));
  const auto x = test::tiny_dataset(256, 7).images;
  auto exe = cuda()->lower(q);
  ASSERT_EQ(exe->mode(), Mode::int8) << exe->describe();
  EXPECT_NE(exe->describe().find("at::_int_mm"), std::string::npos) << exe->describe();
  EXPECT_LT(normalised_error(exe->run(x)[0], test::twin(*q, x)), test::kTwinEqual);
  EXPECT_GE(exe->device_peak_bytes(), 0);
}

TEST(Cuda, TrainsOnTheDevice) {
  SKIP_WITHOUT_GPU();
  test::TinyModel model;
  seed_everything(1);
  GraphModule m(model.build({}, {"tiny", {1, 8, 8}, 3}));
  TrainSettings s;
  s.progress = false;
  s.device = cuda()->device();
  TrainRecipe r = model.default_recipe();
  r.epochs = 3;
  const auto rep = train(m, model, test::tiny_dataset(300, 8), r, s);
  EXPECT_TRUE(m->parameters().front().device().is_cuda());
  EXPECT_LT(rep.epochs.back().loss, rep.epochs.front().loss);
  EXPECT_GT(rep.epochs.back().accuracy, 80.0);
}

}  // namespace
}  // namespace qlab
