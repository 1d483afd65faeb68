#!/usr/bin/env bash
# Sets up a Debian 12 machine for qlab, builds it, and runs the main job or
# the tests. Safe to re-run: it installs only what is missing.
#
#   ./dev.sh run    install, build, run scripts/quickstart.lua (a sweep that
#                   writes reports/quickstart/README.md)
#   ./dev.sh test   install, build, run every test
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  cmake ninja-build g++ ccache pkg-config zlib1g-dev
  libtorch-dev libopenblas0-pthread
  libboost-dev libboost-filesystem-dev libtomlplusplus-dev liblua5.4-dev
  libgtest-dev libbenchmark-dev libsqlite3-dev gnuplot-nox
  libcli11-dev libfmt-dev nlohmann-json3-dev
  dataset-fashion-mnist nodejs npm
)
# Only the tests need these: a one-node Slurm cluster for the job-array
# test, and sqlite3 to check a store's integrity.
TEST_PACKAGES=(slurm-wlm munge sqlite3)

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

build() {
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j "$(nproc)"
}

case "${1:-}" in
  run)
    install_packages "${PACKAGES[@]}"
    datasets/fetch.sh
    build
    ./build/qlab sweep scripts/quickstart.lua
    ;;
  test)
    install_packages "${PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    datasets/fetch.sh
    build
    ctest --test-dir build --output-on-failure -j "$(nproc)"
    ;;
  *)
    echo "usage: ./dev.sh run | test" >&2
    exit 2
    ;;
esac
