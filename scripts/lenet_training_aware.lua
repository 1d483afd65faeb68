-- LeNet on Fashion-MNIST through the training-aware quantizers: QAT at 8
-- bits (converted to int8, timed against static int8), LSQ at W4A4 and
-- W2A2, DoReFa at W4 and W1 with float activations and with 4-bit ones.
-- Every grid of at most 8 bits runs on int8 kernels. Each fine-tunes the
-- cached float baseline for at most `finetune` epochs.
--
--   qlab sweep scripts/lenet_training_aware.lua
--   qlab sweep scripts/lenet_training_aware.lua -- finetune=1
local args = qlab.args{ epochs = 3, finetune = 2, backend = "onednn" }

local base = {
  model = "lenet",
  dataset = { name = "fashion-mnist" },
  train = { epochs = args.epochs },
  backend = { name = args.backend },
  metrics = { names = { "accuracy", "loss", "size", "latency", "runtime" }, batch_size = 64 },
}

local function sweep(name, quantizer, grid, where)
  local b = {}
  for k, v in pairs(base) do b[k] = v end
  b.quantizer = quantizer
  return qlab.sweep{ name = name, base = b, grid = grid, where = where }
end

local rows = {}
local function add(list) for _, r in ipairs(list) do rows[#rows + 1] = r end end
add(sweep("lenet_static", { name = "static" }, {}))
add(sweep("lenet_qat", { name = "qat", epochs = args.finetune }, {}))
add(sweep("lenet_lsq", { name = "lsq", epochs = args.finetune },
          { ["quantizer.weight_bits"] = { 4, 2 }, ["quantizer.activation_bits"] = { 4, 2 } },
          function(p) return p["quantizer.weight_bits"] == p["quantizer.activation_bits"] end))
add(sweep("lenet_dorefa", { name = "dorefa", epochs = args.finetune },
          { ["quantizer.weight_bits"] = { 4, 1 }, ["quantizer.activation_bits"] = { 0, 4 } }))

local lines, static, qat = {}, nil, nil
for _, r in ipairs(rows) do
  if r.status == "ok" then
    local b = r.baseline.metrics
    lines[#lines + 1] = ("| %s %s | %s | %.2f | %.2f | %+.2f | %.1f | %.1f | %.0f | %.0f |")
      :format(r.quantizer, r.point.label, r.mode, b.accuracy, r.metrics.accuracy, r.metrics.accuracy - b.accuracy,
              b.train_seconds, r.metrics.train_seconds or 0, b.test_set_ms, r.metrics.test_set_ms)
    if r.quantizer == "static" then static = r end
    if r.quantizer == "qat" then qat = r end
  end
end
local latency = ""
if static and qat then
  latency = ("\n\nQAT int8 against static int8 at batch 64: %.3f ms against %.3f ms per batch (%.2fx), "
             .. "speed-ups over fp32 measured A/B in each run: %.2fx and %.2fx.")
            :format(qat.metrics.latency_ms, static.metrics.latency_ms,
                    qat.metrics.latency_ms / static.metrics.latency_ms,
                    qat.metrics.speedup_vs_fp32, static.metrics.speedup_vs_fp32)
end

qlab.report{
  name = "lenet_training_aware",
  title = "LeNet: QAT, LSQ and DoReFa against static int8",
  intro = ("LeNet-5 trained %d epochs on Fashion-MNIST; each training-aware quantizer fine-tunes that "
           .. "baseline for %d epoch(s) at a tenth of its learning rate. Every grid of at most 8 bits "
           .. "runs on int8 kernels; `simulated` rows (DoReFa with float activations: int8 kernels "
           .. "need quantized inputs) run fake quantization in float. Size counts the bit-packed "
           .. "weights.\n\n"
           .. "| point | mode | fp32 accuracy %% | accuracy %% | change (points) | train s (fp32) | "
           .. "fine-tune s | test set ms (fp32) | test set ms |\n|---|---|---|---|---|---|---|---|---|\n")
          :format(args.epochs, args.finetune) .. table.concat(lines, "\n") .. latency,
  rows = rows,
  plots = {
    { kind = "bars", name = "accuracy", title = "Test accuracy", x = "point.label", y = "accuracy",
      xlabel = "", ylabel = "%" },
    { kind = "bars", name = "size", title = "Model size", x = "point.label", y = "size_bytes",
      xlabel = "", ylabel = "bytes" },
    { kind = "curves", name = "finetuning", title = "Training and fine-tuning loss", y = "loss" },
  },
}
