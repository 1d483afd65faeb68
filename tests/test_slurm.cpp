// Slurm sweeps without a cluster: deferring points into a plan, the plan
// file, batch scripts, shards and their merge. tests/slurm/check_slurm.sh
// runs the whole path on a real one-node cluster.
#include "sweep_support.hpp"

#include <qlab/slurm.hpp>

#include <gtest/gtest.h>

#include <sstream>

namespace qlab::test {
namespace {

std::vector<SweepPoint> bits_points(std::vector<std::int64_t> bits) {
  GridAxis axis{"quantizer.weight_bits", {}};
  for (auto b : bits) axis.values.emplace_back(b);
  return expand_grid(lenet_experiment(), {axis}, {"s.lua", 1, 0});
}

PointRecord record(const std::string& hash, PointStatus status, const std::string& ended) {
  PointRecord p;
  p.hash = hash;
  p.sweep = "bits";
  p.label = "weight_bits=4";
  p.config = {{"model", {{"name", "lenet"}}}};
  p.status = status;
  p.message = status == PointStatus::ok ? "" : "[train] loss became NaN";
  p.started = "2026-11-22T10:00:00Z";
  p.ended = ended;
  return p;
}

class DeferTest : public SweeperTest {
 protected:
  PlanBuilder builder{build_registry()};
};

TEST_F(DeferTest, PointsWithoutAnOkRecordGoIntoThePlanAndNothingRuns) {
  SweepSettings settings;
  settings.name = "bits";
  sweeper.run(bits_points({2}), settings);  // stored ok
  settings.defer = builder.deferrer();
  const auto records = sweeper.run(bits_points({2, 4, 8}), settings);
  EXPECT_EQ(*fake.calls, 1) << "a deferred point must not run here";
  EXPECT_EQ(records[0].status, PointStatus::ok);
  EXPECT_EQ(records[1].status, PointStatus::skipped);
  EXPECT_EQ(store.points().size(), 1u) << "a deferred point is not stored";

  // The same point in a second sweep is planned once, under both names.
  settings.name = "again";
  sweeper.run(bits_points({4}), settings);
  SlurmPlan plan;
  builder.fill(plan);
  ASSERT_EQ(plan.points.size(), 2u);
  EXPECT_EQ(plan.points[0].label, "weight_bits=4");
  EXPECT_EQ(plan.points[0].sweeps, (std::vector<std::string>{"bits", "again"}));
  EXPECT_EQ(plan.baselines.size(), 1u)
      << "the points differ only in their quantizer: one float baseline";
  EXPECT_EQ(parse_experiment(plan.baselines[0], "b").quantizer.values.count("name"), 0u);
}

TEST_F(DeferTest, AFailedPointIsPlannedAgain) {
  SweepSettings settings;
  sweeper.run(bits_points({3}), settings);  // the fake runner fails 3 bits
  settings.defer = builder.deferrer();
  sweeper.run(bits_points({3}), settings);
  SlurmPlan plan;
  builder.fill(plan);
  EXPECT_EQ(plan.points.size(), 1u);
}

TEST_F(DeferTest, ADifferentTrainingRecipeIsAnotherBaseline) {
  GridAxis epochs{"train.epochs", {std::int64_t{1}, std::int64_t{2}}};
  GridAxis bits{"quantizer.weight_bits", {std::int64_t{4}, std::int64_t{8}}};
  SweepSettings settings;
  settings.defer = builder.deferrer();
  sweeper.run(expand_grid(lenet_experiment(), {epochs, bits}, {"s.lua", 1, 0}), settings);
  SlurmPlan plan;
  builder.fill(plan);
  EXPECT_EQ(plan.points.size(), 4u);
  EXPECT_EQ(plan.baselines.size(), 2u);
}

TEST_F(DeferTest, ThePlanFileRoundTripsAndTasksFindTheirPoint) {
  SweepSettings settings;
  settings.defer = builder.deferrer();
  sweeper.run(bits_points({4, 8}), settings);
  SlurmPlan plan;
  builder.fill(plan);
  plan.path = dir.file("p.plan.json");
  plan.script = "s.lua";
  plan.qlab = "/opt/qlab/bin/qlab";
  plan.cache_dir = dir.file("cache");
  plan.shards_dir = dir.file("shards");
  write_plan(plan);
  const SlurmPlan back = read_plan(plan.path);
  ASSERT_EQ(back.points.size(), 2u);
  EXPECT_EQ(back.points[1].hash, plan.points[1].hash);
  EXPECT_EQ(back.points[1].experiment, plan.points[1].experiment);
  EXPECT_EQ(back.baselines, plan.baselines);
  EXPECT_EQ(back.shards_dir, plan.shards_dir);

  // The experiment travels as TOML and resolves to the hash it was planned with.
  const Experiment ex = parse_experiment(back.points[1].experiment, "point");
  EXPECT_EQ(plan_experiment(ex, build_registry()).hash, plan.points[1].hash);

  std::ostringstream task_log;
  EXPECT_NE(error_of([&] {
              run_planned_point(back, 2, build_registry(), {}, task_log);
            }).find("no point 2"),
            std::string::npos);
}

TEST(SlurmPlan, UnreadablePlansAreRefusedNamingTheFileAndKey) {
  TempDir dir;
  EXPECT_NE(error_of([&] {
              read_plan(dir.file("missing.json"));
            }).find("missing.json: no such plan file"),
            std::string::npos);
  write_file(dir.file("text.json"), "not json");
  EXPECT_NE(error_of([&] { read_plan(dir.file("text.json")); }).find("not a qlab plan"),
            std::string::npos);
  write_file(
      dir.file("partial.json"),
      R"({"format": "qlab-plan-1", "script": "s.lua", "qlab": "q", "cache_dir": "c", "shards_dir": "s",
                 "baselines": [], "points": [{"hash": "h", "label": "l", "sweeps": ["x"], "experiment": 3}]})");
  const std::string m = error_of([&] { read_plan(dir.file("partial.json")); });
  EXPECT_NE(m.find("partial.json: points[0]: \"experiment\" has the wrong type (number)"),
            std::string::npos)
      << m;
}

TEST(SlurmPlan, BatchScriptsCarryTheOptionsAndRunOneTaskEach) {
  SlurmPlan plan;
  plan.path = "/work/.qlab/slurm/bits-20261122T100000Z.plan.json";
  plan.script = "/work/bits.lua";
  plan.qlab = "/opt/my qlab/qlab";
  plan.points.resize(25);
  plan.baselines.resize(2);
  SlurmOptions o;
  o.partition = "gpu";
  o.time = "2:00:00";
  o.gpus_per_task = 1;
  o.array_limit = 8;
  o.sbatch_args = {"--mem=16G"};
  o.log_dir = "/work/.qlab/slurm";
  const std::string points = batch_script(plan, o, SlurmStage::points);
  EXPECT_NE(points.find("#SBATCH --array=0-24%8\n"), std::string::npos) << points;
  EXPECT_NE(
      points.find("#SBATCH --partition=gpu\n#SBATCH --time=2:00:00\n#SBATCH --gpus-per-task=1\n"
                  "#SBATCH --mem=16G\n"),
      std::string::npos);
  EXPECT_NE(
      points.find("#SBATCH --output=/work/.qlab/slurm/bits-20261122T100000Z-points-%A_%a.out\n"),
      std::string::npos);
  EXPECT_NE(points.find("exec '/opt/my qlab/qlab' sweep --plan "
                        "'/work/.qlab/slurm/bits-20261122T100000Z.plan.json' "
                        "--point \"$SLURM_ARRAY_TASK_ID\"\n"),
            std::string::npos);
  const std::string baselines = batch_script(plan, o, SlurmStage::baselines);
  EXPECT_NE(baselines.find("#SBATCH --array=0-1%8\n"), std::string::npos);
  EXPECT_NE(baselines.find("--baseline \"$SLURM_ARRAY_TASK_ID\""), std::string::npos);
}

TEST(Shards, MergeIsIdempotentAndNeverReplacesOkWithFailed) {
  TempDir dir;
  ResultStore store(dir.file("r.sqlite"));
  const std::string shards = dir.file("shards");
  write_shard(shards, record("aaaa", PointStatus::ok, "2026-11-22T10:01:00Z"), {"bits", "again"});
  write_shard(shards, record("bbbb", PointStatus::failed, "2026-11-22T10:02:00Z"), {"bits"});

  MergeSummary m = merge_shards(store, shards);
  EXPECT_EQ(m.added, 2u);
  EXPECT_TRUE(m.problems.empty());
  EXPECT_EQ(store.points({"again", "", "", "", ""}).size(), 1u) << "every sweep the shard names";
  m = merge_shards(store, shards);
  EXPECT_EQ(m.added, 0u);
  EXPECT_EQ(m.unchanged, 2u);
  EXPECT_EQ(store.points().size(), 2u);

  // A re-run of the failed point that succeeded replaces it; an old failed
  // shard of a point stored ok does not.
  write_shard(shards, record("bbbb", PointStatus::ok, "2026-11-22T11:00:00Z"), {"bits"});
  store.save(record("aaaa", PointStatus::ok, "2026-11-22T12:00:00Z"));
  write_shard(shards, record("aaaa", PointStatus::failed, "2026-11-22T13:00:00Z"), {"bits"});
  m = merge_shards(store, shards);
  EXPECT_EQ(m.added, 1u);
  EXPECT_EQ(m.kept, 1u);
  EXPECT_EQ(store.find("aaaa")->status, PointStatus::ok);
  EXPECT_EQ(store.find("bbbb")->status, PointStatus::ok);
}

TEST(Shards, UnreadableShardsAreListedByFileAndTheRestMerge) {
  TempDir dir;
  ResultStore store(dir.file("r.sqlite"));
  const std::string shards = dir.file("shards");
  write_shard(shards, record("aaaa", PointStatus::ok, "2026-11-22T10:01:00Z"), {"bits"});
  write_file(dir.file("shards/cccc.json"),
             "{\"format\": \"qlab-shard-1\", \"point\": {\"hash\": 1}}");
  write_file(dir.file("shards/dddd.json"), "truncat");
  write_file(dir.file("shards/eeee.json.tmp.123"), "a write in progress is not a shard");
  std::filesystem::copy_file(dir.file("shards/aaaa.json"), dir.file("shards/ffff.json"));

  const MergeSummary m = merge_shards(store, shards);
  EXPECT_EQ(m.added, 1u);
  ASSERT_EQ(m.problems.size(), 3u);
  EXPECT_NE(m.problems[0].find("cccc.json: not a qlab point record"), std::string::npos)
      << m.problems[0];
  EXPECT_NE(m.problems[1].find("dddd.json: not a qlab shard"), std::string::npos) << m.problems[1];
  EXPECT_NE(m.problems[2].find("ffff.json: holds point aaaa"), std::string::npos) << m.problems[2];
}

TEST(Shards, APointRecordRoundTripsThroughJson) {
  PointRecord p = record("abcd", PointStatus::failed, "2026-11-22T10:01:00Z");
  p.rows = {{{"model", "lenet"}}};
  p.qlab_version = "0.1.0";
  const PointRecord back = point_from_json(to_json(p), "x");
  EXPECT_EQ(to_json(back), to_json(p));
  EXPECT_NE(error_of([] {
              point_from_json({{"hash", "h"}}, "shard.json");
            }).find("shard.json: not a qlab point record"),
            std::string::npos);
}

}  // namespace
}  // namespace qlab::test
