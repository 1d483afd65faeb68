// The bit kernels against the integer convolution of the same codes, on
// random shapes: odd channel counts (across the 32- and 64-bit boundaries of
// packing, and under 64 channels, where kernel rows are packed densely),
// padding with a non-zero zero point, stride, groups, 1x1 maps as
// linear layers, every weight grid of 1 and 2 bits; on each instruction set
// this CPU has, with activations packed as bit planes and as fields (a
// pixel's channels filling whole words or not). The sums are integers, so
// they must be equal, not close.
#include <bit_layers.hpp>
#include <table_kernels.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

namespace qlab::bits {
namespace {

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512})
    if (cpu_has(isa)) out.push_back(isa);
  return out;
}

struct Case {
  LayerSpec spec;
  std::int64_t batch = 1, height = 1, width = 1, in = 1, out = 1, kernel = 1;
  std::int64_t zero_point = 0;
  std::vector<int> levels;  // the weight grid's int8 codes
};

Case random_case(std::mt19937& rng, int trial) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  Case c;
  c.spec.linear = trial % 5 == 0;
  c.spec.activation_bits = static_cast<int>(pick(1, 2));
  c.spec.weight_bits = static_cast<int>(pick(1, 2));
  const std::vector<std::vector<int>> two_bit{{-2, -1, 0, 1}, {-3, -1, 1, 3}, {-1, 0, 1}};
  c.levels = c.spec.weight_bits == 1 ? std::vector<int>{-1, 1}
                                     : two_bit[static_cast<std::size_t>(pick(0, 2))];
  // A third of the linear layers on one-bit inputs take wider weights,
  // which only selected sums run.
  if (c.spec.linear && c.spec.activation_bits == 1 && trial % 3 == 0) {
    c.spec.weight_bits = static_cast<int>(pick(3, 8));
    const int half = 1 << (c.spec.weight_bits - 1);
    c.levels.clear();
    for (int level = -half; level < half; ++level) c.levels.push_back(level);
  }
  c.zero_point = pick(0, (1 << c.spec.activation_bits) - 1);
  // A linear layer's images run as the columns of a row: enough of them
  // for several column tiles.
  c.batch = c.spec.linear ? pick(1, 30) : pick(1, 3);
  const std::int64_t groups = c.spec.linear ? 1 : std::vector<std::int64_t>{1, 1, 2, 3}[pick(0, 3)];
  c.spec.groups = groups;
  // Every sixth case has few channels, so that W1A1 rows fit half a word
  // (the AVX2 pair kernel) often enough; every seventh, whole words of
  // them, so that rows pack in one call.
  c.in = groups * (trial % 6 == 1 ? pick(1, 6) : trial % 7 == 3 ? 64 * pick(1, 2) : pick(1, 140));
  c.out = groups * pick(1, 9);
  if (!c.spec.linear) {
    c.kernel = std::vector<std::int64_t>{1, 2, 3, 5}[pick(0, 3)];
    c.spec.stride = pick(1, 2);
    c.spec.padding = pick(0, 2);
    c.height = pick(std::max<std::int64_t>(1, c.kernel - 2 * c.spec.padding), 9);
    // Wide enough for rows of several column tiles (W1A1 splits at 12).
    c.width = pick(std::max<std::int64_t>(1, c.kernel - 2 * c.spec.padding), 30);
    // Every eighth case a shape the Winograd kernels take (3x3, stride 1,
    // one group), drawn as the others so that their draws stay the same.
    if (trial % 8 == 2) {
      c.in /= groups;
      c.out /= groups;
      c.spec.groups = 1;
      c.kernel = 3;
      c.spec.stride = 1;
      c.height = std::max<std::int64_t>(c.height, 3 - 2 * c.spec.padding);
      c.width = std::max<std::int64_t>(c.width, 3 - 2 * c.spec.padding);
    }
  }
  return c;
}

// The case's geometry as far as packing decides: channels, groups, kernel
// and stride.
ConvGeometry geometry_of(const Case& c) {
  ConvGeometry g;
  g.in_channels = c.in;
  g.groups = c.spec.groups;
  g.kernel = c.kernel;
  g.stride = c.spec.stride;
  return g;
}

bool winograd_case(const Case& c) {
  return !c.spec.linear && c.kernel == 3 && c.spec.stride == 1 && c.spec.groups == 1 &&
         c.spec.weight_bits <= 2;
}

// The packings that run the case on `isa`: bit planes, fields and (where
// their sums fit) tables for weights of up to 2 bits; selected sums for a
// linear layer on one-bit inputs; Winograd for a 3x3 conv of stride 1
// (avx512 where it has VNNI).
std::vector<Packing> packings(const Case& c, Isa isa) {
  std::vector<Packing> out;
  if (c.spec.weight_bits <= 2) out = {Packing::planes, Packing::fields};
  if (c.spec.weight_bits <= 2 && tables_fit(geometry_of(c))) out.push_back(Packing::tables);
  if (c.spec.linear && c.spec.activation_bits == 1) out.push_back(Packing::selected);
  if (winograd_case(c) && (isa != Isa::avx512 || cpu_has_vnni())) out.push_back(Packing::winograd);
  return out;
}

std::string describe(const Case& c) {
  return c.spec.linear
             ? "linear " + std::to_string(c.in) + "->" + std::to_string(c.out) + " W" +
                   std::to_string(c.spec.weight_bits) + "A" + std::to_string(c.spec.activation_bits)
             : "conv " + std::to_string(c.in) + "->" + std::to_string(c.out) + " k" +
                   std::to_string(c.kernel) + " s" + std::to_string(c.spec.stride) + " p" +
                   std::to_string(c.spec.padding) + " g" + std::to_string(c.spec.groups) + " " +
                   std::to_string(c.height) + "x" + std::to_string(c.width) + " W" +
                   std::to_string(c.spec.weight_bits) + "A" +
                   std::to_string(c.spec.activation_bits) + " zp" + std::to_string(c.zero_point);
}

// sum a w in float64 (exact for these sizes), NHWC; padding holds the zero point.
torch::Tensor reference_dots(const Case& c, const torch::Tensor& a, const torch::Tensor& w) {
  const auto af = a.to(torch::kFloat64), wf = w.to(torch::kFloat64);
  if (c.spec.linear) return af.matmul(wf.t()).to(torch::kInt32);
  const std::int64_t p = c.spec.padding;
  const auto padded = torch::constant_pad_nd(af, {p, p, p, p}, static_cast<double>(c.zero_point));
  namespace F = torch::nn::functional;
  return F::conv2d(padded, wf, F::Conv2dFuncOptions().stride(c.spec.stride).groups(c.spec.groups))
      .permute({0, 2, 3, 1})
      .to(torch::kInt32);
}

TEST(BitKernels, DotsEqualTheIntegerConvolutionOnRandomShapes) {
  std::mt19937 rng(7);
  torch::manual_seed(7);
  int windowed = 0, aligned = 0;  // both packings of kernel rows, counted
  int dense_fields = 0, window_fields = 0, selected = 0, wide = 0, paired = 0, two_by_two = 0;
  int whole_words = 0, winograd = 0, tables = 0;
  for (int trial = 0; trial < 160; ++trial) {
    Case c = random_case(rng, trial);
    const ConvGeometry g = geometry_of(c);
    ++(g.windowed() ? windowed : aligned);
    paired += g.paired() && c.spec.weight_bits == 1 && c.spec.activation_bits == 1;
    ++(g.group_in() % 4 == 0 ? dense_fields : window_fields);
    const auto ways = packings(c, Isa::portable);
    selected += ways.back() == Packing::selected;
    winograd += winograd_case(c);
    tables += std::count(ways.begin(), ways.end(), Packing::tables) > 0;
    wide += c.spec.weight_bits > 2;
    two_by_two += c.spec.weight_bits == 2 && c.spec.activation_bits == 2;
    whole_words += g.group_in() % 64 == 0 && g.groups == 1 && !g.windowed();
    const auto shape = c.spec.linear ? std::vector<std::int64_t>{c.batch, c.in}
                                     : std::vector<std::int64_t>{c.batch, c.in, c.height, c.width};
    const auto a = torch::randint(0, 1 << c.spec.activation_bits, shape, torch::kUInt8);
    const auto x = at::_make_per_tensor_quantized_tensor(a, 0.1, c.zero_point);
    const auto wshape =
        c.spec.linear ? std::vector<std::int64_t>{c.out, c.in}
                      : std::vector<std::int64_t>{c.out, c.in / c.spec.groups, c.kernel, c.kernel};
    const auto levels = torch::tensor(c.levels, torch::kInt8);
    const auto w = levels.index(
        {torch::randint(0, static_cast<std::int64_t>(c.levels.size()), wshape, torch::kInt64)});
    const auto expected = reference_dots(c, a, w);
    for (Isa isa : isas())
      for (Packing packing : packings(c, isa))
        for (bool parallel : {false, true}) {
          BitLayer layer(c.spec, w, torch::ones({1}, torch::kFloat64), {}, isa, packing);
          const auto got = layer.dots(x, parallel);
          ASSERT_TRUE(torch::equal(got, expected))
              << describe(c) << " on " << to_string(isa) << ", " << to_string(packing)
              << ": max difference " << (got - expected).abs().max().item<int>();
        }
  }
  EXPECT_GE(windowed, 40);
  EXPECT_GE(aligned, 40);
  EXPECT_GE(dense_fields, 30);
  EXPECT_GE(window_fields, 30);
  EXPECT_GE(selected, 10);
  EXPECT_GE(paired, 6);  // W1A1 rows that fit half a word: the AVX2 pair kernel
  EXPECT_GE(wide, 4);
  EXPECT_GE(two_by_two, 20);   // AVX-512's kernel of four plane pairs in one pass
  EXPECT_GE(whole_words, 10);  // rows packed in one call
  EXPECT_GE(winograd, 10);     // 3x3 convolutions of stride 1, ungrouped
  EXPECT_GE(tables, 100);
}

// The layer's codes: the dots requantized, s_x s_w (dot - z_x sum w) + b on
// the output grid, a fused relu clamping at its zero point; channels-last.
TEST(BitKernels, OutputsAreTheDotsOnTheOutputGrid) {
  std::mt19937 rng(11);
  torch::manual_seed(11);
  for (int trial = 0; trial < 40; ++trial) {
    Case c = random_case(rng, trial);
    c.spec.relu = trial % 2 == 1;
    c.spec.out_scale = 0.05 + 0.01 * (trial % 7);
    c.spec.out_zero_point = trial % 4;
    // 8-, 2- and 1-bit output grids: requantized in double, or by thresholds.
    c.spec.out_qmax = static_cast<std::uint8_t>(std::vector<int>{255, 3, 1}[trial % 3]);
    const auto shape = c.spec.linear ? std::vector<std::int64_t>{c.batch, c.in}
                                     : std::vector<std::int64_t>{c.batch, c.in, c.height, c.width};
    const auto a = torch::randint(0, 1 << c.spec.activation_bits, shape, torch::kUInt8);
    const auto wshape =
        c.spec.linear ? std::vector<std::int64_t>{c.out, c.in}
                      : std::vector<std::int64_t>{c.out, c.in / c.spec.groups, c.kernel, c.kernel};
    const auto w = torch::tensor(c.levels, torch::kInt8)
                       .index({torch::randint(0, static_cast<std::int64_t>(c.levels.size()), wshape,
                                              torch::kInt64)});
    const auto scale = torch::rand({c.out}, torch::kFloat64) * 0.02 + 0.01;
    const auto bias = torch::randn({c.out}, torch::kFloat32) * 0.1;
    const auto dots = reference_dots(c, a, w).to(torch::kFloat64);
    const auto w_sums = w.to(torch::kFloat64).flatten(1).sum(1);
    const double lo = c.spec.relu ? static_cast<double>(c.spec.out_zero_point) : 0.0;
    const auto expected_at = [&](double sx) {
      const auto real = sx * scale * (dots - static_cast<double>(c.zero_point) * w_sums) +
                        bias.to(torch::kFloat64);
      return (real / c.spec.out_scale + static_cast<double>(c.spec.out_zero_point))
          .round()
          .clamp(lo, c.spec.out_qmax)
          .to(torch::kUInt8);
    };
    for (Isa isa : isas())
      for (Packing packing : packings(c, isa)) {
        BitLayer layer(c.spec, w, scale, bias, isa, packing);
        // One layer on inputs of another scale and back: what a layer keeps
        // for its input's grid (thresholds) must follow it.
        for (double sx : {0.25, 0.3, 0.25}) {
          const auto x = at::_make_per_tensor_quantized_tensor(a, sx, c.zero_point);
          const auto y = layer(x, true);
          ASSERT_TRUE(y.is_quantized());
          EXPECT_EQ(y.q_scale(), c.spec.out_scale);
          EXPECT_EQ(y.q_zero_point(), c.spec.out_zero_point);
          const auto codes = c.spec.linear ? y.int_repr() : y.int_repr().permute({0, 2, 3, 1});
          if (!c.spec.linear) {
            EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast));
          }
          ASSERT_TRUE(torch::equal(codes, expected_at(sx)))
              << describe(c) << " on " << to_string(isa) << ", " << to_string(packing)
              << ", input scale " << sx;
        }
      }
  }
}

// Thresholds give requantize()'s codes at every dot: checked around each
// threshold, where a code changes, and at random dots between.
TEST(BitKernels, ThresholdsGiveTheCodesRequantizeGives) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int checked = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const std::int64_t channels = 1 + trial % 9;
    const double lo = trial % 4, hi = lo + 1 + trial % 3;
    std::vector<double> m, c;
    for (std::int64_t k = 0; k < channels; ++k) {
      // Multipliers from 1e-6 to 10; offsets that put the steps anywhere,
      // some past int32's dots.
      m.push_back(std::pow(10.0, -6 + 7 * unit(rng)));
      c.push_back((unit(rng) - 0.5) * (trial % 10 == 0 ? 1e5 : 40.0));
    }
    const auto t = requant_thresholds(m.data(), c.data(), channels, lo, hi);
    ASSERT_EQ(t.size(), static_cast<std::size_t>((hi - lo) * channels));
    const auto levels = static_cast<int>(hi - lo);
    for (std::int64_t k = 0; k < channels; ++k) {
      std::vector<std::int64_t> dots;
      for (int j = 0; j < levels; ++j)
        for (std::int64_t d = -3; d <= 3; ++d) dots.push_back(t[j * channels + k] + d);
      for (int i = 0; i < 20; ++i)
        dots.push_back(std::uniform_int_distribution<std::int64_t>(-(1 << 24), 1 << 24)(rng));
      for (std::int64_t d : dots) {
        if (d <= std::numeric_limits<std::int32_t>::min() ||
            d > std::numeric_limits<std::int32_t>::max())
          continue;
        const auto dot = static_cast<std::int32_t>(d);
        std::uint8_t expected = 0;
        requantize(&dot, 1, 1, &m[k], &c[k], lo, hi, &expected);
        int code = static_cast<int>(lo);
        for (int j = 0; j < levels; ++j) code += dot > t[j * channels + k];
        ASSERT_EQ(code, expected) << "dot " << dot << ", m " << m[k] << ", c " << c[k] << ", lo "
                                  << lo << ", hi " << hi;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 10000);
  // None for grids of more than four codes, or a multiplier not positive.
  const double m = 0.5, c = 0, negative = -0.5;
  EXPECT_TRUE(requant_thresholds(&m, &c, 1, 0, 255).empty());
  EXPECT_TRUE(requant_thresholds(&negative, &c, 1, 0, 3).empty());
}

TEST(BitKernels, RefuseWeightsWiderThanTheirPlanes) {
  LayerSpec spec;
  spec.linear = true;
  spec.weight_bits = 1;
  const auto w = torch::tensor({-1, 0, 1, 1}, torch::kInt8).view({1, 4});
  EXPECT_THROW(BitLayer(spec, w, torch::ones({1}, torch::kFloat64), {}, Isa::portable),
               std::invalid_argument);
  // Selected sums take one-bit inputs of linear layers only.
  spec.activation_bits = 2;
  spec.weight_bits = 8;
  EXPECT_THROW(
      BitLayer(spec, w, torch::ones({1}, torch::kFloat64), {}, Isa::portable, Packing::selected),
      std::invalid_argument);
}

// Winograd's F(2x2, 3x3) on wider layers than the random cases draw:
// output channels across several register tiles (4 blocks of 16) and their
// remainder, maps of many tile blocks, every zero point and padding.
TEST(BitKernels, WinogradEqualsTheIntegerConvolutionOnWideLayers) {
  std::mt19937 rng(5);
  torch::manual_seed(5);
  std::vector<Isa> ways;
  for (Isa isa : isas())
    if (isa != Isa::avx512 || cpu_has_vnni()) ways.push_back(isa);
  for (int trial = 0; trial < 12; ++trial) {
    auto pick = [&](std::int64_t lo, std::int64_t hi) {
      return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
    };
    Case c;
    c.spec.weight_bits = c.spec.activation_bits = 2;
    c.levels = trial % 2 ? std::vector<int>{-3, -1, 1, 3} : std::vector<int>{-2, -1, 0, 1};
    c.zero_point = trial % 4;
    c.spec.padding = trial % 3;
    c.kernel = 3;
    c.batch = pick(1, 3);
    c.in = pick(1, 150);
    c.out = pick(1, 90);
    c.height = pick(std::max<std::int64_t>(1, 3 - 2 * c.spec.padding), 20);
    c.width = pick(std::max<std::int64_t>(1, 3 - 2 * c.spec.padding), 20);
    const auto a = torch::randint(0, 4, {c.batch, c.in, c.height, c.width}, torch::kUInt8);
    const auto x = at::_make_per_tensor_quantized_tensor(a, 0.1, c.zero_point);
    const auto w = torch::tensor(c.levels, torch::kInt8)
                       .index({torch::randint(0, 4, {c.out, c.in, 3, 3}, torch::kInt64)});
    const auto expected = reference_dots(c, a, w);
    for (Isa isa : ways) {
      BitLayer layer(c.spec, w, torch::ones({1}, torch::kFloat64), {}, isa, Packing::winograd);
      const auto got = layer.dots(x, true);
      ASSERT_TRUE(torch::equal(got, expected))
          << describe(c) << " on " << to_string(isa) << ": max difference "
          << (got - expected).abs().max().item<int>();
    }
  }
}

// W2A2 3x3 convolutions of stride 1 run on Winograd's kernels on AVX2 and
// VNNI unless asked otherwise; weights past [-3, 3] stay on bit planes or
// fields, and shapes the kernels do not take are refused.
TEST(BitKernels, WinogradRunsWhereItFits) {
  LayerSpec spec;
  spec.weight_bits = spec.activation_bits = 2;
  spec.padding = 1;
  const auto scale = torch::ones({1}, torch::kFloat64);
  const auto odd = torch::tensor({-3, -1, 1, 3}, torch::kInt8)
                       .index({torch::randint(0, 4, {8, 16, 3, 3}, torch::kInt64)});
  for (Isa isa : isas()) {
    const BitLayer layer(spec, odd, scale, {}, isa);
    const bool vector = isa == Isa::avx2 || (isa == Isa::avx512 && cpu_has_vnni());
    EXPECT_EQ(layer.kernel().find("winograd") != std::string::npos, vector) << layer.kernel();
    const BitLayer wide(spec, odd * 2, scale, {}, isa);
    EXPECT_EQ(wide.kernel().find("winograd"), std::string::npos) << wide.kernel();
  }
  EXPECT_THROW(BitLayer(spec, odd * 2, scale, {}, Isa::portable, Packing::winograd),
               std::invalid_argument);
  spec.stride = 2;
  EXPECT_THROW(BitLayer(spec, odd, scale, {}, Isa::portable, Packing::winograd),
               std::invalid_argument);
}

// Product tables by default on AVX2 where their kernel keeps a kernel
// row's indices in registers (LeNet's 6->16 5x5), fields on wider groups
// and other strides; bit planes on AVX-512, whose popcounts are faster.
TEST(BitKernels, TablesRunWhereTheirKernelKeepsIndicesInRegisters) {
  LayerSpec spec;
  spec.weight_bits = spec.activation_bits = 2;
  const auto scale = torch::ones({1}, torch::kFloat64);
  const auto codes = [](std::int64_t in) {
    return torch::tensor({-2, -1, 0, 1}, torch::kInt8)
        .index({torch::randint(0, 4, {16, in, 5, 5}, torch::kInt64)});
  };
  for (Isa isa : isas()) {
    const std::string lenet = BitLayer(spec, codes(6), scale, {}, isa).kernel();
    EXPECT_EQ(lenet.find("tables") != std::string::npos, isa == Isa::avx2) << lenet;
    const std::string wide = BitLayer(spec, codes(16), scale, {}, isa).kernel();
    EXPECT_EQ(wide.find("tables"), std::string::npos) << wide;
  }
  if (cpu_has(Isa::avx2)) {
    spec.stride = 2;
    EXPECT_NE(BitLayer(spec, codes(6), scale, {}, Isa::avx2).kernel().find("fields"),
              std::string::npos);
  }
}

// A conv of `bits`-bit weights and activations (binary, or DoReFa's odd
// 2-bit grid) over `in` channels a group: two images a row taller than the
// kernel, up to `extra` columns wider than the narrowest, random padding,
// zero point and output channels (5, 16 or 21 a group: partial blocks).
Case narrow_case(std::mt19937& rng, int bits, std::int64_t kernel, std::int64_t in,
                 std::int64_t groups, std::int64_t stride, std::int64_t extra) {
  Case c;
  c.spec.weight_bits = c.spec.activation_bits = bits;
  c.spec.groups = groups;
  c.spec.stride = stride;
  c.spec.padding = static_cast<std::int64_t>(rng() % 3);
  c.levels = bits == 1 ? std::vector<int>{-1, 1} : std::vector<int>{-3, -1, 1, 3};
  c.in = in * groups;
  c.out = std::vector<std::int64_t>{5, 16, 21}[rng() % 3] * groups;
  c.kernel = kernel;
  c.batch = 2;
  c.height = kernel + 1;
  c.width = kernel - 2 * c.spec.padding + static_cast<std::int64_t>(rng() % (extra + 1));
  c.width = std::max<std::int64_t>(c.width, kernel);
  c.zero_point = static_cast<std::int64_t>(rng() % (1 << bits));
  return c;
}

// The case's conv of random codes on `packing`, on every instruction set
// this CPU has, against the integer convolution.
void expect_dots_on_every_isa(const Case& c, Packing packing) {
  const auto a = torch::randint(0, 1 << c.spec.activation_bits, {c.batch, c.in, c.height, c.width},
                                torch::kUInt8);
  const auto x = at::_make_per_tensor_quantized_tensor(a, 0.1, c.zero_point);
  const std::vector<std::int64_t> shape{c.out, c.in / c.spec.groups, c.kernel, c.kernel};
  const auto levels = static_cast<std::int64_t>(c.levels.size());
  const auto w = torch::tensor(c.levels, torch::kInt8)
                     .index({torch::randint(0, levels, shape, torch::kInt64)});
  const auto expected = reference_dots(c, a, w);
  for (Isa isa : isas()) {
    BitLayer layer(c.spec, w, torch::ones({1}, torch::kFloat64), {}, isa, packing);
    const auto got = layer.dots(x, true);
    ASSERT_TRUE(torch::equal(got, expected))
        << describe(c) << " on " << to_string(isa) << ", " << to_string(packing)
        << ": max difference " << (got - expected).abs().max().item<int>();
  }
}

// The AVX2 kernels that keep a kernel row's indices in registers, on every
// shape they take, at widths that end in each of their column tiles, with
// padding and partial channel blocks.
TEST(BitKernels, TableKernelsOnKernelRowsEqualTheIntegerConvolution) {
  std::mt19937 rng(13);
  torch::manual_seed(13);
  int blocked = 0;
  for (std::int64_t kernel : {3, 5})
    for (std::int64_t in = 1; in <= (kernel == 5 ? 8 : 12); ++in) {
      const Case c = narrow_case(rng, 2, kernel, in, 1, 1, 14);
      blocked += tables_blocked(geometry_of(c));
      expect_dots_on_every_isa(c, Packing::tables);
    }
  EXPECT_EQ(blocked, 20);
}

// The AVX-512 kernels that count two columns a register, where their
// kernel rows share a word, at W1A1 and W2A2: every paired shape, strides 1
// (columns loaded 8 at a time) and 2 (picked one by one), widths that end
// in each of their column tiles, groups, padding and partial channel blocks.
TEST(BitKernels, PairedPlaneKernelsEqualTheIntegerConvolution) {
  std::mt19937 rng(17);
  torch::manual_seed(17);
  int paired = 0;
  for (int bits : {1, 2})
    for (std::int64_t kernel : {3, 5})
      for (std::int64_t in = 1; in * kernel <= 32; ++in)
        for (std::int64_t stride : {1, 2}) {
          const std::int64_t groups = 1 + static_cast<std::int64_t>(rng() % 2);
          const Case c = narrow_case(rng, bits, kernel, in, groups, stride, 34);
          paired += geometry_of(c).paired();
          expect_dots_on_every_isa(c, Packing::planes);
        }
  EXPECT_EQ(paired, 64);
}

// The tables' sums are 16-bit: a layer just inside tables_fit(), every
// product 9, must still give exact dots; one past it is refused.
TEST(BitKernels, TablesSumTheWidestLayerTheyTakeExactly) {
  LayerSpec spec;
  spec.weight_bits = spec.activation_bits = 2;
  spec.padding = 1;
  Case c;
  c.spec = spec;
  c.in = 291;  // 9 x 25 x 291 = 65475
  c.out = 3;
  c.kernel = 5;
  c.height = c.width = 4;
  c.zero_point = 3;
  ASSERT_TRUE(tables_fit(geometry_of(c)));
  const auto a = torch::full({1, c.in, c.height, c.width}, 3, torch::kUInt8);
  const auto x = at::_make_per_tensor_quantized_tensor(a, 0.1, c.zero_point);
  // Codes 1 on the grid {-2 .. 1}: unsigned code 3 (two others set the grid).
  auto w = torch::full({c.out, c.in, 5, 5}, 1, torch::kInt8);
  w.index_put_({0, 0, 0, 0}, -2);
  w.index_put_({0, 0, 0, 1}, -1);
  const auto expected = reference_dots(c, a, w);
  for (Isa isa : isas()) {
    BitLayer layer(spec, w, torch::ones({1}, torch::kFloat64), {}, isa, Packing::tables);
    EXPECT_TRUE(torch::equal(layer.dots(x, false), expected)) << to_string(isa);
  }
  const auto wider = torch::ones({c.out, c.in + 1, 5, 5}, torch::kInt8);
  EXPECT_THROW(
      BitLayer(spec, wider, torch::ones({1}, torch::kFloat64), {}, Isa::portable, Packing::tables),
      std::invalid_argument);
}

TEST(BitKernels, RefuseAnInputOfTheWrongShape) {
  LayerSpec spec;
  spec.linear = true;
  BitLayer layer(spec, torch::ones({2, 8}, torch::kInt8), torch::ones({1}, torch::kFloat64), {},
                 Isa::portable);
  const auto x = at::_make_per_tensor_quantized_tensor(torch::zeros({3, 7}, torch::kUInt8), 1.0, 0);
  EXPECT_THROW(layer(x, false), std::invalid_argument);
}

}  // namespace
}  // namespace qlab::bits
