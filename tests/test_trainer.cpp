#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/runtime.hpp>
#include <qlab/trainer.hpp>

namespace qlab {
namespace {

std::vector<torch::Tensor> train_tiny(const TrainRecipe& recipe) {
  test::TinyModel model;
  const Dataset data = test::tiny_dataset(200, 7);
  seed_everything(recipe.seed);
  GraphModule m(model.build({}, {"tiny", {1, 8, 8}, 3}));
  TrainSettings s;
  s.progress = false;
  train(m, model, data, recipe, s);
  std::vector<torch::Tensor> params;
  for (const auto& p : m->parameters()) params.push_back(p.detach().clone());
  return params;
}

bool same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

TEST(Trainer, IsDeterministicForASeed) {
  const TrainRecipe r = test::TinyModel().default_recipe();
  EXPECT_TRUE(same(train_tiny(r), train_tiny(r)));
  TrainRecipe other = r;
  other.seed = 2;
  EXPECT_FALSE(same(train_tiny(r), train_tiny(other)));
}

TEST(Trainer, LearnsWithEveryOptimizerAndSchedule) {
  test::TinyModel model;
  const Dataset data = test::tiny_dataset(300, 3);
  for (const auto& [opt, lr] : std::vector<std::pair<std::string, double>>{
           {"sgd", 0.1}, {"adam", 0.01}, {"adadelta", 1.0}}) {
    for (const std::string schedule : {"none", "step", "cosine"}) {
      TrainRecipe r = model.default_recipe();
      r.optimizer = opt;
      r.lr = lr;
      r.schedule = schedule;
      r.epochs = 4;
      seed_everything(r.seed);
      GraphModule m(model.build({}, {"tiny", {1, 8, 8}, 3}));
      TrainSettings s;
      s.progress = false;
      const auto rep = train(m, model, data, r, s);
      ASSERT_EQ(rep.epochs.size(), 4u);
      EXPECT_LT(rep.epochs.back().loss, rep.epochs.front().loss) << opt << " " << schedule;
      EXPECT_GT(rep.epochs.back().accuracy, 80.0) << opt << " " << schedule;
      if (schedule == "step") {
        EXPECT_NEAR(rep.epochs[1].lr, lr * r.gamma, 1e-12);
      }
      if (schedule == "cosine") {
        EXPECT_LT(rep.epochs.back().lr, lr);
      }
    }
  }
}

TEST(Trainer, DivergenceNamesEpochAndStep) {
  TrainRecipe r = test::TinyModel().default_recipe();
  r.lr = 1e30;
  try {
    train_tiny(r);
    FAIL() << "expected divergence";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("at epoch 1 step"), std::string::npos) << msg;
  }
}

TEST(Runtime, BlasPoolIsPinnedToOneThread) {
  set_threads(2);
  EXPECT_EQ(threads(), 2);
  const int blas = blas_threads();
  if (blas < 0) GTEST_SKIP() << "the BLAS in use is not OpenBLAS";
  EXPECT_EQ(blas, 1);
}

}  // namespace
}  // namespace qlab
