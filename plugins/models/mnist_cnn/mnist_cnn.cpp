// The PyTorch MNIST example network (seed 000): two 3x3 convolutions, max
// pooling, dropout and two linear layers, on 28x28 single-channel images.
#include <qlab/plugin/model.hpp>

namespace {

class MnistCnn final : public qlab::Model {
 public:
  qlab::TrainRecipe default_recipe() const override {
    // The example's recipe: Adadelta lr 1.0, lr x0.7 every epoch, batch 64.
    qlab::TrainRecipe r;
    r.optimizer = "adadelta";
    r.lr = 1.0;
    r.schedule = "step";
    r.step_size = 1;
    r.gamma = 0.7;
    r.batch_size = 64;
    r.epochs = 2;
    return r;
  }

  qlab::Shape input_shape(const qlab::Shape& dataset, const qlab::Options&) const override {
    return {dataset.at(0), 28, 28};
  }

  qlab::Graph build(const qlab::Options&, const qlab::DataInfo& data) const override {
    qlab::Graph g("Net");
    auto x = g.input("input", data.input);
    x = g.conv2d("conv1", x, data.input.at(0), 32, 3);
    x = g.relu("relu1", x);
    x = g.conv2d("conv2", x, 32, 64, 3);
    x = g.relu("relu2", x);
    x = g.max_pool2d("max_pool", x, 2, 2);
    x = g.dropout("dropout1", x, 0.25);
    x = g.flatten("flatten", x);
    x = g.linear("fc1", x, 9216, 128);
    x = g.relu("relu3", x);
    x = g.dropout("dropout2", x, 0.5);
    x = g.linear("fc2", x, 128, data.classes);
    for (const auto* f : {"relu1", "relu2", "max_pool", "flatten", "relu3"}) g.functional(f);
    g.set_outputs({x});
    return g;
  }
};

}  // namespace

QLAB_PLUGIN(MnistCnn, "model", "mnist_cnn",
            "PyTorch's MNIST example net (seed 000): 2 conv 3x3, maxpool, dropout, 2 linear")
