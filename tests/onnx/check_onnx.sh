#!/usr/bin/env bash
# The ONNX round trip: `qlab export --onnx` on LeNet, MNIST CNN and
# MobileNetV2 (float, static int8, and 4-bit grids), each file run by ONNX
# Runtime's CPU provider (npm onnxruntime-node, which ./dev.sh test installs
# into build/ort) on the test images, against qlab's own outputs on its
# oneDNN kernels. The files are checked as written (optimizations off, so
# each QuantizeLinear/DequantizeLinear runs as such):
#   float: every output within 1e-4 of qlab's, relative to max(1, |output|);
#   quantized LeNet and MNIST CNN (8 and 4 bits): at most 1% of the outputs
#     one step of the output grid apart, none more, and the same test
#     accuracy to 0.1 points;
#   MobileNetV2 (53 quantized layers): at most 25% a step or more apart,
#     none more than 4, and the accuracy within 0.2 points. ONNX Runtime computes the file in float32, and a
#     requantization that lands within float32's error of a tie k + 1/2
#     rounds either way; the 53 layers compound such flips. The file's own
#     float32 and float64 evaluations differ on 4% of the logits and by 0.1
#     points of accuracy (docs/testing.md), so a bound of 0.1 between two
#     runtimes would fail on CPUs whose float kernels sum in another order.
# The same files with ONNX Runtime's int8 fusions on ("all") are printed,
# not judged: its kernels differ by CPU.
#
#   bash tests/onnx/check_onnx.sh QLAB ORT_DIR WORK
set -uo pipefail
qlab=$1
ort=$2
work=$3
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -e $ort/node_modules/onnxruntime-node/package.json ]]; then
  echo "SKIP: onnxruntime-node is not in $ort (./dev.sh test installs it)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
failures=0

# case NAME MODEL_LINES QUANTIZER_LINES [MAX_STEPS MAX_ACCURACY_DIFFERENCE MAX_SHARE_APART]
case_() {
  local name=$1 max_steps=${4:-1} max_accuracy=${5:-0.1} max_share=${6:-0.01}
  printf '[model]\n%b\n[dataset]\nlimit_train = 4000\nlimit_test = 1000\n[train]\nepochs = 2\n%b[backend]\nname = "onednn"\n' \
    "$2" "$3" >"$work/$name.toml"
  if ! "$qlab" export -q --cache "$work/cache" --onnx "$work/$name.onnx" \
    --reference "$work/$name.ref.safetensors" "$work/$name.toml" 2>"$work/$name.log"; then
    echo "FAIL $name: qlab export failed:"
    sed 's/^/    /' "$work/$name.log" | tail -5
    failures=$((failures + 1))
    return
  fi
  local level stats verdict
  for level in disabled all; do
    if ! stats=$(NODE_PATH="$ort/node_modules" node "$here/compare_onnxruntime.js" \
      "$work/$name.onnx" "$work/$name.ref.safetensors" "$level" 2>&1); then
      echo "FAIL $name ($level): $stats"
      failures=$((failures + 1))
      continue
    fi
    [[ $level == all ]] && { echo "     $name ($level): $stats"; continue; }
    verdict=$(node -e '
      const [s, steps, accuracy, share] = [JSON.parse(process.argv[1]), ...process.argv.slice(2).map(Number)];
      const bad = s.output_step > 0
        ? s.max_steps > steps || s.share_off_by_a_step > share ||
          Math.abs(s.accuracy_qlab - s.accuracy_onnxruntime) > accuracy + 1e-9
        : s.max_relative > 1e-4;
      console.log(bad ? "FAIL" : "ok  ");' "$stats" "$max_steps" "$max_accuracy" "$max_share")
    echo "$verdict $name ($level): $stats"
    [[ $verdict == FAIL ]] && failures=$((failures + 1))
  done
}

static='[quantizer]\nname = "static"\n'
lowbit='[quantizer]\nname = "static"\nweight_bits = 4\nactivation_bits = 4\n'
case_ lenet_float 'name = "lenet"' ''
case_ lenet_int8 'name = "lenet"' "$static"
case_ lenet_w4a4 'name = "lenet"' "$lowbit"
case_ mnist_cnn_float 'name = "mnist_cnn"' ''
case_ mnist_cnn_int8 'name = "mnist_cnn"' "$static"
case_ mnist_cnn_w4a4 'name = "mnist_cnn"' "$lowbit"
case_ mobilenet_v2_float 'name = "mobilenet_v2"\nwidth_mult = 0.25' ''
case_ mobilenet_v2_int8 'name = "mobilenet_v2"\nwidth_mult = 0.25' "$static" 4 0.2 0.25
case_ mobilenet_v2_w4a8 'name = "mobilenet_v2"\nwidth_mult = 0.25' '[quantizer]\nname = "static"\nweight_bits = 4\n' 4 0.2 0.25

[[ $failures -eq 0 ]] || { echo "$failures failure(s)"; exit 1; }
echo "every exported model agrees with qlab"
