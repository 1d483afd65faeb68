#!/usr/bin/env bash
# Every user error ends in one clear message on stderr and a non-zero exit.
set -uo pipefail
qlab=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
failures=0

# expect <exit-code> <text on stderr> -- command...
expect() {
  local want_code=$1 want_text=$2
  shift 3
  "$@" >"$work/out" 2>"$work/err"
  local code=$?
  if [[ $code -ne $want_code ]] || ! grep -qF -- "$want_text" "$work/err"; then
    echo "FAIL: $* -> exit $code (want $want_code), stderr:"; cat "$work/err"
    failures=$((failures + 1))
  else
    echo "ok: $* -> $(head -1 "$work/err")"
  fi
}

printf '[model]\nname = "lenet"\n[train]\nepochs = "many"\n' >"$work/type.toml"
printf '[model\nname = "lenet"\n' >"$work/syntax.toml"
printf '[model]\nname = "alexnet"\n' >"$work/plugin.toml"
printf '[model]\nname = "lenet"\n[backend]\nname = "cpu"\nthreadz = 2\n' >"$work/key.toml"

expect 1 "type.toml:4:10: [train] epochs: expected integer, found string \"many\"" -- "$qlab" run "$work/type.toml"
expect 1 "syntax.toml:1:" -- "$qlab" run "$work/syntax.toml"
expect 1 "unknown model plugin 'alexnet' (installed:" -- "$qlab" run "$work/plugin.toml"
expect 1 "unknown key 'threadz'" -- "$qlab" run "$work/key.toml"
printf '[model]\nname = "lenet"\n[quantizer]\nname = "static"\ncalibration_batches = 0\n[dataset]\nlimit_train = 200\nlimit_test = 100\n[train]\nepochs = 1\n' >"$work/nocal.toml"
printf '[model]\nname = "lenet"\n[backend]\nname = "fbgemm"\n' >"$work/fbgemm.toml"
expect 1 "calibration_batches = 0" -- "$qlab" run -q --cache "$work/cache" "$work/nocal.toml"
printf '[model]\nname = "lenet"\n[quantizer]\nname = "lsq"\n[[quantizer.config]]\nop_types = ["linear"]\nquant_types = ["weight"]\nquant_bits = 1\n' >"$work/lsqbits.toml"
expect 1 "lsqbits.toml:5:1: [quantizer] config[1] quant_bits: 1 bits is out of range, expected between 2 and 8" -- "$qlab" run "$work/lsqbits.toml"
printf '[model]\nname = "lenet"\n[quantizer]\nname = "dynamic"\n[[quantizer.config]]\nop_types = ["conv2d"]\nquant_types = ["weight"]\nquant_bits = 8\n' >"$work/dynconv.toml"
expect 1 "cannot quantize conv2d layers: dynamic quantization has int8 kernels for linear layers only" -- "$qlab" run "$work/dynconv.toml"
printf '[model]\nname = "lenet"\n' >"$work/noq.toml"
expect 1 "--save-quantized needs a [quantizer]" -- "$qlab" run --save-quantized "$work/q.pt" "$work/noq.toml"
expect 1 "qlab export: give --weights FILE, --onnx FILE, or both" -- "$qlab" export "$work/noq.toml"
expect 107 "--reference requires --onnx" -- "$qlab" export --weights "$work/w.safetensors" --reference "$work/r.safetensors" "$work/noq.toml"
if "$qlab" plugins 2>/dev/null | grep -q 'fbgemm.*unavailable'; then
  expect 1 "backend 'fbgemm' is unavailable: this LibTorch" -- "$qlab" run "$work/fbgemm.toml"
fi
# The CPU check's override: a bad value is named, in a run and in the plugin list.
printf '[model]\nname = "lenet"\n[backend]\nname = "onednn"\n' >"$work/onednn.toml"
expect 1 "QLAB_INT8_PATH: 'sse2' is not one of vnni, avx2" -- env QLAB_INT8_PATH=sse2 "$qlab" run "$work/onednn.toml"
expect 1 "QLAB_INT8_PATH: 'sse2' is not one of vnni, avx2" -- env QLAB_INT8_PATH=sse2 "$qlab" plugins
expect 105 "does not exist" -- "$qlab" run "$work/missing.toml"
expect 106 "A subcommand is required" -- "$qlab"

# Sweeps, reports and the results store.
printf 'local x = 1\nerror("stop here")\n' >"$work/lua_error.lua"
printf 'qlab.sweep{ base = { model = "lenet", train = { epochs = "two" } } }\n' >"$work/lua_option.lua"
printf 'qlab.sweep{ name = "never", base = { model = "lenet" } }\n' >"$work/lua_report.lua"
printf 'local x = = 1\n' >"$work/lua_syntax.lua"
expect 1 "lua_error.lua:2: stop here" -- "$qlab" sweep --db "$work/r.sqlite" "$work/lua_error.lua"
printf 'local n = 0\nwhile true do n = n + 1 end\n' >"$work/lua_loop.lua"
expect 1 "lua_loop.lua:2: the script ran past --max-seconds 1" -- "$qlab" sweep --max-seconds 1 --db "$work/r.sqlite" "$work/lua_loop.lua"
expect 1 "lua_option.lua:1: [train] epochs: expected integer, found string \"two\"" -- "$qlab" sweep --db "$work/r.sqlite" "$work/lua_option.lua"
expect 1 "lua_syntax.lua:1:" -- "$qlab" sweep --db "$work/r.sqlite" "$work/lua_syntax.lua"
expect 1 "is not in the results store" -- "$qlab" report --from "$work/r.sqlite" "$work/lua_report.lua"
printf 'local a = qlab.args{ epochs = 1 }\n' >"$work/args.lua"
printf 'local x = 1\n' >"$work/noargs.lua"
expect 1 "args.lua:1: script argument 'epochs=x': expected integer" -- "$qlab" sweep --db "$work/r.sqlite" "$work/args.lua" -- epochs=x
expect 1 "args.lua:1: script argument 'epoch=2': unknown key 'epoch' (known: epochs)" -- "$qlab" sweep --db "$work/r.sqlite" "$work/args.lua" -- epoch=2
expect 1 "noargs.lua takes no arguments (it never calls qlab.args), but was given: epochs=2" -- "$qlab" sweep --db "$work/r.sqlite" "$work/noargs.lua" -- epochs=2
head -c 3000 /dev/urandom >"$work/corrupt.sqlite"
expect 1 "corrupt.sqlite" -- "$qlab" results --db "$work/corrupt.sqlite"
expect 1 "no results store here" -- "$qlab" results --db "$work/none.sqlite"

expect 1 "unknown model plugin 'alexnet'" -- "$qlab" print alexnet
"$qlab" print lenet | grep -q '^LeNet($' || { echo "FAIL: print lenet"; failures=$((failures + 1)); }
"$qlab" print mobilenet_v2 | grep -q '2236682 parameters' || { echo "FAIL: print mobilenet_v2"; failures=$((failures + 1)); }
printf '[model]\nname = "lenet"\n[quantizer]\nname = "static"\n[backend]\nname = "onednn"\n[dataset]\nlimit_train = 200\nlimit_test = 100\n[train]\nepochs = 1\n[metrics]\nnames = ["accuracy"]\n' >"$work/printed.toml"
"$qlab" run -q --print-model --cache "$work/cache" "$work/printed.toml" 2>/dev/null >"$work/printed.out"
grep -q '^LeNet($' "$work/printed.out" &&
  grep -q 'features.0: qlab::conv2d_relu over 1 input channel' "$work/printed.out" &&
  grep -q 'features.3: quantized::conv2d_relu' "$work/printed.out" ||
  { echo "FAIL: run --print-model"; cat "$work/printed.out"; failures=$((failures + 1)); }
"$qlab" --version | grep -q '^qlab ' || { echo "FAIL: --version"; failures=$((failures + 1)); }
"$qlab" run --help | grep -q -- '--json' || { echo "FAIL: run --help"; failures=$((failures + 1)); }
[[ $failures -eq 0 ]]
