// Grids, the results store, and the sweeper's skip / fail / resume rules.
#include "sweep_support.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <sstream>
#include <thread>

namespace qlab::test {
namespace {

std::vector<GridAxis> bits_grid(std::vector<std::int64_t> bits) {
  GridAxis axis{"quantizer.weight_bits", {}};
  for (auto b : bits) axis.values.emplace_back(b);
  return {axis};
}

TEST(Grid, CartesianProductLastAxisFastest) {
  std::vector<GridAxis> axes{{"quantizer.weight_bits", {std::int64_t{2}, std::int64_t{4}}},
                             {"train.epochs", {std::int64_t{1}, std::int64_t{2}, std::int64_t{3}}}};
  const auto points = expand_grid(lenet_experiment(), axes, {"s.lua", 3, 0});
  ASSERT_EQ(points.size(), 6u);
  EXPECT_EQ(points[0].label(), "weight_bits=2 epochs=1");
  EXPECT_EQ(points[1].label(), "weight_bits=2 epochs=2");
  EXPECT_EQ(points[5].label(), "weight_bits=4 epochs=3");
  EXPECT_EQ(std::get<std::int64_t>(points[4].experiment.train.values.at("epochs").value), 2);
  EXPECT_EQ(points[4].experiment.train.values.at("epochs").where.str(), "s.lua:3");
  // The base's own options stay.
  EXPECT_EQ(std::get<std::string>(points[0].experiment.model.values.at("name").value), "lenet");
}

TEST(Grid, NoAxesIsTheBasePoint) {
  const auto points = expand_grid(lenet_experiment(), {}, {"s.lua", 1, 0});
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].label(), "base");
}

TEST(Grid, BadKeysNameTheScriptLine) {
  const SourceLoc at{"s.lua", 7, 0};
  EXPECT_EQ(error_of([&] {
              expand_grid(lenet_experiment(), {{"weight_bits", {std::int64_t{2}}}}, at);
            }),
            "s.lua:7: grid key 'weight_bits' must name a section and an option, e.g. "
            "\"quantizer.weight_bits\"");
  EXPECT_NE(error_of([&] {
              expand_grid(lenet_experiment(), {{"quantiser.bits", {std::int64_t{2}}}}, at);
            }).find("s.lua:7: grid key 'quantiser.bits': unknown section 'quantiser'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              expand_grid(lenet_experiment(), {{"train.epochs", {}}}, at);
            }).find("has no values"),
            std::string::npos);
}

TEST(Store, SavesFindsAndReplacesAPoint) {
  TempDir dir;
  ResultStore store(dir.file("sub/r.sqlite"));
  PointRecord p;
  p.hash = "h1";
  p.sweep = "s";
  p.label = "weight_bits=4";
  p.config = {{"model", {{"name", "lenet"}}}, {"quantizer", {{"name", "static"}}}};
  p.rows = {{{"model", "lenet"}, {"metrics", {{"accuracy", 80.5}}}}};
  p.status = PointStatus::failed;
  p.message = "boom";
  store.save(p);
  auto found = store.find("h1");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->status, PointStatus::failed);
  EXPECT_EQ(found->message, "boom");
  EXPECT_EQ(found->rows.at(0)["metrics"]["accuracy"], 80.5);
  p.status = PointStatus::ok;
  p.message.clear();
  store.save(p);
  EXPECT_EQ(store.points().size(), 1u);  // replaced, not added
  EXPECT_EQ(store.find("h1")->status, PointStatus::ok);
  EXPECT_FALSE(store.find("h2"));
  EXPECT_EQ(store.points({"s", "lenet", "static", "", "ok"}).size(), 1u);
  EXPECT_TRUE(store.points({"other", "", "", "", ""}).empty());
  EXPECT_TRUE(store.points({"", "", "dynamic", "", ""}).empty());
}

TEST(Store, RefusesFilesThatAreNotAStore) {
  TempDir dir;
  write_file(dir.file("junk.sqlite"), std::string(4096, 'x'));
  EXPECT_NE(error_of([&] { ResultStore s(dir.file("junk.sqlite")); }).find("junk.sqlite"),
            std::string::npos);
  sqlite3* other = nullptr;  // another program's SQLite database
  ASSERT_EQ(sqlite3_open(dir.file("other.sqlite").c_str(), &other), SQLITE_OK);
  sqlite3_exec(other, "CREATE TABLE t(x)", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_EQ(error_of([&] { ResultStore s(dir.file("other.sqlite")); }),
            dir.file("other.sqlite") + ": an SQLite database, but not a qlab results store");
  { ResultStore s(dir.file("mine.sqlite")); }
  EXPECT_NO_THROW(ResultStore s(dir.file("mine.sqlite")));  // reopening our own
}

TEST_F(SweeperTest, StoresEveryPointAndSkipsThemOnTheNextRun) {
  const auto points = expand_grid(lenet_experiment(), bits_grid({2, 4, 8}), {"s.lua", 1, 0});
  SweepSettings settings;
  settings.name = "bits";
  auto records = sweeper.run(points, settings);
  EXPECT_EQ(*fake.calls, 3);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1].rows.at(1)["metrics"]["accuracy"], 40.0);
  EXPECT_EQ(records[1].config["quantizer"]["weight_bits"], 4);  // the resolved config
  EXPECT_EQ(records[1].config["quantizer"]["observer"], "minmax");

  records = sweeper.run(points, settings);
  EXPECT_EQ(*fake.calls, 3) << "stored points must not run again";
  EXPECT_EQ(records[2].rows.at(1)["metrics"]["accuracy"], 80.0);
  settings.force = true;
  sweeper.run(points, settings);
  EXPECT_EQ(*fake.calls, 6);
  EXPECT_EQ(store.points({"bits", "", "", "", ""}).size(), 3u);
}

TEST_F(SweeperTest, AFailingPointIsStoredAndTheSweepGoesOn) {
  const auto points = expand_grid(lenet_experiment(), bits_grid({2, 3, 4}), {"s.lua", 1, 0});
  const auto records = sweeper.run(points, {});
  EXPECT_EQ(*fake.calls, 3);
  EXPECT_EQ(records[1].status, PointStatus::failed);
  EXPECT_EQ(records[1].message, "[train] loss became NaN at epoch 1");
  EXPECT_EQ(records[2].status, PointStatus::ok);
  EXPECT_EQ(store.find(records[1].hash)->status, PointStatus::failed);
  // A failed point is tried again; the ok ones are not.
  sweeper.run(points, {});
  EXPECT_EQ(*fake.calls, 4);
  const auto rows = rows_of(store.points());
  ASSERT_EQ(rows.size(), 5u);  // two points x (fp32, static) + the failed point's one row
  EXPECT_EQ(rows[2]["point"]["status"], "failed");
  EXPECT_EQ(rows[0]["point"]["label"], "fp32");
  EXPECT_EQ(rows[1]["point"]["label"], "weight_bits=2");
}

TEST_F(SweeperTest, APointWhoseBackendCannotRunHereIsSkippedWithTheReason) {
  if (build_registry().backend("fbgemm")->availability().available)
    GTEST_SKIP() << "this LibTorch has FBGEMM";
  auto points =
      expand_grid(lenet_experiment(),
                  {{"backend.name", {std::string("fbgemm"), std::string("cpu")}}}, {"s.lua", 1, 0});
  const auto records = sweeper.run(points, {});
  EXPECT_EQ(*fake.calls, 1);
  EXPECT_EQ(records[0].status, PointStatus::skipped);
  EXPECT_NE(records[0].message.find("backend 'fbgemm' is unavailable"), std::string::npos)
      << records[0].message;
  EXPECT_EQ(records[1].status, PointStatus::ok);
  sweeper.run(points, {});
  EXPECT_EQ(*fake.calls, 1) << "a skipped point is not tried again";
}

TEST_F(SweeperTest, EveryPointIsValidatedBeforeAnyRuns) {
  const auto points = expand_grid(lenet_experiment(), bits_grid({2, 4, 99}), {"s.lua", 5, 0});
  EXPECT_EQ(
      error_of([&] { sweeper.run(points, {}); }),
      "s.lua:5: [quantizer] weight_bits: integer 99 is out of range, expected between 1 and 16");
  EXPECT_EQ(*fake.calls, 0);
  EXPECT_TRUE(store.points().empty());
}

TEST_F(SweeperTest, ReportOnlyNeverRunsAPoint) {
  const auto points = expand_grid(lenet_experiment(), bits_grid({2, 4}), {"s.lua", 1, 0});
  SweepSettings report;
  report.report_only = true;
  EXPECT_NE(error_of([&] { sweeper.run(points, report); }).find("is not in the results store"),
            std::string::npos);
  sweeper.run({points[0]}, {});
  EXPECT_EQ(*fake.calls, 1);
  EXPECT_NE(error_of([&] { sweeper.run(points, report); }).find("point 2 (weight_bits=4)"),
            std::string::npos);
  EXPECT_EQ(sweeper.run({points[0]}, report).size(), 1u);
  EXPECT_EQ(*fake.calls, 1);
}

// SIGKILL a sweep mid-way, then resume: finished points survive, the rest
// run, and the store ends with exactly one ok record per point.
TEST(Sweeper, ResumesAfterSigkillWithoutLosingOrDuplicatingPoints) {
  TempDir dir;
  const std::string db = dir.file("r.sqlite");
  std::vector<std::int64_t> bits;
  for (std::int64_t b = 1; b <= 16; ++b)
    if (b != 3) bits.push_back(b);
  const auto points = expand_grid(lenet_experiment(), bits_grid(bits), {"s.lua", 1, 0});
  const auto& registry = build_registry();

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ResultStore store(db);
    FakeRunner fake;
    auto slow = [inner = fake.runner()](const Experiment& ex, const ExperimentPlan& plan) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      return inner(ex, plan);
    };
    std::ostringstream log;
    Sweeper(registry, store, slow, log).run(points, {});
    _exit(0);
  }
  std::size_t stored = 0;
  for (int i = 0; i < 400 && stored < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    if (std::filesystem::exists(db)) stored = ResultStore(db).points().size();
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the sweep finished before it was killed";

  ResultStore store(db);
  const auto survived = store.points().size();
  EXPECT_GE(survived, 4u);
  EXPECT_LT(survived, points.size());
  FakeRunner fake;
  std::ostringstream log;
  Sweeper(registry, store, fake.runner(), log).run(points, {});
  EXPECT_EQ(static_cast<std::size_t>(*fake.calls), points.size() - survived);
  const auto all = store.points();
  EXPECT_EQ(all.size(), points.size());
  for (const auto& p : all) EXPECT_EQ(p.status, PointStatus::ok) << p.label;
}

}  // namespace
}  // namespace qlab::test
