#!/usr/bin/env bash
# Installs qlab into a scratch prefix, builds tests/out_of_tree/metric against
# it with find_package(qlab), and checks that the installed qlab loads it from
# QLAB_PLUGIN_PATH, runs it in an experiment, and passes the installed
# conformance suites.
set -euo pipefail
build_dir=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"

cmake --install "$build_dir" --prefix "$work/prefix" >"$work/install.log"
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$here/metric" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" >"$work/configure.log"
cmake --build "$work/build" >"$work/build.log"

export QLAB_PLUGIN_PATH="$work/build/plugins"
listing=$("$work/prefix/bin/qlab" plugins)
echo "$listing"
grep -Eq '^metric +samples ' <<<"$listing" || { echo "FAIL: the out-of-tree plugin is not listed"; exit 1; }
grep -Eq '^model +lenet ' <<<"$listing" || { echo "FAIL: the installed in-tree plugins are not found"; exit 1; }

# The installed conformance suites, on the out-of-tree plugin alone: one line.
"$work/prefix/bin/qlab-conformance" --gtest_brief=1 >"$work/conformance.log" ||
  { cat "$work/conformance.log"; echo "FAIL: the plugin fails qlab's conformance suites"; exit 1; }
grep -q 'GetParam() = "samples"' <("$work/prefix/bin/qlab-conformance" --gtest_list_tests) ||
  { echo "FAIL: qlab-conformance did not test the plugin"; exit 1; }

cat >"$work/exp.toml" <<'TOML'
[model]
name = "lenet"
[dataset]
name = "fashion-mnist"
limit_train = 1000
limit_test = 300
[train]
epochs = 1
[metrics]
names = ["accuracy", "samples"]
TOML
"$work/prefix/bin/qlab" run "$work/exp.toml" --quiet --cache "$work/cache" --json "$work/rows.json"
grep -q '"test_samples": 300' "$work/rows.json" || { echo "FAIL: no test_samples in rows.json"; exit 1; }
echo "out-of-tree plugin: built, listed and measured"
