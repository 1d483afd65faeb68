#pragma once
// Sweeps: a base experiment, a grid of option values, and a runner that
// stores every point as it finishes and skips the points already stored.
#include <qlab/experiment.hpp>
#include <qlab/store.hpp>

#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace qlab {

/// One axis of a grid: an option named "section.key" and its values.
struct GridAxis {
  std::string key;
  std::vector<Value> values;
};

struct SweepPoint {
  Experiment experiment;
  std::vector<std::pair<std::string, Value>> assignment;  ///< the grid values it takes
  /// "static weight_bits=4" for quantizer.name=static quantizer.weight_bits=4,
  /// or "base" for a point that takes no grid value.
  std::string label() const;
};

/// Sets option "section.key" of `experiment`; throws qlab::Error (at `where`)
/// for a key without a section or an unknown section.
void set_option(Experiment& experiment, const std::string& dotted_key, const Value& value,
                const SourceLoc& where);

/// The cartesian product of the axes over `base`, the last axis varying
/// fastest. `where` is the location blamed for a bad key.
std::vector<SweepPoint> expand_grid(const Experiment& base, const std::vector<GridAxis>& axes,
                                    const SourceLoc& where);

/// Hands a point that is not stored to someone else (a Slurm job array)
/// instead of running it here.
using PointDeferrer = std::function<void(const SweepPoint& point, const ExperimentPlan& plan,
                                         const std::string& sweep)>;

struct SweepSettings {
  std::string name = "sweep";
  bool force = false;        ///< re-run points already stored as ok or skipped
  bool report_only = false;  ///< never run a point: every point must be stored
  bool progress = true;
  /// If set, points that would run are passed to it instead, and come back
  /// unstored with status skipped ("deferred").
  PointDeferrer defer;
};

/// Runs one point from its plan (resolved once, by the sweeper) and returns
/// its result rows as stored (to_json of each). The default runs
/// run_experiment; tests inject their own.
using PointRunner =
    std::function<std::vector<nlohmann::json>(const Experiment&, const ExperimentPlan&)>;

/// Runs a validated point through `runner` and returns its record, unsaved:
/// ok with its rows, failed with the exception's message, or skipped when
/// its backend is unavailable here.
PointRecord run_point(const SweepPoint& point, const ExperimentPlan& plan, const std::string& sweep,
                      const PointRunner& runner);

/// Runs each point in this process, with run_experiment.
PointRunner in_process_runner(RunSettings settings, std::ostream& log);

/// Runs each point in a child `qlab run` process (`qlab` is that
/// executable), so that a crash (a segfault, an abort, the kernel's OOM
/// killer) fails that point only, with the signal named. The child's
/// stderr is forwarded to `log`.
PointRunner isolated_runner(std::string qlab, RunSettings settings, std::ostream& log);

class Sweeper {
 public:
  Sweeper(const Registry& registry, ResultStore& store, PointRunner runner, std::ostream& log);

  /// Validates every point, then runs those not yet stored, saving each as it
  /// ends. A point that throws is stored as failed and the sweep goes on.
  std::vector<PointRecord> run(const std::vector<SweepPoint>& points,
                               const SweepSettings& settings);

 private:
  PointRecord run_one(const SweepPoint& point, const ExperimentPlan& plan,
                      const SweepSettings& settings);

  const Registry& registry_;
  ResultStore& store_;
  PointRunner runner_;
  std::ostream& log_;
};

/// The rows of stored points, each tagged with its point's hash, label and
/// status; a failed or skipped point contributes one row with its message.
std::vector<nlohmann::json> rows_of(const std::vector<PointRecord>& points);

}  // namespace qlab
