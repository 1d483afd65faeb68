#!/usr/bin/env bash
# The malformed-input corpus: every case must end with exit status 1 (never
# a signal, never qlab's "internal error" 2), a message naming the file and
# the key, line or byte offset, and no core file, with the address space
# capped at 2 GiB so that a case which allocated what a corrupt header
# promises would fail instead of passing.
#
# TOML and Lua cases are files in toml/ and lua/, torch.save files in
# weights/; datasets, checkpoints,
# plugins, stores, plans and shards are made here from valid files.
set -uo pipefail
qlab=$1
work=$2
plugins=$3  # the build's tests/plugins folder
corpus=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
W=$work
cases=0 failures=0

# check NAME EXIT_CODE EXPECTED_TEXT -- command...
check() {
  local name=$1 want=$2 text=$3
  shift 4
  cases=$((cases + 1))
  mkdir -p "cwd/$name"
  (cd "cwd/$name" && ulimit -v 2097152 && { ulimit -c unlimited 2>/dev/null || true; } && "$@") \
    >"out/$name" 2>"err/$name"
  local code=$?
  local cores
  cores=$(find "cwd/$name" -name 'core*' | wc -l)
  if [[ $code -ne $want ]] || ! grep -qF -- "$text" "err/$name" || [[ $cores -ne 0 ]]; then
    echo "FAIL $name: exit $code (want $want), $cores core files, stderr:"
    sed 's/^/    /' "err/$name" | tail -5
    echo "    wanted: $text"
    failures=$((failures + 1))
  else
    echo "ok   $name: $(grep -F -- "$text" "err/$name" | head -1 | cut -c1-160)"
  fi
}
mkdir -p out err cwd

# --- TOML experiments: syntax, unknown keys, wrong types, out-of-range values, missing keys.
toml() { check "toml_$1" 1 "$corpus/toml/$1.toml$2" -- "$qlab" run -q --cache "$W/cache" "$corpus/toml/$1.toml"; }
toml header_unclosed ":1:7: TOML syntax error"
toml bad_number ":4:11: TOML syntax error"
toml duplicate_key ":3:8: TOML syntax error: Error while parsing key-value pair: cannot redefine existing string 'name'"
toml binary_garbage ":1:1: TOML syntax error"
toml invalid_utf8 ":2:10: TOML syntax error: Encountered invalid utf-8 sequence"
toml infinite_lr ":4:11: TOML syntax error"
toml unknown_section ":3:1: unknown section [modle]"
toml unknown_key ":4:7: [train] unknown key 'lrr'"
toml nested_table ":3:1: [train] extra: expected a value, found a table"
toml config_list_field ":5:1: [quantizer] config[1]: unknown key 'quant_bitz'"
toml wrong_type_string ":4:10: [train] epochs: expected integer, found string \"many\""
toml wrong_type_bool ":4:6: [train] lr: expected number, found boolean true"
toml wrong_type_quantizer ":5:15: [quantizer] per_channel: expected boolean, found string \"yes\""
toml array_for_integer ":4:14: [train] batch_size: expected integer, found list [64]"
toml out_of_range_bits ":5:15: [quantizer] weight_bits: integer 17 is out of range, expected between 1 and 16"
toml out_of_range_lr ":4:6: [train] lr: number -0.1 is out of range"
toml negative_threads ":5:11: [backend] threads: integer -1 is out of range"
toml negative_limit ":4:15: [dataset] limit_train: integer -5 is out of range"
toml missing_model ": [model] name is required"
toml empty ": [model] name is required"
toml unknown_model ":2:8: [model] name: unknown model plugin 'alexnet'"
toml unknown_dataset ":4:8: [dataset] name: \"imagenet\" is not one of"
toml unknown_optimizer ":4:13: [train] optimizer: \"rmsprop\" is not one of"
toml unknown_schedule ":4:12: [train] schedule: \"linear\" is not one of"
toml unknown_observer ":5:12: [quantizer] observer: \"kl\" is not one of"
toml unknown_rounding ":5:12: [quantizer] rounding: \"stochastic\" is not one of"
toml unknown_fp32_kernels ":5:16: [backend] fp32_kernels: \"fast\" is not one of"
toml unknown_bit_isa ":5:7: [backend] isa: \"avx1024\" is not one of"
toml unknown_metric ":4:9: [metrics] names: unknown metric plugin 'flops'"
toml weights_missing ":3:11: [model] weights: no such file no_such.safetensors"
toml mean_without_std ":4:8: [dataset] mean has 1 values and std 0; give both, one per channel"
toml std_zero ":5:7: [dataset] std: 0 is not a positive number"
toml mean_mixed_list ":4:17: [dataset] mean: a list of numbers with a string in it"
toml mean_channels ":6:8: [dataset] mean and std have 3 values; fashion-mnist images have 1 channel(s) and the model takes 1"

# --- Lua sweep scripts: syntax and runtime errors at script:line, bad qlab.* calls, bounds.
lua() { check "lua_$1" 1 "$corpus/lua/$1.lua$2" -- "$qlab" sweep -q --db "$W/lua.sqlite" "${@:3}" "$corpus/lua/$1.lua"; }
lua syntax ":1: unexpected symbol near '='"
lua index_nil ":2: attempt to index a nil value (local 't')"
lua error_object ":1: error object is a table value, not a message"
lua stack_overflow ":1: stack overflow"
lua huge_string ":1: resulting string too large"
lua out_of_memory ": the script ran out of memory"
lua endless_loop ":3: the script ran past --max-seconds 1" --max-seconds 1
lua sweep_not_table ":1: qlab.sweep expects a table, found string"
lua sweep_unknown_key ":1: qlab.sweep: unknown key 'gird'"
lua sweep_no_base ":1: qlab.sweep: 'base' (an experiment table) is required"
lua isolate_not_boolean ":1: qlab.sweep isolate: expected a boolean, found string"
lua grid_key_no_section ":1: grid key 'weight_bits' must name a section and an option"
lua grid_unknown_section ":1: grid key 'quantiser.weight_bits': unknown section 'quantiser'"
lua grid_empty_axis ":1: grid key 'quantizer.weight_bits' has no values"
lua option_wrong_type ":1: [train] epochs: expected integer, found string \"two\""
lua report_plot_kind ":1: [plot] kind: \"pie\" is not one of"
check lua_args_typed 1 "args_typed.lua:1: script argument 'epochs=x': expected integer" -- \
  "$qlab" sweep -q --db "$W/lua.sqlite" "$corpus/lua/args_typed.lua" -- epochs=x

# --- Datasets: an IDX folder of Fashion-MNIST's four files, each case breaking one.
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
images() { { printf '\x00\x00\x08\x03'; be32 "$1"; be32 28; be32 28; head -c $(($1 * 784)) /dev/zero; }; }
labels() { { printf '\x00\x00\x08\x01'; be32 "$1"; for ((i = 0; i < $1; i++)); do printf "\\x0$((i % 10))"; done; }; }
dataset() {  # dataset NAME: a valid folder, to break
  mkdir -p "data/$1"
  images 20 >"data/$1/train-images-idx3-ubyte"
  labels 20 >"data/$1/train-labels-idx1-ubyte"
  images 10 >"data/$1/t10k-images-idx3-ubyte"
  labels 10 >"data/$1/t10k-labels-idx1-ubyte"
  printf '[model]\nname = "logreg"\n[dataset]\npath = "%s"\n[train]\nepochs = 1\n' "$W/data/$1" >"data/$1.toml"
}
data() { check "data_$1" 1 "$2" -- "$qlab" run -q --cache "$W/cache" "$W/data/$1.toml"; }
dataset bad_magic && printf 'P' | dd of=data/bad_magic/train-images-idx3-ubyte conv=notrunc 2>/dev/null
data bad_magic "data/bad_magic/train-images-idx3-ubyte: not an IDX file: bytes 0-1 must be 0x00 0x00 (the magic number), found 0x50 0x00"
dataset bad_type && printf '\x0d' | dd of=data/bad_type/t10k-images-idx3-ubyte bs=1 seek=2 conv=notrunc 2>/dev/null
data bad_type "data/bad_type/t10k-images-idx3-ubyte: byte 2: IDX data type 0x0d is not supported"
dataset bad_ndims && printf '\x09' | dd of=data/bad_ndims/train-labels-idx1-ubyte bs=1 seek=3 conv=notrunc 2>/dev/null
data bad_ndims "data/bad_ndims/train-labels-idx1-ubyte: byte 3: IDX file has 9 dimensions"
dataset short_header && head -c 10 data/short_header/train-images-idx3-ubyte >h && mv h data/short_header/train-images-idx3-ubyte
data short_header "data/short_header/train-images-idx3-ubyte: truncated IDX header: 3 dimensions need bytes 0-15, the file has 10 bytes"
dataset truncated && head -c 5000 data/truncated/train-images-idx3-ubyte >h && mv h data/truncated/train-images-idx3-ubyte
data truncated "data/truncated/train-images-idx3-ubyte: the IDX header (bytes 4-15) promises 15680 bytes of data from byte 16, the file holds 4984"
dataset absurd && { printf '\x00\x00\x08\x03'; be32 4294967295; be32 4294967295; be32 4294967295; head -c 100 /dev/zero; } >data/absurd/train-images-idx3-ubyte
data absurd "data/absurd/train-images-idx3-ubyte: the IDX header (bytes 4-15) gives dimensions 4294967295 x 4294967295 x 4294967295: more than"
dataset too_long && { images 20; head -c 784 /dev/zero; } >data/too_long/train-images-idx3-ubyte
data too_long "data/too_long/train-images-idx3-ubyte: the IDX header (bytes 4-15) promises 15680 bytes of data from byte 16, the file holds more"
dataset counts && labels 19 >data/counts/train-labels-idx1-ubyte
data counts "data/counts/train-images-idx3-ubyte holds 20 images but $W/data/counts/train-labels-idx1-ubyte holds 19 labels"
dataset label_range && printf '\x0b' | dd of=data/label_range/t10k-labels-idx1-ubyte bs=1 seek=12 conv=notrunc 2>/dev/null
data label_range "data/label_range/t10k-labels-idx1-ubyte: byte 12 (label 4): 11 is out of range for 10 classes"
dataset gzip_bomb && rm data/gzip_bomb/train-labels-idx1-ubyte &&
  { labels 20; head -c 300000000 /dev/zero; } | gzip -1 >data/gzip_bomb/train-labels-idx1-ubyte.gz &&
  mv data/gzip_bomb/train-labels-idx1-ubyte.gz data/gzip_bomb/train-labels-idx1-ubyte
data gzip_bomb "data/gzip_bomb/train-labels-idx1-ubyte: the IDX header (bytes 4-7) promises 20 bytes of data from byte 8, the file holds more"
dataset gzip_cut && gzip -c data/gzip_cut/train-images-idx3-ubyte | head -c 40 >data/gzip_cut/train-images-idx3-ubyte.gz &&
  mv data/gzip_cut/train-images-idx3-ubyte.gz data/gzip_cut/train-images-idx3-ubyte
data gzip_cut "data/gzip_cut/train-images-idx3-ubyte: corrupt or truncated file at byte"
mkdir -p data/missing_files
printf '[model]\nname = "logreg"\n[dataset]\npath = "%s"\n' "$W/data/missing_files" >data/missing_files.toml
data missing_files "dataset 'fashion-mnist': files not found; looked in: $W/data/missing_files"
cifar() {  # cifar NAME: a CIFAR-10 folder of two 3073-byte records a file
  mkdir -p "data/$1"
  for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    { printf '\x03'; head -c 3072 /dev/zero; printf '\x07'; head -c 3072 /dev/zero; } >"data/$1/$f.bin"
  done
  printf '[model]\nname = "logreg"\n[dataset]\nname = "cifar10"\npath = "%s"\n' "$W/data/$1" >"data/$1.toml"
}
cifar cifar_size && head -c 5000 data/cifar_size/data_batch_2.bin >h && mv h data/cifar_size/data_batch_2.bin
data cifar_size "data/cifar_size/data_batch_2.bin: 5000 bytes is not a whole number of CIFAR-10 records of 3073 bytes"
cifar cifar_label && printf '\x0c' | dd of=data/cifar_label/test_batch.bin bs=1 seek=3073 conv=notrunc 2>/dev/null
data cifar_label "data/cifar_label/test_batch.bin: byte 3073 (record 1): label 12, but CIFAR-10 has 10 classes"
digits() {  # digits NAME JSON: the npm digits layout, with 0.json as given
  mkdir -p "data/$1"
  printf '%s' "$2" >"data/$1/0.json"
  printf '[model]\nname = "logreg"\n[dataset]\nname = "mnist"\npath = "%s"\n' "$W/data/$1" >"data/$1.toml"
}
digits digits_json '{"data": [0.5, '
data digits_json "data/digits_json/0.json: not valid JSON"
digits digits_range "{\"data\": [$(printf '0.5,%.0s' $(seq 1 783))7]}"
data digits_range "data/digits_range/0.json: \"data\"[783] = 7 is outside 0..1"

# --- Checkpoints: the cached float baseline, truncated, replaced, or another model's.
printf '[model]\nname = "logreg"\n[dataset]\nlimit_train = 200\nlimit_test = 50\n[train]\nepochs = 1\n' >ckpt.toml
printf '[model]\nname = "lenet"\n[dataset]\nlimit_train = 200\nlimit_test = 50\n[train]\nepochs = 1\n' >other.toml
"$qlab" run -q --cache "$W/ckpt_cache" ckpt.toml >/dev/null 2>&1 && "$qlab" run -q --cache "$W/other_cache" other.toml >/dev/null 2>&1 ||
  { echo "FAIL: cannot train the checkpoints to break"; exit 1; }
good=$(ls ckpt_cache/*.safetensors)
other=$(ls other_cache/*.safetensors)
checkpoint() {  # checkpoint NAME EXPECTED: after the cached file was broken
  check "checkpoint_$1" 1 "$2" -- "$qlab" run -q --cache "$W/ckpt_cache" "$W/ckpt.toml"
  cp "$W/good.pt" "$good"
}
cp "$good" good.pt
head -c 600 good.pt >"$good"
checkpoint truncated "$good: "
head -c 4000 /dev/urandom >"$good"
checkpoint random "$good: "
: >"$good"
checkpoint empty "$good: "
cp "$other" "$good"
checkpoint other_model "$good: checkpoint was written for another architecture"
# The same files as [model] weights: truncated, or another model's.
weights() {  # weights NAME FILE EXPECTED
  printf '[model]\nname = "logreg"\nweights = "%s"\n[dataset]\nlimit_train = 200\nlimit_test = 50\n' "$2" >"weights_$1.toml"
  check "weights_$1" 1 "$3" -- "$qlab" run -q --cache "$W/cache" "$W/weights_$1.toml"
}
head -c 600 good.pt >cut.safetensors
weights truncated "$W/cut.safetensors" "$W/cut.safetensors: "
weights other_model "$W/$other" "$W/$other: the weights do not fit graph"
# torch.save files (weights/, written by tests/fuzz/make_torch_save_seeds.py):
# code, a zip bomb, a storage missing, the legacy format, a truncated zip.
weights pt_whole_module "$corpus/weights/whole_module.pt" "whole_module.pt: whole_module/data.pkl: byte"
weights pt_zip_bomb "$corpus/weights/zip_bomb.pt" "zip_bomb.pt: record archive/data.pkl claims 40000006 bytes"
weights pt_missing_storage "$corpus/weights/missing_storage.pt" "missing_storage.pt: no record fuzz_graph/data/0"
weights pt_legacy "$corpus/weights/legacy.pt" "legacy.pt: torch.save's legacy format"
head -c 3000 "$corpus/../fuzz/corpus/torch_save/fuzz_graph.pt" >cut.pt
weights pt_truncated "$W/cut.pt" "$W/cut.pt: not a readable zip"

# --- Plugins: each broken test plugin, named by an experiment, through QLAB_PLUGIN_PATH.
printf '[model]\nname = "logreg"\n[dataset]\nlimit_train = 200\nlimit_test = 50\n[metrics]\nnames = ["%s"]\n' accuracy >plugin.toml
plugin() {  # plugin FOLDER METRIC EXPECTED
  sed "s/\"accuracy\"/\"$2\"/" plugin.toml >"plugin_$1.toml"
  check "plugin_$1" 1 "$3" -- env QLAB_PLUGIN_PATH="$plugins/$1" "$qlab" run -q --cache "$W/cache" "$W/plugin_$1.toml"
}
plugin bad_api bad_api "plugins/bad_api/libqlab_metric_test_bad_api.so: built for plugin API version 999"
plugin bad_torch bad_torch "plugins/bad_torch/libqlab_metric_test_bad_torch.so: built against LibTorch 0.4.1"
plugin throwing throwing "plugins/throwing/libqlab_metric_test_throwing.so: the plugin factory failed: cannot open /dev/imaginary"
plugin duplicate duplicate "plugins/duplicate/libqlab_metric_test_duplicate.so: metric plugin 'accuracy' is already loaded"
plugin wrong_kind not_a_model "plugins/wrong_kind/libqlab_model_test_wrong_kind.so: declares kind 'model' but its object is not a qlab::model"
plugin not_plugin not_plugin "plugins/not_plugin/libtest_not_plugin.so: not a qlab plugin"
mkdir -p writable && cp "$plugins/throwing/"*.so writable/ && chmod o+w writable/*.so
sed 's/"accuracy"/"throwing"/' plugin.toml >plugin_writable.toml
check plugin_world_writable 1 "writable/libqlab_metric_test_throwing.so: " -- \
  env QLAB_PLUGIN_PATH="$W/writable" "$qlab" run -q --cache "$W/cache" "$W/plugin_writable.toml"

# --- Results stores, Slurm plans and shards, and output that cannot be written.
head -c 3000 /dev/urandom >corrupt.sqlite
check store_corrupt 1 "corrupt.sqlite: " -- "$qlab" results --db "$W/corrupt.sqlite"
printf '{"format": "qlab-plan-1", "script": "s.lua"' >plan_cut.json
check plan_truncated 1 "plan_cut.json: not a qlab plan" -- "$qlab" sweep --plan "$W/plan_cut.json" --point 0
printf '{"format": "qlab-plan-1", "script": "s.lua", "qlab": "q", "cache_dir": "c", "shards_dir": "s", "baselines": [], "points": []}' >plan_empty.json
check plan_no_point 1 "plan_empty.json: no point 3 (the plan has 0 points, from 0)" -- "$qlab" sweep --plan "$W/plan_empty.json" --point 3
mkdir -p shards && printf '{"format": "qlab-shard-1", "point": {"hash": "x"}}' >shards/0123abcd.json
check shard_corrupt 1 "shards/0123abcd.json: not a qlab point record" -- "$qlab" results merge --db "$W/merged.sqlite" --shards "$W/shards"
: >afile
check output_not_a_folder 1 "afile/rows.csv: cannot write the file" -- "$qlab" results --db "$W/merged.sqlite" --format csv -o "$W/afile/rows.csv"
# A file-size limit stands in for a full disk: the old file must survive.
"$qlab" run -q --cache "$W/ckpt_cache" ckpt.toml --json "$W/rows.json" >/dev/null 2>&1
[[ $(stat -c %s rows.json) -gt 1024 ]] || { echo "FAIL: rows.json is too small to hit a 1 KiB file-size limit"; exit 1; }
cp rows.json rows.before
check output_disk_full 1 "rows.json: cannot write the file: File too large" -- \
  bash -c "trap '' XFSZ; ulimit -f 1; exec \"$qlab\" run -q --cache \"$W/ckpt_cache\" \"$W/ckpt.toml\" --json \"$W/rows.json\""
cmp -s rows.json rows.before || { echo "FAIL output_disk_full: the previous rows.json was changed"; failures=$((failures + 1)); }

echo "$cases cases, $failures failed"
[[ $cases -ge 40 && $failures -eq 0 ]]
