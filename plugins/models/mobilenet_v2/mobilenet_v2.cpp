// MobileNetV2 (Sandler et al. 2018) for 32x32 inputs (seed 003): the stem
// and the second stage keep stride 1, as CIFAR versions do; inverted
// residual blocks with expansion, ReLU6 and batch norm, residual adds
// through the graph's add op so that they can run quantized.
#include <qlab/plugin/model.hpp>

#include <algorithm>
#include <string>

namespace {

// Channels rounded to a multiple of 8, never more than 10% below `v`.
std::int64_t divisible(double v) {
  auto r = std::max<std::int64_t>(8, static_cast<std::int64_t>(v + 4) / 8 * 8);
  if (static_cast<double>(r) < 0.9 * v) r += 8;
  return r;
}

class MobileNetV2 final : public qlab::Model {
 public:
  qlab::Schema options() const override {
    qlab::Schema s;
    s.number("width_mult", 1.0, "width multiplier of every layer", 0.1, 4.0)
        .number("dropout", 0.2, "dropout before the classifier", 0.0, 0.99);
    return s;
  }

  qlab::TrainRecipe default_recipe() const override { return qlab::cifar_recipe(); }

  qlab::Shape input_shape(const qlab::Shape& dataset, const qlab::Options&) const override {
    (void)dataset;
    return {3, 32, 32};  // 28x28 and single-channel data are padded and repeated
  }

  qlab::Graph build(const qlab::Options& o, const qlab::DataInfo& data) const override {
    const double w = o.get<double>("width_mult");
    qlab::Graph g("MobileNetV2");
    auto x = g.input("input", data.input);
    std::int64_t in = divisible(32 * w);
    x = conv_bn(g, "features.0", x, data.input.at(0), in, 3, 1, 1, true);
    // (expansion, channels, repeats, first stride)
    const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 1},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int index = 1;
    for (const auto& s : settings) {
      const std::int64_t out = divisible(s[1] * w);
      for (int i = 0; i < s[2]; ++i, ++index)
        x = block(g, "features." + std::to_string(index), x, in, out, s[0], i == 0 ? s[3] : 1),
        in = out;
    }
    const std::int64_t last = divisible(1280 * std::max(1.0, w));
    x = conv_bn(g, "features." + std::to_string(index), x, in, last, 1, 1, 1, true);
    x = g.adaptive_avg_pool2d("pool", x, 1);
    x = g.flatten("flatten", x);
    g.functional("pool").functional("flatten");
    x = g.dropout("classifier.0", x, o.get<double>("dropout"));
    g.set_outputs({g.linear("classifier.1", x, last, data.classes)});
    return g;
  }

 private:
  // Conv (no bias), batch norm, optionally ReLU6: torchvision's ConvBNReLU.
  static std::string conv_bn(qlab::Graph& g, const std::string& name, const std::string& x,
                             std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride,
                             std::int64_t groups, bool act) {
    auto y = g.conv2d(name + ".0", x, in, out, k, stride, (k - 1) / 2, groups, false);
    y = g.batch_norm2d(name + ".1", y, out);
    if (act) y = g.relu6(name + ".2", y);
    g.group_type(name, act ? "ConvBNReLU" : "Sequential");
    return y;
  }

  static std::string block(qlab::Graph& g, const std::string& name, const std::string& x,
                           std::int64_t in, std::int64_t out, int expand, int stride) {
    const std::int64_t hidden = in * expand;
    std::string y = x;
    int j = 0;
    if (expand != 1)
      y = conv_bn(g, name + ".conv." + std::to_string(j++), y, in, hidden, 1, 1, 1, true);
    y = conv_bn(g, name + ".conv." + std::to_string(j++), y, hidden, hidden, 3, stride, hidden,
                true);
    y = g.conv2d(name + ".conv." + std::to_string(j++), y, hidden, out, 1, 1, 0, 1, false);
    y = g.batch_norm2d(name + ".conv." + std::to_string(j), y, out);
    g.group_type(name, "InvertedResidual");
    g.group_type(name + ".conv", "Sequential");
    if (stride == 1 && in == out) y = g.add(name + ".add", x, y);
    return y;
  }
};

}  // namespace

QLAB_PLUGIN(MobileNetV2, "model", "mobilenet_v2",
            "MobileNetV2 for 32x32 inputs (seed 003): inverted residuals, ReLU6, width multiplier")
