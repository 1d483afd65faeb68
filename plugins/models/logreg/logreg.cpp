// Logistic regression (seed 002): one linear layer from pixels to classes.
#include <qlab/plugin/model.hpp>

namespace {

class LogReg final : public qlab::Model {
 public:
  qlab::TrainRecipe default_recipe() const override {
    qlab::TrainRecipe r;
    r.optimizer = "adam";
    r.lr = 1e-3;
    r.batch_size = 64;
    r.epochs = 5;
    return r;
  }

  qlab::Shape input_shape(const qlab::Shape& dataset, const qlab::Options&) const override {
    return dataset;
  }

  qlab::Graph build(const qlab::Options&, const qlab::DataInfo& data) const override {
    qlab::Graph g("LogisticRegression");
    std::int64_t features = 1;
    for (auto d : data.input) features *= d;
    auto x = g.input("input", data.input);
    x = g.flatten("flatten", x);
    g.functional("flatten");
    g.set_outputs({g.linear("linear", x, features, data.classes)});
    return g;
  }
};

}  // namespace

QLAB_PLUGIN(LogReg, "model", "logreg",
            "logistic regression (seed 002): one linear layer, pixels to classes")
