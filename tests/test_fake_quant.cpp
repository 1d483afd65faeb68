// The training-aware fake quantizers: values, gradients, and conversion to
// the grids an int8 or simulated model runs.
#include "test_support.hpp"

#include <qlab/quant/fake_quant.hpp>
#include <qlab/quant/ptq.hpp>
#include <qlab/quant/qat.hpp>
#include <qlab/registry.hpp>

#include <gtest/gtest.h>

namespace qlab {
namespace {

// An int8 model and its fake-quant simulation differ by int8 kernels'
// requantization rounding: a few parts in a thousand on small nets.
constexpr double kInt8VsFakeQuantTwin = 0.03;

torch::Tensor leaf(std::vector<float> v) { return torch::tensor(v).set_requires_grad(true); }

TEST(FakeQuant, DorefaWeightMatchesHandComputedValues) {
  // tanh(w) / (2 max|tanh w|) + 1/2 = 0.105, 0.373, 0.552, 0.740, 1.000 for
  // w = -1, -0.25, 0.1, 0.5, 2; times 3 (2 bits) rounds to 0, 1, 2, 2, 3,
  // times 15 (4 bits) to 2, 6, 8, 11, 15; the weight is 2 level / (2^k - 1) - 1.
  const auto w = torch::tensor({-1.0f, -0.25f, 0.1f, 0.5f, 2.0f});
  const auto two = dorefa_weight(w, 2);
  const auto four = dorefa_weight(w, 4);
  const std::vector<double> want2{-1.0, -1.0 / 3, 1.0 / 3, 1.0 / 3, 1.0};
  const std::vector<double> want4{2.0 * 2 / 15 - 1, 2.0 * 6 / 15 - 1, 2.0 * 8 / 15 - 1,
                                  2.0 * 11 / 15 - 1, 1.0};
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(two[i].item<double>(), want2[i], 1e-6) << i;
    EXPECT_NEAR(four[i].item<double>(), want4[i], 1e-6) << i;
  }
  // 1 bit, as the paper defines it: sign(w) times mean |w| (= 0.77 here).
  const auto one = dorefa_weight(w, 1);
  const std::vector<double> want1{-0.77, -0.77, 0.77, 0.77, 0.77};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(one[i].item<double>(), want1[i], 1e-6) << i;
}

TEST(FakeQuant, DorefaGradientsAreStraightThroughTheRounding) {
  // The gradient is that of the transform without rounding: through tanh
  // and the max normalisation.
  auto w = leaf({-1.0f, -0.25f, 0.1f, 0.5f, 2.0f});
  const auto r = torch::tensor({0.3f, -1.0f, 2.0f, 0.5f, 1.5f});
  (dorefa_weight(w, 3) * r).sum().backward();
  auto v = leaf({-1.0f, -0.25f, 0.1f, 0.5f, 2.0f});
  const auto t = torch::tanh(v);
  ((t / (2 * t.abs().max()) + 0.5) * 2 - 1).mul(r).sum().backward();
  EXPECT_TRUE(torch::allclose(w.grad(), v.grad(), 1e-6, 1e-7)) << w.grad() << v.grad();
  // Activations: identity inside [0, 1], zero where clipped.
  auto x = leaf({-0.5f, 0.2f, 0.7f, 1.5f});
  dorefa_activation(x, 2).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.0f, 1.0f, 1.0f, 0.0f})));
  EXPECT_NEAR(dorefa_activation(torch::tensor({0.7f}), 2).item<double>(), 2.0 / 3, 1e-6);
}

TEST(FakeQuant, LsqGradientsFollowThePaper) {
  // Esser et al., eq. 3: d x̂ / d s = round(x/s) - x/s inside the grid, qmin
  // below, qmax above, times the gradient scale g; x passes straight through
  // inside and not at all outside.
  const std::int64_t qmin = -8, qmax = 7;
  const double s = 0.1, g = 0.05;
  auto x = leaf({-1.2f, -0.33f, 0.0f, 0.26f, 0.64f, 0.9f});
  auto step = torch::full({1}, s).set_requires_grad(true);
  const auto r = torch::tensor({1.0f, -2.0f, 0.5f, 3.0f, -1.0f, 2.0f});
  const auto y = lsq_fake_quantize(x, step, qmin, qmax, g);
  (y * r).sum().backward();
  double want_step = 0;
  for (int i = 0; i < 6; ++i) {
    const double v = x[i].item<double>() / s;
    const double ri = r[i].item<double>();
    const bool below = std::round(v)<qmin, above = std::round(v)> qmax;
    const double dstep = below ? qmin : above ? qmax : std::nearbyint(v) - v;
    want_step += ri * dstep * g;
    EXPECT_NEAR(x.grad()[i].item<double>(), below || above ? 0.0 : ri, 1e-6) << i;
    EXPECT_NEAR(y[i].item<double>(), std::clamp(std::nearbyint(v), double(qmin), double(qmax)) * s,
                1e-6)
        << i;
  }
  EXPECT_NEAR(step.grad().item<double>(), want_step, 1e-5);
}

TEST(FakeQuant, LsqStepStartsAtTwiceMeanOverRootQp) {
  const auto v = torch::tensor({-1.0f, 3.0f, 0.5f, -1.5f});  // mean |v| = 1.5
  EXPECT_NEAR(lsq_initial_step(v, 7), 2 * 1.5 / std::sqrt(7.0), 1e-6);
}

TEST(FakeQuant, QatGradientIsStraightThroughInsideTheRange) {
  auto act = observed_activation(8, false);
  act->forward(torch::tensor({0.0f, 1.0f}), /*training=*/true);  // range [0, 1]
  act->freeze();
  act->forward(torch::tensor({5.0f}), /*training=*/true);  // frozen: range unchanged
  auto x = leaf({0.5f, 2.0f, -1.0f});
  act->forward(x, true).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({1.0f, 0.0f, 0.0f}))) << x.grad();
  EXPECT_NEAR(act->qparams().max.item<double>(), 1.0, 1e-6);
}

// What a weight fake quantizer trains with is what its converted layer holds.
void expect_conversion_exact(WeightFakeQuant& q, const torch::Tensor& w, int bits) {
  const auto trained = q.forward(w).detach();
  const QLayer l = q.convert(w, {});
  EXPECT_EQ(l.weight.bits, bits);
  EXPECT_TRUE(torch::allclose(dequantize_codes(l.codes, l.weight), trained, 1e-5, 1e-6))
      << (dequantize_codes(l.codes, l.weight) - trained).abs().max();
  const auto packed = pack_codes(l.codes, bits, l.weight.qmin);
  EXPECT_EQ(packed.numel(), (w.numel() * bits + 7) / 8);
}

TEST(FakeQuant, ConvertedWeightsAreTheTrainedOnes) {
  torch::manual_seed(3);
  const auto w = torch::randn({6, 4, 3, 3}) * 0.2;
  expect_conversion_exact(*minmax_weight(4, true), w, 4);
  expect_conversion_exact(*minmax_weight(8, true), w, 8);
  expect_conversion_exact(*lsq_weight(3, w), w, 3);
  expect_conversion_exact(*dorefa_weight_quant(4, w, true), w, 4);  // half-step zero point
  expect_conversion_exact(*dorefa_weight_quant(8, w, false), w, 8);
  expect_conversion_exact(*dorefa_weight_quant(1, w, true), w, 1);
}

TEST(Qat, ConvertedInt8ModelMatchesItsFakeQuantTwin) {
  test::TinyModel model;
  const DataInfo info{"tiny", {1, 8, 8}, 3};
  const Graph g = model.build({}, info);
  torch::manual_seed(1);
  GraphModule m(g);
  const Dataset data = test::tiny_dataset(256, 2);
  const QuantizeContext ctx = test::training_context(model, data);
  QatSpec spec;
  spec.name = "qat";
  spec.config = default_config_list({}, {8, 8, 8});
  auto backend = test::build_registry().backend("onednn");
  if (!backend->availability().available) GTEST_SKIP() << backend->availability().reason;
  // 7-bit activations where this CPU's int8 kernels sum pairs in 16 bits, as `qlab run` does.
  const bool reduce_range = backend->constraints().reduce_range;
  const FakeQuantFactory make = qat_fake_quant(/*per_channel=*/true, reduce_range);
  auto q = std::make_shared<const QuantizedModel>(quantization_aware_training(m, spec, make, ctx));
  ASSERT_TRUE(q->int8());
  EXPECT_EQ(q->training.size(), 1u);
  auto exe = backend->lower(q);
  ASSERT_EQ(exe->mode(), Mode::int8);
  const auto x = data.images.slice(0, 0, 64);
  const auto got = exe->run(x)[0];
  const auto twin = simulate(*q, q->dequantized_module(), x)[0];
  const double error = ((got - twin).norm() / twin.norm()).item<double>();
  EXPECT_LT(error, kInt8VsFakeQuantTwin);
  std::printf("QAT int8 on onednn (%s): normalised error %.4f against its fake-quant twin\n",
              backend->constraints().int8_path.c_str(), error);
  // The same int8 kernels as static quantization, node for node: QAT's
  // latency is static's.
  PtqSpec ptq;
  ptq.calibration_batches = 2;
  ptq.reduce_range = reduce_range;
  const auto st = std::make_shared<const QuantizedModel>(post_training_quantize(m, ptq, data));
  EXPECT_EQ(exe->lowered(), backend->lower(st)->lowered());
}

TEST(Qat, LsqAtFourBitsLearnsItsStepsAndEmbedsInInt8) {
  test::TinyModel model;
  const Graph g = model.build({}, {"tiny", {1, 8, 8}, 3});
  torch::manual_seed(1);
  GraphModule m(g);
  const Dataset data = test::tiny_dataset(256, 2);
  const QuantizeContext ctx = test::training_context(model, data);
  QatSpec spec;
  spec.name = "lsq";
  spec.config = default_config_list({}, {4, 4, 4});
  FakeQuantFactory make;
  torch::Tensor first_step;
  make.weight = [&](int bits, const torch::Tensor& w) {
    auto q = lsq_weight(bits, w);
    if (w.dim() == 4) first_step = q->parameters()[0];  // the conv's
    return q;
  };
  make.activation = [](int bits) { return lsq_activation(bits, /*reduce_range=*/false); };
  const double initial = [&] {
    auto probe = lsq_weight(4, m->named_parameters()["features.0.weight"]);
    return probe->parameters()[0].item<double>();
  }();
  const auto q = quantization_aware_training(m, spec, make, ctx);
  EXPECT_TRUE(q.int8());  // 4-bit codes are int8 codes
  EXPECT_EQ(q.widths(), "W4A4 x2");
  EXPECT_EQ(q.layers.at("features.0").weight.bits, 4);
  EXPECT_NE(first_step.item<double>(), initial);  // the step was trained
  EXPECT_DOUBLE_EQ(q.layers.at("features.0").weight.scale.item<double>(),
                   first_step.item<double>());
}

// A classifier with conv + batch norm, for QAT's folded-weight path.
class BnModel : public test::TinyModel {
 public:
  Graph build(const Options&, const DataInfo& data) const override {
    Graph g("TinyBn");
    auto x = g.input("input", data.input);
    x = g.conv2d("conv", x, 1, 4, 3, 1, 1, 1, false);
    x = g.batch_norm2d("bn", x, 4);
    x = g.relu("relu", x);
    x = g.flatten("flatten", x);
    g.set_outputs({g.linear("fc", x, 4 * 8 * 8, data.classes)});
    return g;
  }
};

TEST(Qat, FrozenBatchNormKeepsItsStatisticsAndConvertsExactly) {
  BnModel model;
  const Graph g = model.build({}, {"tiny", {1, 8, 8}, 3});
  torch::manual_seed(4);
  GraphModule m(g);
  const Dataset data = test::tiny_dataset(128, 8);
  const QuantizeContext ctx = test::training_context(model, data);
  const FakeQuantFactory make = qat_fake_quant(/*per_channel=*/true, /*reduce_range=*/false);
  QatSpec spec;
  spec.name = "qat";
  spec.config = default_config_list({}, {8, 8, 8});
  spec.lr_factor = 1e-9;  // weights stay put: only batch-norm statistics could move
  const auto folded_bias = [](const QuantizedModel& q) {
    return q.float_module->named_parameters()["conv.bias"];
  };
  const auto untouched = folded_bias(post_training_quantize(m, PtqSpec{}, data));
  spec.freeze_bn_after = 0;
  const auto frozen = quantization_aware_training(m, spec, make, ctx);
  EXPECT_TRUE(torch::allclose(folded_bias(frozen), untouched, 1e-5, 1e-6));
  spec.freeze_bn_after = -1;
  const auto moving = quantization_aware_training(m, spec, make, ctx);
  EXPECT_FALSE(torch::allclose(folded_bias(moving), untouched, 1e-5, 1e-6));
  // The converted conv holds the folded weight the fake quantizer saw.
  const auto& layer = frozen.layers.at("conv");
  const auto w = frozen.float_module->named_parameters()["conv.weight"];
  EXPECT_TRUE(torch::allclose(dequantize_codes(layer.codes, layer.weight),
                              fake_quantize(w, layer.weight), 1e-6, 1e-7));
}

}  // namespace
}  // namespace qlab
