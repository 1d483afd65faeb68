// Low bits on int8 kernels: a b-bit uniform grid (b <= 8) is a subset of
// the int8 grid of the same scale, so the int8 kernels compute such a model
// exactly. Each test compares the int8-kernel outputs with the model's
// fake-quant twin (simulate()) at every width, for every layer kind and
// every quantizer: the codes are equal.
#include "int8_cases.hpp"
#include "test_support.hpp"

#include <bit_kernels.hpp>
#include <winograd_kernels.hpp>

#include <qlab/quant/ptq.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>

namespace qlab {
namespace {

using test::calibration_for;
using test::kCases;
using test::normalised_error;
using test::randomised;
using test::twin;

const Registry& registry() { return test::build_registry(); }

constexpr int kWidths[] = {1, 2, 3, 4, 6, 8};

// int8 kernels against the engine's fake-quant twin: equal codes at every
// width (kTwinEqual), measured on this machine's onednn (VNNI, and AVX2
// through ONEDNN_MAX_CPU_ISA) and qnnpack.
using test::kTwinEqual;
LayerBits every(int bits) { return {bits, bits, bits}; }

// Case c's model, its weights randomised, statically quantized at `bits`
// (weights and activations) on 4 calibration batches, with the engine's
// per-channel weights and reduced range.
std::shared_ptr<const QuantizedModel> quantized(const test::Case& c, int bits,
                                                const EngineConstraints& engine = {}) {
  auto m = randomised(c.build(), 30);
  PtqSpec spec;
  spec.config = default_config_list({}, every(bits));
  spec.calibration_batches = 4;
  spec.per_channel = engine.per_channel_weights;
  spec.reduce_range = engine.reduce_range;
  return std::make_shared<const QuantizedModel>(
      post_training_quantize(m, spec, calibration_for(m->graph(), 31)));
}

class Int8LowBits : public ::testing::TestWithParam<std::string> {
 protected:
  std::shared_ptr<Backend> backend() const {
    auto b = registry().backend(GetParam());
    if (b->availability().available)
      b->configure(resolve(b->options(), RawSection{"backend", {}, {}}));
    return b;
  }
};

// Static post-training quantization of every layer kind at every width runs
// on int8 kernels and agrees with its twin.
TEST_P(Int8LowBits, EveryLayerKindAtEveryWidthMatchesItsTwin) {
  const auto b = backend();
  if (!b->availability().available) GTEST_SKIP() << b->availability().reason;
  const EngineConstraints engine = b->constraints();
  for (const auto& c : kCases)
    for (int bits : kWidths) {
      const auto q = quantized(c, bits, engine);
      auto exe = b->lower(q);
      ASSERT_EQ(exe->mode(), Mode::int8) << c.name << " at " << bits << " bits";
      const auto x = calibration_for(q->graph(), 32).images.slice(0, 0, 32);
      const double err = normalised_error(exe->run(x)[0], twin(*q, x));
      EXPECT_LT(err, kTwinEqual) << c.name << " at " << bits << " bits";
      std::printf("W%dA%d %-22s on %s (%s): %.2e against the twin\n", bits, bits, c.name,
                  GetParam().c_str(), engine.int8_path.c_str(), err);
    }
}

// What each quantizer made, trained for one epoch on the tiny model, at
// weight and activation width `bits`, lowered on the backend.
struct Made {
  std::shared_ptr<const QuantizedModel> model;
  std::unique_ptr<Executable> exe;
};

Made quantize_tiny(const std::string& quantizer_name, int bits, const Backend& backend,
                   const std::vector<std::pair<std::string, Value>>& extra = {}) {
  auto quantizer = registry().quantizer(quantizer_name);
  RawSection raw{"quantizer", {}, {}};
  raw.values["weight_bits"] = {std::int64_t{bits}, {}};
  raw.values["activation_bits"] = {std::int64_t{bits}, {}};
  for (const auto& [k, v] : extra) raw.values[k] = {v, {}};
  const Options opts = resolve(quantizer->schema(), raw);
  test::TinyModel model;
  torch::manual_seed(40 + bits);
  GraphModule m(model.build({}, {"tiny", {1, 8, 8}, 3}));
  const Dataset data = test::tiny_dataset(192, 41);
  QuantizeContext ctx = test::training_context(model, data);
  ctx.engine = backend.constraints();
  ctx.rules = quantizer->caps().rules;
  ctx.config = config_list_option(opts, ctx.rules);
  ctx.recipe.epochs = 1;
  auto q = std::make_shared<const QuantizedModel>(quantizer->quantize(m, opts, ctx));
  auto exe = backend.lower(q);
  return {q, std::move(exe)};
}

// Every quantizer at every width it takes runs on int8 kernels as its twin;
// only 8-bit DoReFa weights (256 half-step levels, 9-bit codes) stay simulated.
TEST_P(Int8LowBits, EveryQuantizerAtEveryWidthMatchesItsTwin) {
  const auto b = backend();
  if (!b->availability().available) GTEST_SKIP() << b->availability().reason;
  const auto x = test::tiny_dataset(64, 42).images;
  for (const char* name : {"static", "qat", "lsq", "dorefa"})
    for (int bits : kWidths) {
      if (std::string(name) == "lsq" && bits < 2) continue;  // LSQ takes 2 to 8 bits
      const Made made = quantize_tiny(name, bits, *b);
      if (std::string(name) == "dorefa" && bits == 8) {
        EXPECT_EQ(made.exe->mode(), Mode::simulated);
        EXPECT_NE(made.exe->describe().find("8-bit DoReFa weights"), std::string::npos)
            << made.exe->describe();
        continue;
      }
      ASSERT_EQ(made.exe->mode(), Mode::int8)
          << name << " at " << bits << " bits: " << made.exe->describe();
      EXPECT_EQ(made.model->widths(), fmt::format("W{0}A{0} x2", bits));
      const auto& q = *made.model;
      const double err = normalised_error(made.exe->run(x)[0], twin(q, x));
      EXPECT_LT(err, kTwinEqual) << name << " at " << bits << " bits";
      std::printf("W%dA%d %-7s on %s: %.2e against the twin\n", bits, bits, name,
                  GetParam().c_str(), err);
    }
}

// The tiny model from an NNI-style list mixing widths per layer: its convs
// at W`weight`A`activation`, classifier.1 at 8-bit weights and output.
Made quantize_mixed(const Backend& backend, int weight, int activation) {
  const auto list = nlohmann::json::parse(fmt::format(R"([
    {{"op_types": ["conv2d"], "quant_types": ["weight", "input", "output"],
     "quant_bits": {{"weight": {}, "input": {}, "output": {}}}}},
    {{"op_names": ["classifier.1"], "quant_types": ["weight", "output"],
     "quant_bits": {{"weight": 8, "output": 8}}}}])",
                                                      weight, activation, activation));
  return quantize_tiny("static", 8, backend, {{"config", TableList{list}}});
}

// An NNI-style list mixing widths per layer runs on int8 kernels too.
TEST_P(Int8LowBits, MixedWidthsFromAConfigListMatchTheirTwin) {
  const auto b = backend();
  if (!b->availability().available) GTEST_SKIP() << b->availability().reason;
  const Made made = quantize_mixed(*b, 2, 4);
  ASSERT_EQ(made.exe->mode(), Mode::int8) << made.exe->describe();
  EXPECT_EQ(made.model->widths(), "W2A4 x1, W8A4 x1");
  const auto x = test::tiny_dataset(64, 43).images;
  const auto& q = *made.model;
  EXPECT_LT(normalised_error(made.exe->run(x)[0], twin(q, x)), kTwinEqual);
}

// bitserial takes every conv2d and linear layer of 1- or 2-bit weights and
// inputs onto its bit kernels (the suite above checks their outputs), and
// leaves wider ones to oneDNN's int8 kernels. A W2A2 conv2d runs on
// Winograd's kernels where it is 3x3 of stride 1 on AVX2 or VNNI, else on
// AVX2 on product tables (conv_flatten_linear's 5x5) or packed fields, and
// says so.
TEST(Bitserial, RunsOneAndTwoBitLayersOnBitKernelsAndTheRestOnInt8) {
  auto b = registry().backend("bitserial");
  if (!b->availability().available) GTEST_SKIP() << b->availability().reason;
  b->configure(resolve(b->options(), RawSection{"backend", {}, {}}));
  const bool avx2 = bits::best_isa() == bits::Isa::avx2,
             vnni = bits::best_isa() == bits::Isa::avx512 && bits::cpu_has_vnni();
  std::size_t winograd = 0, tables = 0;
  for (const auto& c : kCases)
    for (int bits : {1, 2, 4}) {
      const auto q = quantized(c, bits);
      const auto exe = b->lower(q);
      ASSERT_EQ(exe->mode(), Mode::int8);
      std::size_t bit_layers = 0;
      for (const auto& line : exe->lowered()) {
        bit_layers += line.find("bitserial::") != std::string::npos;
        const bool two_bit_conv = line.find("bitserial::conv2d") != std::string::npos && bits == 2;
        if (line.find(", fields)") != std::string::npos) {
          EXPECT_TRUE(two_bit_conv && avx2) << line;
        }
        if (line.find(", winograd)") != std::string::npos) {
          EXPECT_TRUE(two_bit_conv && (avx2 || vnni)) << line;
          ++winograd;
        }
        if (line.find(", tables)") != std::string::npos) {
          EXPECT_TRUE(two_bit_conv && avx2) << line;
          ++tables;
        }
      }
      if (bits <= 2) {
        EXPECT_EQ(bit_layers, q->layers.size()) << c.name << " at " << bits << " bits";
        EXPECT_NE(exe->describe().find("bitserial's own kernels for"), std::string::npos)
            << exe->describe();
      } else {
        EXPECT_EQ(bit_layers, 0u) << c.name << " at " << bits << " bits";
      }
    }
  EXPECT_EQ(winograd > 0, avx2 || vnni);  // the cases hold 3x3 convolutions of stride 1
  EXPECT_EQ(tables > 0, avx2);
}

// A linear layer of 8-bit weights on one-bit inputs (a binary network's
// last layer) runs on selected sums, and equals its twin.
TEST(Bitserial, ALinearLayerOnOneBitInputsAddsTheWeightsItsBitsSelect) {
  auto b = registry().backend("bitserial");
  if (!b->availability().available) GTEST_SKIP() << b->availability().reason;
  b->configure(resolve(b->options(), RawSection{"backend", {}, {}}));
  const Made made = quantize_mixed(*b, 1, 1);
  ASSERT_EQ(made.exe->mode(), Mode::int8) << made.exe->describe();
  EXPECT_EQ(made.model->widths(), "W1A1 x1, W8A1 x1");
  const auto rows = made.exe->lowered();
  const bool selected = std::any_of(rows.begin(), rows.end(), [](const std::string& r) {
    return r.find("classifier.1: bitserial::linear W8A1") != std::string::npos &&
           r.find("selected sums") != std::string::npos;
  });
  EXPECT_TRUE(selected) << fmt::format("{}", fmt::join(rows, "\n"));
  const auto x = test::tiny_dataset(64, 43).images;
  EXPECT_LT(normalised_error(made.exe->run(x)[0], twin(*made.model, x)), kTwinEqual);
}

// Steps on qlab's kernels run as segments, each thread taking its share of
// the batch through all of them: the codes are those of the steps run one
// at a time over the whole batch, which a single thread does.
TEST(Int8Segments, GiveTheCodesOfOneStepAtATime) {
  for (const auto& [name, bits] : {std::pair{"bitserial", 1}, {"onednn", 8}}) {
    auto b = registry().backend(name);
    if (!b->availability().available) continue;
    b->configure(resolve(b->options(), RawSection{"backend", {}, {}}));
    for (const auto& c : kCases) {
      const auto exe = b->lower(quantized(c, bits));
      if (std::string(c.name) == "conv_relu") {
        EXPECT_NE(exe->describe().find("through input .. flatten in one pass"), std::string::npos)
            << name << ": " << exe->describe();
      }
      // 37 images: shares of unequal size.
      const auto x = calibration_for(c.build(), 32).images.slice(0, 0, 37);
      const int threads = at::get_num_threads();
      at::set_num_threads(3);
      const auto shared = exe->run(x)[0];
      at::set_num_threads(1);
      const auto alone = exe->run(x)[0];
      at::set_num_threads(threads);
      EXPECT_TRUE(torch::equal(shared, alone)) << name << ", " << c.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, Int8LowBits,
                         ::testing::Values("onednn", "qnnpack", "fbgemm", "x86", "bitserial"));

}  // namespace
}  // namespace qlab
