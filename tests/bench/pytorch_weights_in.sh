#!/usr/bin/env bash
# Float weights between PyTorch and qlab, both ways, on the same 10,000
# test images. In: LeNet trained in PyTorch's Python frontend
# (lenet_epoch_reference.py, qlab's recipe and preprocessing), saved as
# safetensors and with torch.save, each loaded by qlab through [model]
# weights, then quantized (static int8 on oneDNN). Out: qlab's own
# trained LeNet, written by `qlab export --weights`, loaded by PyTorch
# (load_state_dict, strict).
# Prints each pair of accuracies and their difference.
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
  --save "$work/lenet.safetensors" --save-pt "$work/lenet.pt" | sed -n 's/^test accuracy \(.*\)%$/\1/p')
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
for file in lenet.safetensors lenet.pt; do
  sed "s|^weights = .*|weights = \"$work/$file\"|" "$work/lenet.toml" >"$work/in.toml"
  "$qlab" run --cache "$work/cache" --json "$work/rows.json" "$work/in.toml" >/dev/null 2>"$work/log" ||
    { cat "$work/log" >&2; exit 1; }
  read -r fp32 int8 < <(/usr/bin/python3 -c "import json; r = json.load(open('$work/rows.json'))['rows']; print(r[0]['metrics']['accuracy'], r[1]['metrics']['accuracy'])")
  echo "LeNet, $epochs epoch(s) in PyTorch, as $file: test accuracy $torch_acc% in PyTorch, $fp32% in qlab (difference $(/usr/bin/python3 -c "print(f'{$fp32 - $torch_acc:+.2f}')") points); static int8 in qlab $int8%"
done

# Out: qlab trains (a 1-epoch LeNet, no weights line), exports, PyTorch evaluates.
sed '/^weights = /d; s/^\[dataset\]$/[train]\nepochs = 1\n[dataset]/' "$work/lenet.toml" >"$work/own.toml"
"$qlab" run -q --cache "$work/cache" --json "$work/own.json" "$work/own.toml" >/dev/null 2>"$work/log" &&
  "$qlab" export -q --cache "$work/cache" --weights "$work/qlab.safetensors" "$work/own.toml" 2>"$work/log" ||
  { cat "$work/log" >&2; exit 1; }
qlab_acc=$(/usr/bin/python3 -c "import json; print(json.load(open('$work/own.json'))['rows'][0]['metrics']['accuracy'])")
torch_acc=$(cd tests/bench && /usr/bin/python3 lenet_epoch_reference.py --load "$work/qlab.safetensors" |
  sed -n 's/^test accuracy \(.*\)%$/\1/p')
echo "LeNet trained 1 epoch in qlab, exported: test accuracy $qlab_acc% in qlab, $torch_acc% in PyTorch (difference $(/usr/bin/python3 -c "print(f'{$torch_acc - $qlab_acc:+.2f}')") points)"
