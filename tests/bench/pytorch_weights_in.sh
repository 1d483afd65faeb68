#!/usr/bin/env bash
# Weights in from PyTorch: LeNet trained in PyTorch's Python frontend
# (lenet_epoch_reference.py, qlab's recipe and preprocessing), saved as
# safetensors, loaded by qlab through [model] weights, and evaluated on the
# same 10,000 test images. Prints both accuracies and their difference,
# then quantizes the PyTorch-trained model (static int8 on oneDNN).
#
#   ./dev.sh test        # once: builds qlab
#   bash tests/bench/pytorch_weights_in.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/../.."
epochs=${1:-1}
qlab=${QLAB:-build/qlab}
[[ -x $qlab ]] || { echo "pytorch_weights_in.sh: $qlab not found; run ./dev.sh test first" >&2; exit 1; }
work=$(mktemp -d /tmp/qlab-weights.XXXXXX)
trap 'rm -rf "$work"' EXIT
torch_acc=$(cd tests/bench && /usr/bin/python3 lenet_epoch_reference.py --epochs "$epochs" \
  --save "$work/lenet.safetensors" | sed -n 's/^test accuracy \(.*\)%$/\1/p')
cat >"$work/lenet.toml" <<TOML
[model]
name = "lenet"
weights = "$work/lenet.safetensors"
[dataset]
name = "fashion-mnist"
[quantizer]
name = "static"
[backend]
name = "onednn"
[metrics]
names = ["accuracy"]
TOML
"$qlab" run --cache "$work/cache" --json "$work/rows.json" "$work/lenet.toml" >/dev/null 2>"$work/log" ||
  { cat "$work/log" >&2; exit 1; }
read -r fp32 int8 < <(/usr/bin/python3 -c "import json; r = json.load(open('$work/rows.json'))['rows']; print(r[0]['metrics']['accuracy'], r[1]['metrics']['accuracy'])")
echo "LeNet, $epochs epoch(s) in PyTorch: test accuracy $torch_acc% in PyTorch, $fp32% in qlab (difference $(/usr/bin/python3 -c "print(f'{$fp32 - $torch_acc:+.2f}')") points); static int8 in qlab $int8%"
