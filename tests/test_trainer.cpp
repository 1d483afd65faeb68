#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/parallel.hpp>
#include <qlab/plugin/trainer.hpp>
#include <qlab/runtime.hpp>

#include <ATen/Parallel.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace qlab {
namespace {

// Trains the tiny model with a training checkpoint at `resume`, raising
// SIGINT in the forward pass of step `interrupt_at` (counted from 1 over
// the whole run; 0: never). Returns the parameters, or throws.
std::vector<torch::Tensor> train_resumable(const TrainRecipe& recipe, const std::string& resume,
                                           int interrupt_at, TrainReport* report = nullptr) {
  test::TinyModel model;
  const Dataset data = test::tiny_dataset(200, 7);
  seed_everything(recipe.seed);
  GraphModule m(model.build({}, {"tiny", {1, 8, 8}, 3}));
  TrainSettings s;
  s.progress = false;
  s.resume_path = resume;
  TrainHooks hooks;
  int forwards = 0;
  if (interrupt_at > 0)
    hooks.outputs = [&](std::size_t node, const torch::Tensor& y) {
      if (node == 1 && ++forwards == interrupt_at) std::raise(SIGINT);  // node 1: features.0
      return y;
    };
  const TrainReport rep = train(m, model, data, recipe, s, hooks);
  if (report) *report = rep;
  std::vector<torch::Tensor> params;
  for (const auto& p : m->parameters()) params.push_back(p.detach().clone());
  return params;
}

std::vector<torch::Tensor> train_tiny(const TrainRecipe& recipe) {
  return train_resumable(recipe, "", 0);
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

TEST(Trainer, ResumesAfterSigintToTheWeightsOfAnUninterruptedRun) {
  for (const auto& [opt, lr] : std::vector<std::pair<std::string, double>>{
           {"sgd", 0.1}, {"adam", 0.01}, {"adadelta", 1.0}}) {
    test::TempDir dir;
    TrainRecipe r = test::TinyModel().default_recipe();
    r.optimizer = opt;
    r.lr = lr;
    r.epochs = 3;
    const auto straight = train_resumable(r, "", 0);
    const std::string resume = dir.file("t.resume.pt");
    // 13 steps an epoch: step 5 of epoch 2 is the 18th forward pass.
    try {
      train_resumable(r, resume, 18);
      FAIL() << "SIGINT did not stop training";
    } catch (const Interrupted& e) {
      EXPECT_NE(std::string(e.what()).find("interrupted at epoch 2 step 5 of 13: saved " + resume),
                std::string::npos)
          << e.what();
    }
    ASSERT_TRUE(std::filesystem::exists(resume));
    TrainReport rep;
    const auto resumed = train_resumable(r, resume, 0, &rep);
    EXPECT_EQ(rep.resumed, "epoch 2 step 5");
    EXPECT_EQ(rep.epochs.size(), 3u);
    EXPECT_TRUE(same(straight, resumed))
        << opt << ": the resumed run must end where the straight one does";
  }
}

TEST(Trainer, ANanLossKeepsTheLastGoodCheckpoint) {
  test::TempDir dir;
  test::TinyModel model;
  Dataset data = test::tiny_dataset(200, 7);
  TrainRecipe r = model.default_recipe();
  r.epochs = 2;
  seed_everything(r.seed);
  GraphModule m(model.build({}, {"tiny", {1, 8, 8}, 3}));
  TrainSettings s;
  s.progress = false;
  s.resume_path = dir.file("t.resume.pt");
  TrainHooks hooks;
  int forwards = 0;
  // Step 3 of epoch 2 produces NaN.
  hooks.outputs = [&](std::size_t node, const torch::Tensor& y) {
    return node == 1 && ++forwards == 16 ? y * std::nan("") : y;
  };
  const std::string msg = test::error_of([&] { train(m, model, data, r, s, hooks); });
  EXPECT_NE(msg.find("loss is nan at epoch 2 step 3"), std::string::npos) << msg;
  EXPECT_NE(
      msg.find("The last good checkpoint, from the end of epoch 1, stays at " + s.resume_path),
      std::string::npos)
      << msg;
  // It holds epoch 1's finite weights, and the next run resumes from it.
  TrainReport rep;
  train_resumable(r, s.resume_path, 0, &rep);
  EXPECT_EQ(rep.resumed, "epoch 2 step 0");
}

TEST(Trainer, ACheckpointOfAnotherGraphIsRefused) {
  test::TempDir dir;
  test::write_file(dir.file("t.resume.pt"), "not an archive");
  TrainRecipe r = test::TinyModel().default_recipe();
  const std::string msg = test::error_of([&] { train_resumable(r, dir.file("t.resume.pt"), 0); });
  EXPECT_NE(msg.find(dir.file("t.resume.pt")), std::string::npos) << msg;
}

TEST(Runtime, BlasPoolIsPinnedToOneThread) {
  set_threads(2);
  EXPECT_EQ(threads(), 2);
  const int blas = blas_threads();
  if (blas < 0) GTEST_SKIP() << "the BLAS in use is not OpenBLAS";
  EXPECT_EQ(blas, 1);
}

// The kernels outside LibTorch (bit layers, code conversions) split their
// loops with for_ranges; built without OpenMP, it ran them on one thread.
TEST(Runtime, ForRangesRunOnEveryIntraOpThread) {
  set_threads(2);
  std::mutex mutex;
  std::set<std::thread::id> seen;
  std::int64_t covered = 0;
  for_ranges(64, 1, true, [&](std::int64_t begin, std::int64_t end) {
    std::lock_guard<std::mutex> lock(mutex);
    seen.insert(std::this_thread::get_id());
    covered += end - begin;
  });
  EXPECT_EQ(covered, 64);
  EXPECT_EQ(seen.size(), 2u);
  seen.clear();
  for_ranges(64, 1, false,
             [&](std::int64_t, std::int64_t) { seen.insert(std::this_thread::get_id()); });
  EXPECT_EQ(seen, std::set<std::thread::id>{std::this_thread::get_id()});
}

// for_claimed covers every item once, in chunks, on the intra-op threads.
TEST(Runtime, ForClaimedCoversEveryItemOnce) {
  set_threads(2);
  std::mutex mutex;
  std::vector<int> hits(1000, 0);
  std::set<std::thread::id> seen;
  for_claimed(1000, 7, true, [&](std::int64_t begin, std::int64_t end) {
    EXPECT_LE(end - begin, 7);
    std::lock_guard<std::mutex> lock(mutex);
    seen.insert(std::this_thread::get_id());
    for (std::int64_t i = begin; i < end; ++i) ++hits[static_cast<std::size_t>(i)];
  });
  EXPECT_EQ(hits, std::vector<int>(1000, 1));
  EXPECT_GE(seen.size(), 1u);
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  for_claimed(10, 3, false, [&](std::int64_t b, std::int64_t e) { ranges.emplace_back(b, e); });
  EXPECT_EQ(ranges, (std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 10}}));
}

// split_by_speed: ranges in proportion to the speeds, contiguous, covering
// [0, count), at least one item each where there are enough.
TEST(Runtime, SplitBySpeedFollowsTheSpeeds) {
  using Ends = std::vector<std::int64_t>;
  EXPECT_EQ(split_by_speed(64, {1.0, 1.0}), (Ends{32, 64}));
  EXPECT_EQ(split_by_speed(64, {3.0, 1.0}), (Ends{48, 64}));
  EXPECT_EQ(split_by_speed(60, {1.0, 2.0, 3.0}), (Ends{10, 30, 60}));
  EXPECT_EQ(split_by_speed(3, {100.0, 1.0, 1.0}), (Ends{1, 2, 3}));  // one each
  EXPECT_EQ(split_by_speed(1, {1.0, 1.0}), (Ends{1, 1}));            // too few for both
  EXPECT_EQ(split_by_speed(0, {1.0, 1.0}), (Ends{0, 0}));
  EXPECT_EQ(split_by_speed(10, {0.0, 0.0}), (Ends{5, 10}));   // no speeds: even
  EXPECT_EQ(split_by_speed(10, {-1.0, 1.0}), (Ends{1, 10}));  // under zero: zero, one item
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> speed(0.01, 10.0);
  for (int trial = 0; trial < 500; ++trial) {
    const std::int64_t count = trial % 70;
    std::vector<double> speeds(1 + trial % 5);
    for (double& s : speeds) s = speed(rng);
    const Ends ends = split_by_speed(count, speeds);
    ASSERT_EQ(ends.size(), speeds.size());
    EXPECT_EQ(ends.back(), count);
    std::int64_t last = 0;
    for (std::int64_t end : ends) {
      EXPECT_GE(end, last);
      if (count >= static_cast<std::int64_t>(speeds.size())) {
        EXPECT_GT(end, last);
      }
      last = end;
    }
  }
}

// SpeedBalanced covers every item once on the intra-op threads, and gives
// fewer items to a thread whose items take longer (here, sleeping four
// times as long on thread 1 as on thread 0).
TEST(Runtime, SpeedBalancedGivesTheSlowerThreadFewerItems) {
  set_threads(2);
  SpeedBalanced balanced;
  std::mutex mutex;
  for (std::int64_t count : {0, 1, 2, 7, 64}) {
    std::vector<int> hits(static_cast<std::size_t>(count), 0);
    balanced.run(count, true, [&](std::int64_t begin, std::int64_t end) {
      std::lock_guard<std::mutex> lock(mutex);
      for (std::int64_t i = begin; i < end; ++i) ++hits[static_cast<std::size_t>(i)];
    });
    EXPECT_EQ(hits, std::vector<int>(static_cast<std::size_t>(count), 1)) << count;
  }
  SpeedBalanced uneven;
  std::int64_t last_share = 0;
  for (int run = 0; run < 12; ++run) {
    std::int64_t first_share = 0;
    uneven.run(16, true, [&](std::int64_t begin, std::int64_t end) {
      const int thread = at::get_thread_num();
      if (begin == 0) first_share = end;
      std::this_thread::sleep_for(std::chrono::microseconds(thread == 0 ? 100 : 400) *
                                  (end - begin));
    });
    last_share = first_share;
  }
  const auto speeds = uneven.speeds();
  ASSERT_EQ(speeds.size(), 2u);
  EXPECT_GT(speeds[0], 1.5 * speeds[1]);
  EXPECT_GT(last_share, 8);  // of 16 items, to the faster thread 0
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  balanced.run(10, false, [&](std::int64_t b, std::int64_t e) { ranges.emplace_back(b, e); });
  EXPECT_EQ(ranges, (std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 10}}));
}

}  // namespace
}  // namespace qlab
