// VGG16 with batch norm for 32x32 inputs (seed 003's starting point): 13
// 3x3 convolutions in five stages, each stage ending in 2x2 max pooling,
// then one linear classifier on the 512 remaining features.
#include <qlab/plugin/model.hpp>

#include <string>

namespace {

class Vgg16 final : public qlab::Model {
 public:
  qlab::TrainRecipe default_recipe() const override { return qlab::cifar_recipe(); }

  qlab::Shape input_shape(const qlab::Shape& dataset, const qlab::Options&) const override {
    (void)dataset;
    return {3, 32, 32};
  }

  qlab::Graph build(const qlab::Options&, const qlab::DataInfo& data) const override {
    qlab::Graph g("VGG");
    auto x = g.input("input", data.input);
    const int cfg[] = {64, 64,  0,   128, 128, 0,   256, 256, 256,
                       0,  512, 512, 512, 0,   512, 512, 512, 0};
    std::int64_t in = data.input.at(0);
    int i = 0;
    for (int c : cfg) {
      const std::string n = "features.";
      if (c == 0) {
        x = g.max_pool2d(n + std::to_string(i++), x, 2, 2);
        continue;
      }
      x = g.conv2d(n + std::to_string(i++), x, in, c, 3, 1, 1);
      x = g.batch_norm2d(n + std::to_string(i++), x, c);
      x = g.relu(n + std::to_string(i++), x);
      in = c;
    }
    x = g.flatten("flatten", x);
    g.functional("flatten");
    g.set_outputs({g.linear("classifier", x, 512, data.classes)});
    return g;
  }
};

}  // namespace

QLAB_PLUGIN(Vgg16, "model", "vgg16",
            "VGG16 with batch norm for 32x32 inputs (seed 003's starting point)")
