-- Seed 004: LeNet, fp32 against dynamic and static int8. Answers: the
-- printed models, size, loss, accuracy and time of each, and which layers
-- each quantizer really quantized (PyTorch's dynamic mode silently leaves
-- conv layers in float; qlab lists them).
--
--   qlab sweep scripts/seed004_lenet_dynamic_static.lua
--   qlab sweep scripts/seed004_lenet_dynamic_static.lua -- epochs=14
local args = qlab.args{ epochs = 3, dataset = "fashion-mnist", backend = "onednn" }

local rows = qlab.sweep{
  name = "seed004",
  base = {
    model = "lenet",
    dataset = { name = args.dataset },
    train = { epochs = args.epochs },
    backend = { name = args.backend },
    metrics = { names = { "accuracy", "loss", "size", "latency", "runtime", "memory" } },
  },
  grid = { ["quantizer.name"] = { "dynamic", "static" } },
}

local lines = {}
for _, r in ipairs(rows) do
  if r.status == "ok" then
    local b = r.baseline.metrics
    local float = #r.float_layers > 0 and table.concat(r.float_layers, ", ") or "none"
    lines[#lines + 1] = ("- **%s**: accuracy %.2f%% -> %.2f%%, loss %.4f -> %.4f, size %.1f -> %.1f KiB, "
      .. "test set %.0f -> %.0f ms, A/B speed-up %.2fx; layers left in float: %s.")
      :format(r.quantizer, b.accuracy, r.metrics.accuracy, b.loss, r.metrics.loss, b.size_bytes / 1024,
              r.metrics.size_bytes / 1024, b.test_set_ms, r.metrics.test_set_ms, r.metrics.speedup_vs_fp32, float)
  end
end

qlab.report{
  name = "seed004_lenet_dynamic_static",
  title = "LeNet: fp32, dynamic int8 and static int8",
  intro = ("LeNet-5 trained %d epochs on %s, quantized after training on %s.\n\n")
          :format(args.epochs, args.dataset, args.backend) .. table.concat(lines, "\n"),
  rows = rows,
  plots = {
    { kind = "bars", name = "test_set_runtime", title = "Whole test set, batches of 64 (mean of 3 runs)",
      x = "point.label", y = "test_set_ms", xlabel = "", ylabel = "ms" },
    { kind = "bars", name = "size", title = "Model size", x = "point.label", y = "size_bytes",
      xlabel = "", ylabel = "bytes" },
    { kind = "curves", name = "training", title = "Training loss", y = "loss" },
  },
}
