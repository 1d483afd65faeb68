#!/usr/bin/env bash
# qlab's static int8 LeNet and MNIST CNN (oneDNN's int8 kernels) against
# ONNX Runtime running the very models `qlab export --onnx` writes (QDQ,
# fused by ONNX Runtime into its own int8 kernels), batch 64, the same
# threads, in one run. qlab's latency is the int8 row's `latency_ms` from
# `qlab run` (median, after warm-up); ONNX Runtime's is the median of 200
# batches (onnxruntime_latency.js). Prints both and their ratio, and the
# same for the float models, exported alike.
#
#   ./dev.sh test        # once: builds qlab and installs onnxruntime-node into build/ort
#   bash tests/bench/int8_vs_onnxruntime.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=$(nproc)
qlab=${QLAB:-build/qlab}
ort=build/ort
[[ -x $qlab ]] || { echo "int8_vs_onnxruntime.sh: $qlab not found; run ./dev.sh test first" >&2; exit 1; }
[[ -e $ort/node_modules/onnxruntime-node/package.json ]] ||
  { echo "int8_vs_onnxruntime.sh: onnxruntime-node not in $ort; run ./dev.sh test first" >&2; exit 1; }
work=$(mktemp -d /tmp/qlab-int8-ort.XXXXXX)
trap 'rm -rf "$work"' EXIT
isa=$(grep -qw avx512_vnni /proc/cpuinfo && echo "AVX-512 VNNI" || echo "AVX2, no VNNI")
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $isa, $(nproc) cores; $threads threads each;" \
  "ONNX Runtime $(NODE_PATH="$ort/node_modules" node -p "require('onnxruntime-node/package.json').version")"
declare -A shape=([lenet]=64x1x32x32 [mnist_cnn]=64x1x28x28)
for m in lenet mnist_cnn; do
  printf '[model]\nname = "%s"\n[dataset]\nlimit_train = 2000\nlimit_test = 640\n[train]\nepochs = 1\n[quantizer]\nname = "static"\n[backend]\nname = "onednn"\nthreads = %d\n[metrics]\nnames = ["latency"]\nbatch_size = 64\n' \
    "$m" "$threads" >"$work/$m.toml"
  "$qlab" run -q --cache "$work/cache" --json "$work/$m.json" "$work/$m.toml" >/dev/null 2>"$work/log" &&
    "$qlab" export -q --cache "$work/cache" --onnx "$work/$m.onnx" "$work/$m.toml" 2>"$work/log" ||
    { cat "$work/log" >&2; exit 1; }
  # The float model too, so that ONNX Runtime's int8 is seen against its own fp32.
  sed '/^\[quantizer\]$/,/^name = "static"$/d' "$work/$m.toml" >"$work/$m-fp32.toml"
  "$qlab" export -q --cache "$work/cache" --onnx "$work/$m-fp32.onnx" "$work/$m-fp32.toml" 2>"$work/log" ||
    { cat "$work/log" >&2; exit 1; }
  qlab_ms=$(node -p "require('$work/$m.json').rows[1].metrics.latency_ms.toFixed(3)")
  qlab_fp32_ms=$(node -p "require('$work/$m.json').rows[0].metrics.latency_ms.toFixed(3)")
  ort_ms=$(NODE_PATH="$ort/node_modules" node tests/bench/onnxruntime_latency.js \
    "$work/$m.onnx" "${shape[$m]}" "$threads" | cut -d' ' -f1)
  ort_fp32_ms=$(NODE_PATH="$ort/node_modules" node tests/bench/onnxruntime_latency.js \
    "$work/$m-fp32.onnx" "${shape[$m]}" "$threads" | cut -d' ' -f1)
  echo "$m int8: qlab $qlab_ms ms, ONNX Runtime $ort_ms ms (QDQ export), qlab / ONNX Runtime $(node -p "($qlab_ms / $ort_ms).toFixed(2)")x"
  echo "$m fp32: qlab $qlab_fp32_ms ms, ONNX Runtime $ort_fp32_ms ms (float export), qlab / ONNX Runtime $(node -p "($qlab_fp32_ms / $ort_fp32_ms).toFixed(2)")x"
done
