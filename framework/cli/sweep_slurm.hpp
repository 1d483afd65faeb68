#pragma once
// The Slurm side of `qlab sweep`: submitting a script's points as job
// arrays, and running one task of such an array.
#include "commands.hpp"

#include <qlab/slurm.hpp>

#include <string>
#include <vector>

namespace qlab::cli {

struct SlurmSubmitArgs {
  std::string script;
  std::vector<std::string> script_args;
  std::string db, cache_dir;
  std::string shards_dir = ".qlab/shards";
  std::string slurm_dir = ".qlab/slurm";
  bool force = false;
  bool dry_run = false;
  SlurmOptions options;
};

/// `qlab sweep SCRIPT --slurm`: merges the shards there are, plans the
/// points without an ok result, and submits them (or prints the batch
/// scripts, with --dry-run). Prints the points' job id on stdout.
int submit_sweep(const SlurmSubmitArgs& args);

/// `qlab sweep --plan PLAN --point I` (or `--baseline I`): one array task.
/// Exits 1 when the point failed; its shard says why.
int run_plan_task(const std::string& plan_path, long point, long baseline, bool quiet);

}  // namespace qlab::cli
