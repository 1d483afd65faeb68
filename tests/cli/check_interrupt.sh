#!/usr/bin/env bash
# Ctrl-C during training: `qlab run` saves a training checkpoint and exits
# 130; the same command resumes it and ends with the accuracy of an
# uninterrupted run. In a sweep, the interrupted point is not stored as failed.
set -uo pipefail
qlab=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
cd "$work"
fail() { echo "FAIL: $*"; tail -n 5 ./*.log; exit 1; }

printf '[model]\nname = "lenet"\n[dataset]\nlimit_test = 500\n[train]\nepochs = 2\n[backend]\nname = "onednn"\n[metrics]\nnames = ["accuracy", "loss"]\n' >exp.toml
accuracy() { grep -m1 '| lenet ' "$1" | cut -d'|' -f7,8 | tr -d ' '; }  # accuracy and loss

"$qlab" run -q --cache straight exp.toml >straight.out 2>straight.log || fail "the uninterrupted run exited $?"

# Interrupt once the second epoch is a quarter done (progress lines go to stderr).
interrupt_during() {  # interrupt_during LOG PATTERN -- command...
  local log=$1 pattern=$2
  shift 3
  "$@" >/dev/null 2>"$log" &
  local pid=$! i
  for i in $(seq 1 1200); do
    grep -q -- "$pattern" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -INT "$pid"
  wait "$pid"
}
interrupt_during run1.log "epoch 2/2  25%" -- "$qlab" run --cache resumed exp.toml
code=$?
[[ $code -eq 130 ]] || fail "interrupted run exited $code, want 130"
grep -q "qlab: interrupted at epoch 2 step .*: saved .*resumed/lenet-.*\.resume\.pt; the same command resumes from it" run1.log ||
  fail "no message naming the step and the checkpoint"
ls resumed/*.resume.pt >/dev/null 2>&1 || fail "no training checkpoint"
ls resumed | grep -qE '^lenet-[0-9a-f]{16}\.safetensors$' && fail "a baseline was cached though training did not finish"

"$qlab" run -q --cache resumed exp.toml >resumed.out 2>run2.log || fail "the resumed run exited $?"
grep -q "float baseline training resumed from .* at epoch 2 step" resumed.out run2.log || fail "no note that training resumed"
ls resumed/*.resume.pt >/dev/null 2>&1 && fail "the training checkpoint was left behind"
a=$(accuracy straight.out) b=$(accuracy resumed.out)
[[ -n $a && $a == "$b" ]] || fail "resumed accuracy '$b' differs from the uninterrupted '$a'"

# A sweep: Ctrl-C stops it, and the point is absent, not failed.
cat >sweep.lua <<'LUA'
qlab.sweep{ name = "stop", base = { model = "lenet", dataset = { limit_test = 500 }, train = { epochs = 2, seed = 7 },
  backend = { name = "onednn" }, metrics = { names = { "accuracy" } } } }
LUA
interrupt_during sweep1.log "epoch 1/2  25%" -- "$qlab" sweep --db r.sqlite --cache swept sweep.lua
code=$?
[[ $code -eq 130 ]] || fail "interrupted sweep exited $code, want 130"
stored=$("$qlab" results --db r.sqlite 2>/dev/null | grep -c ' failed \| ok ' || true)
[[ $stored -eq 0 ]] || fail "the interrupted point was stored ($stored records)"
"$qlab" sweep -q --db r.sqlite --cache swept sweep.lua >sweep2.log 2>&1 || fail "the resumed sweep exited $?"
[[ $("$qlab" results --db r.sqlite --status ok | grep -c ' ok ') -eq 1 ]] || fail "the resumed sweep stored no ok point"
echo "ok: interrupted at a step, resumed to accuracy $a; an interrupted sweep point is not stored"
