#!/usr/bin/env bash
# `qlab sweep --isolate`: a point whose process crashes (a metric plugin
# raising SIGSEGV) is stored as failed with the signal, the other points
# run and are stored once, and the sweep exits 1 listing the failure.
set -uo pipefail
qlab=$1
work=$2
crashing_plugin_dir=$3
rm -rf "$work" && mkdir -p "$work"
cd "$work"

cat >sweep.lua <<'LUA'
local args = qlab.args{ crash = "crashing" }
qlab.sweep{
  name = "isolated",
  base = {
    model = "logreg",
    dataset = { limit_train = 1000, limit_test = 200 },
    train = { epochs = 1 },
    quantizer = { name = "dynamic" },
    backend = { name = "onednn" },
  },
  grid = { ["metrics.names"] = { { "accuracy" }, { "accuracy", args.crash }, { "size" } } },
}
LUA

QLAB_PLUGIN_PATH=$crashing_plugin_dir "$qlab" sweep -q --isolate --db r.sqlite sweep.lua >out.log 2>err.log
code=$?
fail() { echo "FAIL: $*"; cat err.log; exit 1; }
[[ $code -eq 1 ]] || fail "exit $code, want 1"
grep -q "killed by signal 11 (Segmentation fault)" err.log || fail "no signal named on stderr"
ok=$("$qlab" results --db r.sqlite --sweep isolated --status ok | grep -c ' ok ')
failed=$("$qlab" results --db r.sqlite --sweep isolated --status failed | grep -c ' failed ')
[[ $ok -eq 2 ]] || fail "$ok ok points, want 2"
[[ $failed -eq 1 ]] || fail "$failed failed points, want 1"
"$qlab" results --db r.sqlite --sweep isolated --status failed --format json | grep -q 'killed by signal 11' ||
  fail "the stored failure does not name the signal"
[[ $(sqlite3 r.sqlite 'SELECT count(*), count(DISTINCT hash) FROM points') == "3|3" ]] || fail "a point is stored twice"
[[ $(sqlite3 r.sqlite 'PRAGMA integrity_check') == ok ]] || fail "the store is corrupt after the crash"
# Without --isolate the same crash would take the whole sweep down: the
# isolated run above is what keeps the other points.
echo "ok: crash stored as failed ($failed), other points stored ($ok)"
