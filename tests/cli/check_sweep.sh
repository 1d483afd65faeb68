#!/usr/bin/env bash
# A real sweep through the CLI: SIGKILL it mid-way, re-run it, and check the
# store holds exactly one ok record per point; then rebuild the report from
# the store without loading data or training.
set -euo pipefail
qlab=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
cd "$work"

cat >sweep.lua <<'LUA'
local rows = qlab.sweep{
  name = "resume",
  base = {
    model = "lenet",
    dataset = { limit_train = 2000, limit_test = 500 },
    train = { epochs = 1 },
    quantizer = { name = "dynamic" },
    backend = { name = "onednn" },
    metrics = { names = { "accuracy", "size" } },
  },
  -- A baseline per seed: points that share one take a fraction of a second,
  -- too fast to be killed mid-way.
  grid = { ["train.seed"] = { 1, 2, 3, 4, 5, 6 }, ["quantizer.per_channel"] = { true, false } },
}
qlab.report{ name = "resume", rows = rows,
  plots = { { kind = "line", name = "acc", x = "train.seed", y = "accuracy",
              series = "quantizer.per_channel" } } }
LUA

count_ok() { "$qlab" results --db r.sqlite --sweep resume --status ok 2>/dev/null | grep -c ' ok ' || true; }

"$qlab" sweep -q sweep.lua --db r.sqlite >first.log 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [[ $(count_ok) -ge 3 ]] && break
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null && { echo "FAIL: the sweep ended before it was killed"; exit 1; }
done_before=$(count_ok)
echo "killed after $done_before of 12 points"
[[ $done_before -ge 3 && $done_before -lt 12 ]] || { echo "FAIL: $done_before points stored"; exit 1; }
# The store a SIGKILL left behind is intact: SQLite's own check.
[[ $(sqlite3 r.sqlite 'PRAGMA integrity_check') == ok ]] || { echo "FAIL: the killed sweep left a corrupt store"; exit 1; }

"$qlab" sweep -q sweep.lua --db r.sqlite >second.log 2>&1
grep -q "12 points: $((12 - done_before)) run now, $done_before from the store, 0 failed" second.log ||
  { echo "FAIL: the re-run did not resume:"; cat second.log; exit 1; }
[[ $(count_ok) -eq 12 ]] || { echo "FAIL: $(count_ok) ok points stored, want 12"; exit 1; }
[[ $(sqlite3 r.sqlite 'SELECT count(*), count(DISTINCT hash) FROM points') == "12|12" ]] ||
  { echo "FAIL: a point is stored twice"; exit 1; }
[[ $(sqlite3 r.sqlite 'PRAGMA integrity_check') == ok ]] || { echo "FAIL: the resumed store is corrupt"; exit 1; }
[[ $("$qlab" results --db r.sqlite --format csv | wc -l) -eq 25 ]] || { echo "FAIL: csv rows"; exit 1; }
"$qlab" results --db r.sqlite --format json -o rows.json
grep -q '"rows"' rows.json || { echo "FAIL: json export"; exit 1; }

rm -rf reports .qlab/cache
"$qlab" report sweep.lua --from r.sqlite >report.log 2>&1
! grep -qE "^dataset |epoch " report.log || { echo "FAIL: the report loaded data or trained:"; cat report.log; exit 1; }
[[ -s reports/resume/README.md && -s reports/resume/plots/acc.png && -s reports/resume/rows.csv ]] ||
  { echo "FAIL: report files missing"; exit 1; }
echo "ok: resumed after SIGKILL and rebuilt the report from the store"
