#!/usr/bin/env bash
# Sets up a Debian 12 machine for qlab, builds it, and runs the main job or
# the tests. Safe to re-run: it installs only what is missing.
#
#   ./dev.sh run    install, build qlab and its plugins, run
#                   scripts/quickstart.lua (a sweep that writes
#                   reports/quickstart/README.md)
#   ./dev.sh test   install, build, run every test; then build again with
#                   clang under ASan+UBSan (build-san/), run the unit tests
#                   there, and run each fuzzer for QLAB_FUZZ_SECONDS (30)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  cmake ninja-build g++ ccache pkg-config zlib1g-dev
  libtorch-dev libopenblas0-pthread libdnnl-dev
  libboost-dev libboost-filesystem-dev libtomlplusplus-dev liblua5.4-dev
  libgtest-dev libbenchmark-dev libsqlite3-dev gnuplot-nox
  libcli11-dev libfmt-dev nlohmann-json3-dev libzip-dev libonnx-dev libprotobuf-dev
  dataset-fashion-mnist nodejs npm
)
# Only the tests need these: a one-node Slurm cluster for the job-array
# test, sqlite3 to check a store's integrity, clang and its runtimes for the
# sanitizer build and libFuzzer, and clang-format to check formatting.
TEST_PACKAGES=(slurm-wlm munge sqlite3 clang-14 libclang-rt-14-dev clang-format)
FUZZERS=(idx cifar digits experiment_toml checkpoint torch_save)

install_packages() {
  local missing=()
  for p in "$@"; do
    # npm may come with a non-Debian Node.js; then it is already there.
    if [[ $p == npm || $p == nodejs ]] && command -v npm >/dev/null; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "dev.sh: installing ${missing[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# ONNX Runtime's CPU build from npm, for the ONNX round-trip test and the
# benchmarks against it (ONNXRUNTIME_NODE_INSTALL=skip: no CUDA download).
ORT_VERSION=1.30.0
install_onnxruntime() {
  if [[ ! -e build/ort/node_modules/onnxruntime-node/package.json ]]; then
    mkdir -p build/ort
    (cd build/ort && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --no-save \
      "onnxruntime-node@$ORT_VERSION" >/dev/null)
  fi
}

# build [TARGET]: everything, or one target (qlab_app: the command and its plugins).
build() {
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j "$(nproc)" ${1:+--target "$1"}
}

# Formatting is a file (.clang-format): unformatted C++ fails the tests.
# `clang-format -i FILE...` fixes it.
check_format() {
  local files=()
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.cpp.in')
  else
    mapfile -t files < <(find framework plugins tests -name '*.cpp' -o -name '*.hpp' -o -name '*.cpp.in')
  fi
  if ! clang-format --dry-run --Werror "${files[@]}"; then
    echo "dev.sh: the files above are not formatted as .clang-format says; run clang-format -i on them" >&2
    return 1
  fi
}

# Everything again under AddressSanitizer and UndefinedBehaviorSanitizer,
# with clang's coverage instrumentation for the fuzzers; the unit tests run
# there (the CLI tests cap memory, which ASan's shadow memory cannot share).
sanitized_tests() {
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DQLAB_SANITIZE=ON -DQLAB_FUZZERS=ON
  cmake --build build-san -j "$(nproc)"
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-san -L unit --output-on-failure -j "$(nproc)"
}

# Each fuzzer for a bounded time, from the committed seeds; what it finds
# new goes to build-san/fuzz-corpus/, never into the repository.
fuzz() {
  local seconds=${QLAB_FUZZ_SECONDS:-30} name
  for name in "${FUZZERS[@]}"; do
    mkdir -p "build-san/fuzz-corpus/$name"
    echo "fuzzing $name for ${seconds} s"
    local log="build-san/fuzz-$name.log"
    if ! ASAN_OPTIONS=detect_leaks=0 "build-san/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=20 \
      -rss_limit_mb=3072 -print_final_stats=1 "build-san/fuzz-corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "dev.sh: fuzz_$name failed (a crash or a sanitizer report, above; the input is in $PWD)" >&2
      return 1
    fi
    grep -E '^stat::(number_of_executed_units|new_units_added)' "$log"
  done
}

case "${1:-}" in
  run)
    install_packages "${PACKAGES[@]}"
    datasets/fetch.sh
    build qlab_app
    ./build/qlab sweep scripts/quickstart.lua
    ;;
  test)
    install_packages "${PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    check_format
    datasets/fetch.sh
    build
    install_onnxruntime
    ctest --test-dir build --output-on-failure -j "$(nproc)"
    sanitized_tests
    fuzz
    ;;
  *)
    echo "usage: ./dev.sh run | test" >&2
    exit 2
    ;;
esac
