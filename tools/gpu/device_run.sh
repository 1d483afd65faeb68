#!/usr/bin/env bash
# What issue 22 asks of a GPU machine, in one script for its short window:
# qlab built against the machine's PyTorch (LibTorch 2.x with CUDA and
# FBGEMM) from the kit, the unit tests (the cuda ones included), the int8
# tests and benchmarks on the fbgemm and x86 engines, and the GPU
# measurements of scripts/gpu_inference.lua. Logs and results go to $OUT.
#
#   tools/gpu/device_run.sh build     configure and build (all cores)
#   tools/gpu/device_run.sh test      the unit tests
#   tools/gpu/device_run.sh measure   fbgemm/x86 int8 tests and benchmarks, GPU measurements
#   tools/gpu/device_run.sh all       the three in turn
#
# The kit must travel with the working tree: run tools/gpu/fetch_kit.sh
# first and carry tools/gpu/kit. PYTHON names the Python whose torch to use,
# BUILD the build folder (build-torch).
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build-torch}
out=${OUT:-$PWD/$build/device-out}
mkdir -p "$out"
python=${PYTHON:-/opt/torch/.venv/bin/python3}
[[ -x $python ]] || python=python3
jobs=$(nproc)
libdir=$PWD/tools/gpu/prefix/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

machine() {
  {
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"engines", torch.backends.quantized.supported_engines)' 2>&1
    lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | sed 's/\(Flags:\).*\(avx512_vnni\|avx_vnni\).*/\1 ... \2 .../'
  } >"$out/machine.txt"
}

build() {
  tools/gpu/build_with_torch.sh --python "$python" --build "$build" --jobs "$jobs" --no-test \
    >"$out/build.log" 2>&1
  local rc=$?
  tail -n 30 "$out/build.log"
  return $rc
}

unit_tests() {
  (cd "$build" && ctest -L unit -j "$jobs" --output-on-failure --timeout 300 \
    -E 'Report\.(MarkdownMatchesTheGoldenFile|EveryPlotKindDrawsPngAndSvg|VaeSamplesBecomeAnImageGrid)|ScriptTest\.ReportWritesMarkdownPlotsAndData') \
    >"$out/unit.log" 2>&1
  local rc=$?
  grep -E 'tests passed|FAILED|Failed|Skipped' "$out/unit.log" | head -n 60
  return $rc
}

measure() {
  local rc=0
  "$build/tests/qlab_tests" --gtest_filter='*fbgemm*:*x86*:Cuda.*:IntMm.*' >"$out/engines.log" 2>&1 || rc=1
  grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/engines.log" | head -n 40
  if [[ -x $build/tests/bench/qlab_bench ]]; then
    "$build/tests/bench/qlab_bench" --benchmark_filter='^(layer|model)/[^/]+/(fp32|int8_(onednn|fbgemm|x86))/' --benchmark_min_time=0.2 --benchmark_color=false \
      >"$out/bench_int8.txt" 2>&1 || rc=1
    tail -n 40 "$out/bench_int8.txt"
  fi
  "$build/qlab" sweep scripts/gpu_inference.lua --db "$out/results.sqlite" >"$out/gpu_inference.log" 2>&1 || rc=1
  tail -n 20 "$out/gpu_inference.log"
  [[ -d reports/gpu_inference ]] && cp -r reports/gpu_inference "$out/"
  return $rc
}

machine
case ${1:-all} in
  build) build ;;
  test) unit_tests ;;
  measure) measure ;;
  all) build && { unit_tests; measure; } ;;
  *) echo "device_run.sh: build, test, measure or all" >&2; exit 2 ;;
esac
