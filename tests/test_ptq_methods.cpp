// Cross-layer equalization, bias correction and AdaRound on small layers
// with known answers: equalization keeps the float function and equalizes
// ranges; bias correction zeroes the mean output shift on the calibration
// data; AdaRound's rounding beats nearest and never leaves the grid;
// sequential MSE's scales beat min/max on each channel's output; the
// logits' cross-entropy range beats the observer's.
#include <qlab/quant/passes.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/ptq_methods.hpp>

#include <gtest/gtest.h>

#include "int8_cases.hpp"

namespace qlab {
namespace {

// conv -> relu -> maxpool -> depthwise conv -> relu -> conv; linear -> relu -> linear.
Graph chain() {
  Graph g("Chain");
  auto x = g.input("input", {3, 12, 12});
  x = g.conv2d("a", x, 3, 8, 3, 1, 1);
  x = g.relu("a_relu", x);
  x = g.max_pool2d("pool", x, 2, 2);
  x = g.conv2d("dw", x, 8, 8, 3, 1, 1, 8);
  x = g.relu("dw_relu", x);
  x = g.conv2d("b", x, 8, 6, 1);
  x = g.flatten("flatten", x);
  x = g.linear("fc1", x, 6 * 6 * 6, 16);
  x = g.relu("fc1_relu", x);
  g.set_outputs({g.linear("fc2", x, 16, 4)});
  return g;
}

// A module whose channels have very different ranges, as trained ones do.
GraphModule uneven(const Graph& g) {
  auto m = test::randomised(g, 11);
  torch::NoGradGuard no_grad;
  for (auto& p : m->named_parameters())
    if (p.key().find("weight") != std::string::npos) {
      std::vector<std::int64_t> shape(p.value().dim(), 1);
      shape[0] = -1;
      p.value().mul_(torch::logspace(-2, 1, p.value().size(0)).view(shape));
    }
  return m;
}

torch::Tensor ranges(const torch::Tensor& w, int dim) {
  return w.abs().transpose(0, dim).flatten(1).amax(1);
}

TEST(CrossLayerEqualization, KeepsTheFloatFunctionAndEqualizesRanges) {
  const Graph g = chain();
  GraphModule fused = fuse(uneven(g));
  const auto x = torch::randn({16, 3, 12, 12});
  torch::NoGradGuard no_grad;
  const auto before = fused->forward(x)[0];
  const auto report = cross_layer_equalize(fused);
  EXPECT_EQ(report.pairs,
            (std::vector<std::string>{"a -> dw", "dw -> b", "fc1 -> fc2"}));  // b -> fc1: flatten
  // Float rounding only: 1e-5 of the output's norm.
  EXPECT_LT(test::normalised_error(fused->forward(x)[0], before), 1e-5);
  const auto w = [&](const char* n) { return layer_parameter(fused, n, "weight"); };
  // After the sweeps, each pair's shared channels have equal ranges, except
  // where a layer sits in two pairs (dw): there they converge.
  EXPECT_TRUE(torch::allclose(ranges(w("fc1"), 0), ranges(w("fc2"), 1), 1e-4));
  EXPECT_TRUE(torch::allclose(ranges(w("dw"), 0), ranges(w("b"), 1), 1e-2));
}

TEST(CrossLayerEqualization, SkipsAndNamesPairsAcrossAReLU6) {
  Graph g("Relu6");
  auto x = g.input("input", {2, 6, 6});
  x = g.conv2d("a", x, 2, 4, 3, 1, 1);
  x = g.relu6("a_act", x);
  g.set_outputs({g.conv2d("b", x, 4, 3, 1)});
  GraphModule fused = fuse(uneven(g));
  const auto wa = layer_parameter(fused, "a", "weight").clone();
  const auto report = cross_layer_equalize(fused);
  EXPECT_TRUE(report.pairs.empty());
  ASSERT_EQ(report.skipped.size(), 1u);
  EXPECT_NE(report.skipped[0].find("a -> b: fused ReLU6"), std::string::npos) << report.skipped[0];
  EXPECT_TRUE(torch::equal(layer_parameter(fused, "a", "weight"), wa));
}

TEST(BiasCorrection, ZeroesTheMeanOutputShiftOnTheCalibrationData) {
  for (const auto& c : {test::conv_relu, test::mlp}) {
    const Graph g = c();
    // Positive inputs, like pixels or post-ReLU maps: a zero-mean input
    // would average the shift away by itself.
    auto calibration = test::calibration_for(g, 5);
    calibration.images = calibration.images.abs();
    PtqSpec spec;
    spec.config = default_config_list({}, {2, 8, 8});  // 2-bit weights: a large shift
    spec.calibration_batches = 4;
    const auto plain = post_training_quantize(test::randomised(g, 9), spec, calibration);
    spec.bias_correction = true;
    const auto corrected = post_training_quantize(test::randomised(g, 9), spec, calibration);
    // The first layer reads the data itself, so its shift is known exactly:
    // the mean over the calibration images of W_q x^ - W x per output
    // channel, x^ being the images on the input's calibrated 8-bit grid, as
    // the int8 model reads them.
    const std::string first = g.nodes()[1].name;
    const auto& l = plain.layers.at(first);
    const auto w = layer_parameter(plain.float_module, first, "weight");
    const auto wq = dequantize_codes(l.codes, l.weight);
    const auto x = calibration.images;
    const auto xq = fake_quantize(x, corrected.activations.at(g.nodes()[0].name));
    const Attrs& a = g.node(first).attrs;
    const auto out = [&](const torch::Tensor& in, const torch::Tensor& weight,
                         const torch::Tensor& bias) {
      auto y = g.node(first).op == Op::linear
                   ? torch::linear(in, weight, bias)
                   : torch::conv2d(in, weight, bias, a.stride, a.padding);
      return y.dim() == 4 ? y.mean({0, 2, 3}) : y.mean(0);
    };
    const auto fp = out(x, w, l.bias);
    const auto shift_plain = (out(xq, wq, l.bias) - fp).abs().max().item<double>();
    // Calibration sees 4 batches of 64 = all 256 images, in another order.
    const auto shift_corrected =
        (out(xq, wq, corrected.layers.at(first).bias) - fp).abs().max().item<double>();
    EXPECT_GT(shift_plain, 1e-3) << g.type_name();
    EXPECT_LT(shift_corrected, 1e-3 * shift_plain) << g.type_name();
    // The model simulates with the corrected bias too.
    EXPECT_TRUE(torch::allclose(layer_parameter(corrected.float_module, first, "bias"),
                                corrected.layers.at(first).bias));
    EXPECT_NE(corrected.notes.back().find("bias correction:"), std::string::npos);
  }
}

TEST(AdaRound, BeatsNearestOnTheLayersOutputAndStaysOnTheGrid) {
  const Graph g = test::conv_relu();
  auto calibration = test::calibration_for(g, 6);
  calibration.images = calibration.images.abs();
  PtqSpec spec;
  spec.config = default_config_list({}, {3, 8, 8});
  spec.calibration_batches = 4;
  const auto nearest = post_training_quantize(test::randomised(g, 8), spec, calibration);
  spec.adaround = true;
  spec.adaround_iterations = 300;
  const auto learned = post_training_quantize(test::randomised(g, 8), spec, calibration);
  const auto& ln = nearest.layers.at("conv");
  const auto& la = learned.layers.at("conv");
  const auto w = layer_parameter(nearest.float_module, "conv", "weight");
  const auto b = layer_parameter(nearest.float_module, "conv", "bias");
  // The layer's output through its fused ReLU, which AdaRound fits.
  const auto error = [&](const QLayer& l) {
    const auto x = calibration.images;
    const auto want = torch::relu(torch::conv2d(x, w, b, 1, 1));
    return (torch::relu(torch::conv2d(x, dequantize_codes(l.codes, l.weight), b, 1, 1)) - want)
        .pow(2)
        .sum()
        .item<double>();
  };
  EXPECT_LT(error(la), 0.9 * error(ln));
  // Same scales; every code is floor(w / s) or the one above, inside the grid.
  EXPECT_TRUE(torch::equal(la.weight.scale, ln.weight.scale));
  const auto floor = (w / la.weight.scale.to(torch::kFloat).view({-1, 1, 1, 1})).floor();
  const auto step = la.codes.to(torch::kFloat) - floor;
  EXPECT_TRUE(
      ((step == 0) | (step == 1) | (la.codes == la.weight.qmin) | (la.codes == la.weight.qmax))
          .all()
          .item<bool>());
  EXPECT_GE(la.codes.min().item<std::int64_t>(), la.weight.qmin);
  EXPECT_LE(la.codes.max().item<std::int64_t>(), la.weight.qmax);
  EXPECT_FALSE(torch::equal(la.codes, ln.codes));
  EXPECT_NE(learned.notes.front().find("adaround:"), std::string::npos);
}

TEST(SequentialMse, ChoosesScalesWhoseOutputBeatsMinMaxOnEveryChannel) {
  const Graph g = test::conv_relu();
  auto calibration = test::calibration_for(g, 7);
  calibration.images = calibration.images.abs();
  PtqSpec spec;
  spec.config = default_config_list({}, {2, 8, 8});
  spec.calibration_batches = 4;
  const auto minmax = post_training_quantize(test::randomised(g, 5), spec, calibration);
  spec.sequential_mse = true;
  const auto searched = post_training_quantize(test::randomised(g, 5), spec, calibration);
  const auto& lm = minmax.layers.at("conv");
  const auto& ls = searched.layers.at("conv");
  const auto w = layer_parameter(minmax.float_module, "conv", "weight");
  const auto b = layer_parameter(minmax.float_module, "conv", "bias");
  // The search's own measure: the output through the fused ReLU, on the
  // input on its 8-bit grid against the float layer on the float input. Its
  // sample is 4 batches of 64: all 256 images.
  const auto x = calibration.images;
  const auto xq = fake_quantize(x, searched.activations.at("input"));
  const auto want = torch::relu(torch::conv2d(x, w, b, 1, 1));
  const auto error = [&](const QLayer& l) {
    const auto y = torch::relu(torch::conv2d(xq, dequantize_codes(l.codes, l.weight), b, 1, 1));
    return (y - want).pow(2).transpose(0, 1).flatten(1).sum(1);
  };
  // Min/max (a clip of 1.0) is one of the candidates, so no channel is worse.
  EXPECT_TRUE((error(ls) <= error(lm) * (1 + 1e-5)).all().item<bool>());
  EXPECT_LT(error(ls).sum().item<double>(), 0.9 * error(lm).sum().item<double>());
  EXPECT_FALSE(torch::equal(ls.weight.scale, lm.weight.scale));
  // The codes are the weight rounded to nearest on the new scales, in the grid.
  EXPECT_TRUE(torch::equal(ls.codes, quantize_codes(w, ls.weight)));
  EXPECT_GE(ls.codes.min().item<std::int64_t>(), ls.weight.qmin);
  EXPECT_LE(ls.codes.max().item<std::int64_t>(), ls.weight.qmax);
  EXPECT_NE(searched.notes.back().find("sequential MSE:"), std::string::npos);
}

TEST(OutputRange, CrossEntropyRangeKeepsTheFloatSoftmaxBetterThanTheObservers) {
  const Graph g = test::mlp();  // fc2's output: ten logits an image
  const auto calibration = test::calibration_for(g, 3);
  PtqSpec spec;
  spec.config = default_config_list({}, {8, 8, 3});  // 8 levels of logits
  spec.calibration_batches = 4;
  const auto observed = post_training_quantize(test::randomised(g, 4), spec, calibration);
  spec.output_cross_entropy = true;
  const auto searched = post_training_quantize(test::randomised(g, 4), spec, calibration);
  const auto& before = observed.activations.at("fc2");
  const auto& after = searched.activations.at("fc2");
  torch::NoGradGuard no_grad;
  GraphModule float_model = observed.float_module;
  const auto logits = float_model->forward(calibration.images)[0];
  const auto cross_entropy = [&](const QParams& p) {
    return -(torch::softmax(logits, 1) * torch::log_softmax(fake_quantize(logits, p), 1))
                .sum(1)
                .mean()
                .item<double>();
  };
  // The search's sample is 4 batches of 64: all 256 images.
  EXPECT_LT(cross_entropy(after), cross_entropy(before));
  EXPECT_FALSE(torch::equal(after.scale, before.scale));
  EXPECT_EQ(after.qmin, before.qmin);
  EXPECT_EQ(after.qmax, before.qmax);
  // Inside the observed range, which stays on record.
  const double lo = before.min.item<double>(), hi = before.max.item<double>();
  const double step = after.scale.item<double>();
  const double bottom = (after.qmin - after.zero_point.item<std::int64_t>()) * step;
  EXPECT_GE(bottom, lo - step);
  EXPECT_LE((after.qmax - after.zero_point.item<std::int64_t>()) * step, hi + step);
  EXPECT_TRUE(torch::equal(after.min, before.min));
  EXPECT_NE(searched.notes.back().find("output range: fc2"), std::string::npos);
}

}  // namespace
}  // namespace qlab
