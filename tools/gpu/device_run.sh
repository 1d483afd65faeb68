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
#   tools/gpu/device_run.sh all       all of it, most wanted first (below)
#
# The window is short and the build's length there unknown, so `all` runs
# the steps by how much each is wanted and gives each only the seconds left
# of BUDGET_S (default: unlimited): the build; the GPU and _int_mm tests;
# the GPU measurements; the whole unit suite; the fbgemm and x86 int8 tests
# and benchmark rows. A step cut short leaves its log, and the rest still
# get their turn. $OUT receives at most 8 files, as the device tool returns.
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
# qlab has no CUDA sources; naming the GPU's architecture spares LibTorch's
# CMake files compiling a probe to find it.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
deadline=$((SECONDS + ${BUDGET_S:-1000000}))

# bounded SECONDS CMD...: CMD under a time limit of SECONDS or what is left
# of the budget, whichever is less; says so when it was cut short.
bounded() {
  local want=$1 left=$((deadline - SECONDS))
  shift
  ((left < want)) && want=$left
  if ((want < 5)); then
    echo "device_run.sh: no time left for: $*"
    return 124
  fi
  timeout --signal=INT --kill-after=10 "$want" "$@"
  local rc=$?
  ((rc == 124 || rc == 137)) && echo "device_run.sh: cut short after ${want} s: $*"
  return $rc
}

machine() {
  {
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"engines", torch.backends.quantized.supported_engines)' 2>&1
    for tool in c++ g++ cmake ninja nvcc gnuplot; do
      printf '%s: %s\n' "$tool" "$(command -v "$tool" >/dev/null && "$tool" --version 2>&1 | head -n 1 || echo none)"
    done
    grep -m1 PRETTY_NAME /etc/os-release
    ldd --version 2>&1 | head -n 1
    lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | sed 's/\(Flags:\).*\(avx512_vnni\|avx_vnni\).*/\1 ... \2 .../'
  } >"$out/machine.txt" 2>&1
  cat "$out/machine.txt"
}

build() {
  local t0=$SECONDS
  bounded "${1:-100000}" tools/gpu/build_with_torch.sh --python "$python" --build "$build" --jobs "$jobs" \
    ${BUILD_TARGET:+--target "$BUILD_TARGET"} --keep-going --no-test >"$out/build.log" 2>&1
  local rc=$?
  echo "build: rc $rc in $((SECONDS - t0)) s"
  grep -E 'error:|Error|CMake Error' "$out/build.log" | head -n 40
  tail -n 5 "$out/build.log"
  gzip -f "$out/build.log"
  return $rc
}

# The tests that need the GPU or LibTorch 2.x, before anything else (by
# ctest's names, which carry the plugin a parameterised test runs on), each
# with its whole output: a skipped test says why.
gpu_tests() {
  (cd "$build" && bounded "${1:-600}" ctest -V -R 'Cuda\.|IntMm\.|TorchWarnings\.|"cuda"') \
    >"$out/gpu_tests.log" 2>&1
  local rc=$?
  grep -E 'Test +#.*(Passed|Failed|Skipped|Timeout)|tests passed' "$out/gpu_tests.log" | head -n 40
  return $rc
}

unit_tests() {
  # Two threads a test, as on CI's two cores, rather than every core in each
  # of the tests run side by side.
  (cd "$build" && OMP_NUM_THREADS=2 bounded "${1:-1800}" ctest -L unit -j "$jobs" --output-on-failure --timeout 300 \
    -E 'Report\.(MarkdownMatchesTheGoldenFile|EveryPlotKindDrawsPngAndSvg|VaeSamplesBecomeAnImageGrid)|ScriptTest\.ReportWritesMarkdownPlotsAndData') \
    >"$out/unit.log" 2>&1
  local rc=$?
  grep -E 'tests passed|\(Failed\)|\(Timeout\)|Total Test time' "$out/unit.log" | head -n 60
  return $rc
}

gpu_measure() {
  local dir=$out/gpu
  mkdir -p "$dir"
  bounded "${1:-1200}" "$build/qlab" sweep scripts/gpu_inference.lua --db "$dir/results.sqlite" \
    --reports "$dir" >"$dir/gpu_inference.log" 2>&1
  local rc=$?
  tail -n 20 "$dir/gpu_inference.log"
  [[ -e $dir/gpu_inference/README.md ]] && head -n 40 "$dir/gpu_inference/README.md"
  tar -czf "$out/gpu.tgz" -C "$out" gpu && rm -rf "$dir"
  return $rc
}

engines() {
  local rc=0
  (cd "$build" && bounded "${1:-600}" ctest -j "$jobs" --output-on-failure -R '"(fbgemm|x86)"|Fbgemm') \
    >"$out/engines.log" 2>&1 || rc=1
  grep -E 'Test +#.*(Passed|Failed|Skipped|Timeout)|tests passed' "$out/engines.log" | head -n 40
  if [[ -x $build/tests/bench/qlab_bench ]]; then
    bounded "${2:-600}" "$build/tests/bench/qlab_bench" \
      --benchmark_filter='^(layer|model)/[^/]+/(fp32|int8_(onednn|fbgemm|x86))/' \
      --benchmark_min_time=0.2 >"$out/bench_int8.txt" 2>&1 || rc=1
    tail -n 40 "$out/bench_int8.txt"
  fi
  return $rc
}

machine
case ${1:-all} in
  build) build ;;
  test) unit_tests ;;
  measure) gpu_measure && engines ;;
  all)
    build || [[ -x $build/tests/qlab_tests ]] || exit 1
    gpu_tests 60
    gpu_measure 150
    unit_tests 300
    engines 60 60
    echo "device_run.sh: done with $((deadline - SECONDS)) s of the budget left"
    ;;
  *) echo "device_run.sh: build, test, measure or all" >&2; exit 2 ;;
esac
