#!/usr/bin/env bash
# A 25-point bit-width sweep (LeNet, Fashion-MNIST, static, W{1,2,4,8,16} x
# A{1,2,4,8,16}, accuracy) timed two ways in one run on this machine:
#   - qlab: one `qlab sweep` over a fresh results store, on a cached baseline;
#   - Python: the same 25 points as 25 fresh processes with PyTorch's fake
#     quantization (sweep_point_reference.py), as users script it.
# Prints both times and their ratio.
#
#   ./dev.sh run                  # once: builds qlab (and caches nothing yet)
#   bash tests/bench/sweep_bits.sh
#
# It installs python3-torch from Debian if missing (apt-get; root or sudo).
set -euo pipefail
cd "$(dirname "$0")/../.."
QLAB=${QLAB:-build/qlab}
[[ -x $QLAB ]] || { echo "sweep_bits.sh: $QLAB not found; run ./dev.sh run first" >&2; exit 1; }
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  sudo=(); [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch
fi

work=$(mktemp -d /tmp/qlab-sweep-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cache=.qlab/cache
now() { date +%s.%N; }

# The baseline is trained (or found in the cache) before anything is timed.
"$QLAB" sweep -q --db "$work/warm.sqlite" --cache "$cache" --reports "$work/reports" \
  tests/bench/sweep_bits.lua >"$work/warm.log" 2>&1 || { cat "$work/warm.log"; exit 1; }
checkpoint=$("$QLAB" results --db "$work/warm.sqlite" --format json |
  grep -o "$cache/lenet-[0-9a-f]*\.pt" | head -1)
echo "baseline: $checkpoint"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"

t0=$(now)
"$QLAB" sweep -q --db "$work/fresh.sqlite" --cache "$cache" --reports "$work/reports" \
  tests/bench/sweep_bits.lua >"$work/qlab.log" 2>&1 || { cat "$work/qlab.log"; exit 1; }
t1=$(now)
for w in 1 2 4 8 16; do
  for a in 1 2 4 8 16; do
    /usr/bin/python3 tests/bench/sweep_point_reference.py --weight-bits "$w" \
      --activation-bits "$a" --checkpoint "$checkpoint" >>"$work/python.log"
  done
done
t2=$(now)
grep -h "points:" "$work/qlab.log"
python3 - "$t0" "$t1" "$t2" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:])
q, p = t1 - t0, t2 - t1
print(f"qlab sweep, 25 points in one process: {q:.1f} s")
print(f"Python, 25 fresh processes:           {p:.1f} s")
print(f"ratio (Python / qlab):                {p / q:.1f}x")
PY
