#!/usr/bin/env bash
# qlab's fp32 LeNet and MNIST CNN against ONNX Runtime's CPU provider and
# PyTorch's Python frontend, batch 64, the same threads, in one run on this
# machine. Prints each latency and qlab's ratio to ONNX Runtime, for qlab's
# fp32 executable (oneDNN primitives) and for LibTorch's kernels op by op.
#
#   ./dev.sh test        # once: builds qlab_bench among the tests
#   bash tests/bench/fp32_vs_onnxruntime.sh
#
# It installs what the peers need if missing: python3-torch (apt-get; root
# or sudo), and onnxruntime-node from npm into build/ort/ (CPU
# binaries only: ONNXRUNTIME_NODE_INSTALL=skip fetches no CUDA build).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=$(nproc)  # qlab_bench runs on every core
bench=${QLAB_BENCH:-build/tests/bench/qlab_bench}
[[ -x $bench ]] || { echo "fp32_vs_onnxruntime.sh: $bench not found; run ./dev.sh test first" >&2; exit 1; }
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  sudo=(); [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch
fi
ort=build/ort
if [[ ! -d $ort/node_modules/onnxruntime-node ]]; then
  mkdir -p "$ort"
  (cd "$ort" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --no-save onnxruntime-node@1.30.0 >/dev/null)
fi

models=$(mktemp -d /tmp/qlab-ort.XXXXXX)
trap 'rm -rf "$models"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $threads threads each"
(cd tests/bench && /usr/bin/python3 fp32_reference_models.py --out "$models" --threads "$threads" 2>/dev/null)
declare -A shape=([lenet]=64x1x32x32 [mnist_cnn]=64x1x28x28) ort_ms qlab_ms
for m in lenet mnist_cnn; do
  ort_ms[$m]=$(NODE_PATH="$ort/node_modules" node tests/bench/onnxruntime_latency.js \
    "$models/$m.onnx" "${shape[$m]}" "$threads" | cut -d' ' -f1)
  echo "$m: ONNX Runtime $(NODE_PATH="$ort/node_modules" node -p "require('onnxruntime-node/package.json').version") ${ort_ms[$m]} ms"
done
"$bench" --benchmark_filter='^model/(lenet|mnist_cnn)/fp32' \
  --benchmark_min_time=0.5 --benchmark_format=csv 2>/dev/null >"$models/qlab.csv"
for m in lenet mnist_cnn; do
  ms=$(grep "model/$m/fp32/" "$models/qlab.csv" | cut -d, -f3)
  lt=$(grep "model/$m/fp32_libtorch/" "$models/qlab.csv" | cut -d, -f3)
  echo "$m: qlab fp32 on LibTorch's kernels $lt ms, $(python3 -c "print(f'{$lt / ${ort_ms[$m]}:.2f}')")x ONNX Runtime's latency"
  echo "$m: qlab fp32 $ms ms, $(python3 -c "print(f'{$ms / ${ort_ms[$m]}:.2f}')")x ONNX Runtime's latency"
done
