#!/usr/bin/env bash
# `qlab sweep --slurm` on a real one-node Slurm cluster (tests/slurm/cluster.sh):
# the sweep's float baseline is trained once by a first array, each point by
# one task of a second array into its own shard; one task is cancelled, the
# merge stores the others, and re-submitting runs only the cancelled point.
# Exits 77 (skipped, with the reason) where a cluster cannot start.
set -uo pipefail
qlab=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work/empty"
cd "$work"
fail() { echo "FAIL: $*"; tail -n 30 ./*.log .qlab/slurm/*.out 2>/dev/null; exit 1; }

cat >sweep.lua <<'LUA'
local rows = qlab.sweep{
  name = "cluster",
  base = {
    model = "logreg",
    dataset = { limit_train = 1000, limit_test = 200 },
    train = { epochs = 1 },
    quantizer = { name = "dynamic" },
    backend = { name = "onednn", threads = 1 },
    metrics = { names = { "accuracy", "size" } },
  },
  grid = { ["quantizer.weight_bits"] = { 2, 4, 8 } },
}
qlab.report{ name = "cluster", rows = rows }
LUA

# Without a cluster: --dry-run prints the batch scripts, and a submission
# without sbatch says what is missing.
"$qlab" sweep -q sweep.lua --db r.sqlite --slurm --dry-run --partition gpu --time 1:00:00 \
  --array-limit 2 --sbatch=--mem=4G >dry.out 2>dry.log || fail "--dry-run exited $?"
grep -q '^#SBATCH --array=0-2%2$' dry.out || fail "no 3-task array in the dry run"
grep -q '^#SBATCH --partition=gpu$' dry.out || fail "--partition not passed"
grep -q '^#SBATCH --mem=4G$' dry.out || fail "--sbatch option not passed through"
grep -q -- "sweep --plan '.*\.plan\.json' --point \"\$SLURM_ARRAY_TASK_ID\"" dry.out || fail "no task command"
grep -q "not written now" dry.log || fail "the report was not deferred"
[[ ! -e reports/cluster ]] || fail "a dry run wrote a report"
PATH="$work/empty" "$qlab" sweep -q sweep.lua --db r.sqlite --slurm >nosbatch.out 2>nosbatch.log
[[ $? -eq 1 ]] || fail "a submission without sbatch did not exit 1"
grep -q "sbatch is not on PATH" nosbatch.log || fail "no message naming sbatch"
rm -rf .qlab/slurm

source "$here/cluster.sh"
if ! slurm_start "$work/cluster"; then
  echo "SKIP: cannot start a one-node Slurm cluster here: $SLURM_SKIP"
  exit 77
fi
trap slurm_stop EXIT

count_ok() { "$qlab" results --db r.sqlite --sweep cluster --status ok 2>/dev/null | grep -c ' ok ' || true; }

# One task at a time, so the last one is still pending when it is cancelled.
job=$("$qlab" sweep -q sweep.lua --db r.sqlite --slurm --array-limit 1 2>submit1.log) || fail "submit exited $?"
[[ $job =~ ^[0-9]+$ ]] || fail "no job id printed: '$job'"
grep -q "submitted 3 points" submit1.log || fail "3 points not submitted"
scancel "${job}_2" || fail "scancel ${job}_2"
slurm_wait "$job" 600 || fail "the array never finished"
ls .qlab/shards/*.json >/dev/null 2>&1 || fail "no shards written"
[[ $(ls .qlab/shards/*.json | wc -l) -eq 2 ]] || fail "$(ls .qlab/shards | wc -l) shards, want 2"
"$qlab" results merge --db r.sqlite >merge1.out 2>&1 || fail "merge exited $?"
grep -q "2 stored, 0 already there" merge1.out || fail "first merge: $(cat merge1.out)"
"$qlab" results merge --db r.sqlite >merge2.out 2>&1 || fail "second merge exited $?"
grep -q "0 stored, 2 already there" merge2.out || fail "merge is not idempotent: $(cat merge2.out)"
[[ $(count_ok) -eq 2 ]] || fail "$(count_ok) ok points after the cancelled task, want 2"

# The baseline was trained once, by the first array; every point loaded it.
grep -l "float baseline trained" .qlab/slurm/*baselines*.out >/dev/null || fail "no baseline trained by the first array"
if grep -l "float baseline trained" .qlab/slurm/*points*.out 2>/dev/null; then fail "a point task trained its own baseline"; fi

job2=$("$qlab" sweep -q sweep.lua --db r.sqlite --slurm 2>submit2.log) || fail "re-submit exited $?"
grep -q "submitted 1 points" submit2.log || fail "re-submitting did not submit only the cancelled point: $(cat submit2.log)"
slurm_wait "$job2" 600 || fail "the second array never finished"
"$qlab" results merge --db r.sqlite >merge3.out 2>&1 || fail "merge exited $?"
[[ $(count_ok) -eq 3 ]] || fail "$(count_ok) ok points, want 3"
rows=$("$qlab" results --db r.sqlite --sweep cluster --format csv | tail -n +2 | grep -c ',dynamic,')
[[ $rows -eq 3 ]] || fail "$rows quantized rows, want exactly one per point"
[[ $(sqlite3 r.sqlite 'PRAGMA integrity_check') == ok ]] || fail "store not intact"

"$qlab" sweep -q sweep.lua --db r.sqlite --slurm >submit3.out 2>submit3.log || fail "third submit exited $?"
grep -q "nothing to submit" submit3.log || fail "a complete sweep was submitted again"
"$qlab" report sweep.lua --from r.sqlite >report.log 2>&1 || fail "qlab report exited $?"
[[ -s reports/cluster/README.md ]] || fail "no report written"
echo "ok: 3 points on Slurm; one cancelled and re-run alone; merge idempotent; report written"
