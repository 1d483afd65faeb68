// qlab's int8 image convolution (few input channels, output columns in the
// vector lanes) against the integer convolution it must equal, on every
// instruction set this CPU has, and as the int8 executable lowers it.
#include "int8_cases.hpp"

#include <image_conv.hpp>
#include <int8_executable.hpp>

#include <code_kernels.hpp>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

namespace qlab::int8 {
namespace {

struct ConvCase {
  std::int64_t in, out, kernel, padding, height, width, batch;
  bool relu;
  int weight_bits = 8;
};

std::string describe(const ConvCase& c) {
  return fmt::format("{}->{} k{} p{} {}x{} batch {}{} W{}", c.in, c.out, c.kernel, c.padding,
                     c.height, c.width, c.batch, c.relu ? " relu" : "", c.weight_bits);
}

// A static model of one conv (and its relu, fused), 8-bit activations and
// c.weight_bits-bit weights, quantized on random data; `reduce_range`:
// 7-bit activations, whose pairs of products the engines' AVX2 kernels sum
// in 16 bits without saturating.
std::shared_ptr<const QuantizedModel> quantized_conv(const ConvCase& c, std::uint64_t seed,
                                                     bool reduce_range = false) {
  Graph g("ImageConv");
  auto x = g.input("input", {c.in, c.height, c.width});
  x = g.conv2d("conv", x, c.in, c.out, c.kernel, 1, c.padding);
  if (c.relu) x = g.relu("relu", x);
  g.set_outputs({x});
  auto m = test::randomised(g, seed);
  PtqSpec spec;
  spec.calibration_batches = 2;
  spec.reduce_range = reduce_range;
  spec.config = default_config_list({}, {c.weight_bits, 8, 8});
  return std::make_shared<const QuantizedModel>(
      post_training_quantize(m, spec, test::calibration_for(m->graph(), seed)));
}

// What the int8 executable offers for the model's conv.
LayerOffer offer_for(const QuantizedModel& q) {
  const Node& node = q.graph().node("conv");
  const QLayer& layer = q.layers.at("conv");
  const QParams& in = *q.input_grid("conv");
  const QParams& out = q.activations.at("conv");
  return {node,
          layer,
          in,
          int32_bias(layer, in.scale.item<double>()).values(),
          out.scale.item<double>(),
          out.zero_point.item<std::int64_t>() - out.qmin,
          static_cast<std::uint8_t>(out.qmax - out.qmin)};
}

// The output codes from exact integer dots: sum (x - z_in) w + bias code,
// then round(m dot + z_out) in float, clamped to the grid.
torch::Tensor reference(const LayerOffer& o, const torch::Tensor& x) {
  const auto [codes, scale] = int8_codes(o.layer);
  const double s_in = o.input.scale.item<double>();
  const auto dots = torch::conv2d(x.int_repr().to(torch::kFloat64) - x.q_zero_point(),
                                  codes.to(torch::kFloat64), {}, 1, o.node.attrs.padding) +
                    int32_bias(o.layer, s_in).codes.to(torch::kFloat64).view({1, -1, 1, 1});
  const auto s_w = scale.to(torch::kFloat64).expand({codes.size(0)}).contiguous();
  const bool relu = o.node.attrs.activation != Activation::none;
  const float lo = relu ? static_cast<float>(std::max<std::int64_t>(o.out_zero_point, 0)) : 0.0f,
              hi = o.out_qmax;
  auto want = torch::empty(dots.sizes(), torch::kInt32);
  const auto d = dots.accessor<double, 4>();
  auto w = want.accessor<std::int32_t, 4>();
  for (std::int64_t n = 0; n < dots.size(0); ++n)
    for (std::int64_t c = 0; c < dots.size(1); ++c) {
      const auto m = static_cast<float>(s_in * s_w[c].item<double>() / o.out_scale);
      for (std::int64_t y = 0; y < dots.size(2); ++y)
        for (std::int64_t x_ = 0; x_ < dots.size(3); ++x_) {
          const float v =
              std::fma(m, static_cast<float>(d[n][c][y][x_]), static_cast<float>(o.out_zero_point));
          w[n][c][y][x_] = static_cast<std::int32_t>(std::nearbyint(std::min(std::max(v, lo), hi)));
        }
    }
  return want;
}

// On 40 random shapes, the kernel's codes on every ISA this CPU has,
// threaded and not, equal those of the exact integer convolution or, with
// `pooled`, of that convolution pooled by 2x2 windows as the executable's
// pooling step pools them: 1 to 4 input channels; output channels across
// AVX2's blocks of 8 registers and a block's tail (at most 16 pooled);
// widths on both sides of a register's 8 and 16 columns, and narrower;
// even and odd maps, so that a row's last columns are shared between two
// rows or not; weights of 8 bits, and of 7, 4 and 2, which AVX2 takes as
// byte pairs (its row says so).
void expect_codes_on_random_shapes(bool pooled, unsigned seed) {
  std::mt19937 rng(seed);
  const auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  const std::int64_t least = pooled ? 2 : 1;  // the map's height and width
  int checked = 0;
  for (int i = 0; i < 40; ++i) {
    ConvCase c;
    c.in = pick(1, 4);
    c.out = pick(1, pooled ? 16 : 19);
    c.kernel = pick(1, 7);
    c.padding = pick(0, c.kernel / 2);
    c.height = pick(std::max(least, c.kernel - 2 * c.padding + least - 1), 23);
    c.width = pick(std::max(least, c.kernel - 2 * c.padding + least - 1), 37);
    c.batch = pick(1, 5);
    c.relu = i % 2 == 0;
    c.weight_bits = std::array{8, 7, 4, 2}[static_cast<std::size_t>(i % 4)];
    const auto q = quantized_conv(c, seed + i);
    const LayerOffer o = offer_for(*q);
    const auto x = quantize_codes(torch::randn({c.batch, c.in, c.height, c.width}) * 2,
                                  o.input.scale.item<double>(),
                                  o.input.zero_point.item<std::int64_t>() - o.input.qmin, false, 0,
                                  static_cast<std::uint8_t>(o.input.qmax - o.input.qmin));
    auto want = reference(o, x);
    if (pooled)
      want = avg_pool_codes(at::_make_per_tensor_quantized_tensor(want.to(torch::kUInt8),
                                                                  o.out_scale, o.out_zero_point)
                                .contiguous(at::MemoryFormat::ChannelsLast),
                            {2, 2}, {2, 2}, false)
                 .int_repr()
                 .to(torch::kInt32);
    for (ImageConvIsa isa :
         {ImageConvIsa::portable, ImageConvIsa::avx2, ImageConvIsa::avx512_vnni}) {
      if (!cpu_has(isa)) continue;
      const auto kernel = image_conv_for(o, isa, pooled);
      ASSERT_TRUE(kernel) << describe(c);
      EXPECT_EQ(kernel->name.find("then its 2x2 average pooling") != std::string::npos, pooled)
          << kernel->name;
      if (isa == ImageConvIsa::avx2 && c.weight_bits < 8) {
        EXPECT_NE(kernel->name.find("byte pairs"), std::string::npos) << kernel->name;
      }
      for (bool parallel : {false, true}) {
        const auto got = kernel->run(x, parallel);
        ASSERT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
        ASSERT_EQ(got.sizes(), want.sizes()) << describe(c);
        EXPECT_EQ(got.q_scale(), o.out_scale);
        EXPECT_EQ(got.q_zero_point(), o.out_zero_point);
        const auto diff = (got.int_repr().to(torch::kInt32) - want).abs().max().item<int>();
        EXPECT_EQ(diff, 0) << describe(c) << (pooled ? " pooled" : "") << " on " << to_string(isa)
                           << (parallel ? ", threaded" : "");
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 80);
}

TEST(ImageConv, CodesEqualTheIntegerConvolutionOnRandomShapes) {
  expect_codes_on_random_shapes(false, 100);
}

TEST(ImageConv, PooledCodesEqualTheConvolutionThenItsPooling) {
  expect_codes_on_random_shapes(true, 300);
}

// The largest sums byte pairs meet: every weight at its grid's top and
// every input code 255, over an 11x11 kernel (33 taps of 4 codes), where
// one tap more in a 16-bit group would wrap. 8-bit weights there are past
// what a byte pair holds: they stay on 16-bit pairs.
TEST(ImageConv, BytePairsHoldTheLargestSumsExactly) {
  if (!cpu_has(ImageConvIsa::avx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  for (int bits : {8, 7, 4, 2}) {
    ConvCase c{1, 3, 11, 0, 16, 19, 2, false, bits};
    Graph g("Saturating");
    auto x = g.input("input", {1, c.height, c.width});
    g.set_outputs({g.conv2d("conv", x, 1, c.out, c.kernel, 1, 0)});
    auto m = test::randomised(g, 9);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : m->named_parameters())
        if (p.key().find("weight") != std::string::npos) p.value().fill_(0.5);
    }
    PtqSpec spec;
    spec.calibration_batches = 2;
    spec.config = default_config_list({}, {bits, 8, 8});
    const QuantizedModel q = post_training_quantize(m, spec, test::calibration_for(m->graph(), 9));
    const LayerOffer o = offer_for(q);
    const auto top = o.input.qmax - o.input.qmin;
    const auto input = at::_make_per_tensor_quantized_tensor(
        torch::full({c.batch, 1, c.height, c.width}, top, torch::kUInt8),
        o.input.scale.item<double>(), o.input.zero_point.item<std::int64_t>() - o.input.qmin);
    const auto kernel = image_conv_for(o, ImageConvIsa::avx2);
    ASSERT_TRUE(kernel);
    EXPECT_EQ(kernel->name.find("byte pairs") != std::string::npos, bits < 8) << kernel->name;
    const auto got = kernel->run(input, false).int_repr().to(torch::kInt32);
    EXPECT_TRUE(torch::equal(got, reference(o, input))) << describe(c);
  }
}

TEST(ImageConv, PoolsAtMost16ChannelsAndMapsOfAtLeast2x2) {
  ConvCase c{1, 17, 3, 0, 12, 12, 2, true};
  EXPECT_FALSE(image_conv_for(offer_for(*quantized_conv(c, 4)), std::nullopt, true));
  EXPECT_TRUE(image_conv_for(offer_for(*quantized_conv(c, 4)), std::nullopt, false));
  c = {1, 6, 5, 0, 6, 6, 2, true};
  const auto q = quantized_conv(c, 4);
  const auto kernel = image_conv_for(offer_for(*q), std::nullopt, true);
  ASSERT_TRUE(kernel);
  // A 5x5 input leaves a 1x1 map: nothing to pool.
  const auto tiny = at::quantize_per_tensor(torch::rand({2, 1, 5, 5}), 0.1, 0, torch::kQUInt8);
  try {
    kernel->run(tiny, false);
    FAIL() << "a 1x1 map was pooled";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("at least 2x2"), std::string::npos) << e.what();
  }
}

TEST(ImageConv, TakesOnlyWhatItComputes) {
  ConvCase c{3, 8, 3, 1, 12, 12, 2, true};
  const auto q = quantized_conv(c, 3);
  LayerOffer o = offer_for(*q);
  EXPECT_TRUE(image_conv_for(o));
  const auto refused = [&](auto change) {
    Node n = o.node;
    change(n.attrs);
    return !image_conv_for(
        {n, o.layer, o.input, o.bias, o.out_scale, o.out_zero_point, o.out_qmax});
  };
  EXPECT_TRUE(refused([](Attrs& a) { a.stride = 2; }));
  EXPECT_TRUE(refused([](Attrs& a) { a.groups = 3; }));
  EXPECT_TRUE(refused([](Attrs& a) { a.in = 5; }));
  EXPECT_TRUE(refused([](Attrs& a) { a.kernel = 13; }));
  const auto kernel = image_conv_for(o, ImageConvIsa::portable);
  const auto wrong = at::quantize_per_tensor(torch::rand({2, 4, 12, 12}), 0.1, 0, torch::kQUInt8);
  try {
    kernel->run(wrong, false);
    FAIL() << "a 4-channel input to a 3-channel conv was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[N, 3, H, W]"), std::string::npos) << e.what();
  }
}

TEST(ImageConv, LenetsFirstLayerRunsOnItAndTheRowSaysSo) {
  ConvCase c{1, 6, 5, 0, 32, 32, 4, true};
  const auto q = quantized_conv(c, 5, true);
  const auto lines = [&](bool image_convs) {
    EngineInfo info{"onednn", at::QEngine::ONEDNN, true, {}};
    info.image_convs = image_convs;
    return int8_executable(q, info, false);
  };
  const auto on = lines(true), off = lines(false);
  EXPECT_NE(on->lowered().at(1).find("qlab::conv2d_relu over 1 input channel"), std::string::npos)
      << on->lowered().at(1);
  EXPECT_NE(on->describe().find("qlab's image convolution for conv"), std::string::npos)
      << on->describe();
  EXPECT_NE(off->lowered().at(1).find("quantized::conv2d_relu"), std::string::npos)
      << off->lowered().at(1);
  // Both compute the same codes but where a product of float rounding
  // differs by one step (oneDNN requantizes in its own order).
  const auto x = test::calibration_for(q->graph(), 6).images.slice(0, 0, 8);
  const auto a = on->run(x)[0], b = off->run(x)[0];
  const double step = q->activations.at("conv").scale.item<double>();
  EXPECT_LE((a - b).abs().max().item<double>(), step * 1.01);
}

// A conv, its relu and a 2x2 average pooling, as LeNet begins; `second`:
// the conv's output also read by a flatten, so that the pooling cannot run
// in its kernel.
std::shared_ptr<const QuantizedModel> conv_then_pool(std::int64_t pool_kernel, bool second) {
  Graph g("ConvPool");
  auto x = g.input("input", {1, 16, 16});
  x = g.conv2d("conv", x, 1, 6, 5);
  x = g.relu("relu", x);
  auto y = g.avg_pool2d("pool", x, pool_kernel, 2);
  std::vector<std::string> outputs{g.flatten("flatten", y)};
  if (second) outputs.push_back(g.flatten("again", x));
  g.set_outputs(outputs);
  auto m = test::randomised(g, 21);
  PtqSpec spec;
  spec.calibration_batches = 2;
  spec.reduce_range = true;
  return std::make_shared<const QuantizedModel>(
      post_training_quantize(m, spec, test::calibration_for(m->graph(), 21)));
}

TEST(ImageConv, RunsTheAveragePoolingAfterItWhereItAloneReadsTheConv) {
  EngineInfo info{"onednn", at::QEngine::ONEDNN, true, {}};
  const auto fused = int8_executable(conv_then_pool(2, false), info, false);
  const auto rows = fused->lowered();
  EXPECT_NE(rows.at(1).find("then its 2x2 average pooling"), std::string::npos) << rows.at(1);
  EXPECT_NE(rows.at(2).find("in conv's kernel"), std::string::npos) << rows.at(2);
  for (const auto& [kernel, second] : {std::pair{3, false}, std::pair{2, true}}) {
    const auto apart = int8_executable(conv_then_pool(kernel, second), info, false)->lowered();
    EXPECT_EQ(apart.at(1).find("pooling"), std::string::npos) << apart.at(1);
    EXPECT_NE(apart.at(2).find("quantized tensor op"), std::string::npos) << apart.at(2);
  }
  // The same codes as the steps apart: the image convolution unpooled, then
  // the pooling step's kernel.
  const auto q = conv_then_pool(2, false);
  const LayerOffer o = offer_for(*q);
  const auto x = test::calibration_for(q->graph(), 22).images.slice(0, 0, 8);
  const auto input = quantize_codes(x, o.input.scale.item<double>(),
                                    o.input.zero_point.item<std::int64_t>() - o.input.qmin, false,
                                    0, static_cast<std::uint8_t>(o.input.qmax - o.input.qmin));
  const auto conv = image_conv_for(o, std::nullopt, false);
  ASSERT_TRUE(conv);
  const auto want = avg_pool_codes(conv->run(input, false), {2, 2}, {2, 2}, false);
  for (bool threads : {false, true}) {
    const auto got = fused->run(threads ? x : x.slice(0, 0, 1))[0];
    const auto expected = (threads ? want : want.slice(0, 0, 1)).dequantize();
    EXPECT_TRUE(torch::equal(got, expected.flatten(1)));
  }
}

}  // namespace
}  // namespace qlab::int8
