#pragma once
// Sweeps on a Slurm cluster. `qlab sweep --slurm` runs the script without
// running its points: those not stored as ok go into a plan file, which two
// job arrays work through. The first trains each distinct float baseline
// once, into the shared cache folder; the second, which waits for it, runs
// one point per task and writes that point to its own shard file, so no two
// nodes ever write one database. `qlab results merge` brings the shards
// into the results store.
#include <qlab/experiment.hpp>
#include <qlab/store.hpp>
#include <qlab/sweep.hpp>

#include <iosfwd>
#include <string>
#include <vector>

namespace qlab {

struct PlannedPoint {
  std::string hash, label;
  std::vector<std::string> sweeps;  ///< every sweep of the script that holds it
  std::string experiment;           ///< as TOML (to_toml)
};

struct SlurmPlan {
  std::string path;                   ///< the plan file, absolute
  std::string script;                 ///< the sweep script it came from
  std::string qlab;                   ///< the executable each task runs
  std::string cache_dir, shards_dir;  ///< absolute: tasks may start anywhere
  std::vector<PlannedPoint> points;
  /// One float-only experiment (TOML) per distinct baseline the points need.
  std::vector<std::string> baselines;
};

/// Collects the points a script defers into a plan: one entry per point
/// hash, whatever number of sweeps share it, and one baseline per distinct
/// model, dataset and training recipe.
class PlanBuilder {
 public:
  explicit PlanBuilder(const Registry& registry) : registry_(registry) {}
  PointDeferrer deferrer();
  /// Moves what was collected into `plan`.
  void fill(SlurmPlan& plan);

 private:
  void add(const SweepPoint& point, const ExperimentPlan& resolved, const std::string& sweep);

  const Registry& registry_;
  std::vector<PlannedPoint> points_;
  std::vector<std::string> baselines_, baseline_keys_;
};

void write_plan(const SlurmPlan& plan);
/// Throws qlab::Error naming the file (and the key) when it is missing,
/// not JSON, or not a qlab plan.
SlurmPlan read_plan(const std::string& path);

struct SlurmOptions {
  std::string partition, time;           ///< empty: the cluster's defaults
  int gpus_per_task = 0;                 ///< 0: none asked for
  int array_limit = 0;                   ///< most tasks running at once; 0: no limit
  std::vector<std::string> sbatch_args;  ///< more sbatch options, passed through
  std::string log_dir;                   ///< where each task's output goes
};

enum class SlurmStage { baselines, points };

/// The batch script of one stage's job array: #SBATCH lines, then
/// `qlab sweep --plan PLAN --point $SLURM_ARRAY_TASK_ID` (or --baseline).
std::string batch_script(const SlurmPlan& plan, const SlurmOptions& options, SlurmStage stage);

/// Submits a batch script with `sbatch --parsable` and `extra` options;
/// returns the job id. Throws qlab::Error with sbatch's own message.
std::string submit_batch(const std::string& script_path, const std::vector<std::string>& extra);

/// Runs the plan's point `index` and writes its shard; returns its record.
/// The point must still hash as planned: a plan written by another qlab, or
/// before a plugin changed, is refused.
PointRecord run_planned_point(const SlurmPlan& plan, std::size_t index, const Registry& registry,
                              const RunSettings& settings, std::ostream& log);
/// Trains (or finds in the cache) the plan's float baseline `index`.
void run_planned_baseline(const SlurmPlan& plan, std::size_t index, const Registry& registry,
                          const RunSettings& settings, std::ostream& log);

/// Writes `point` as `dir`/<hash>.json, atomically; returns the file name.
std::string write_shard(const std::string& dir, const PointRecord& point,
                        const std::vector<std::string>& sweeps);

struct MergeSummary {
  std::size_t added = 0;              ///< stored now (new, or replacing a worse record)
  std::size_t unchanged = 0;          ///< the store already held this record
  std::size_t kept = 0;               ///< the store holds an ok record; the shard's was not ok
  std::vector<std::string> problems;  ///< "file: why" of shards that could not be read
};

/// "2 stored, 0 already there, 0 kept (an ok record over a failed shard)".
std::string describe(const MergeSummary& summary);

/// Imports every shard of `dir` into `store`, by point hash: merging the
/// same shards twice changes nothing, and an ok record is never replaced by
/// a failed one. Unreadable shards are listed, not fatal.
MergeSummary merge_shards(ResultStore& store, const std::string& dir);

}  // namespace qlab
