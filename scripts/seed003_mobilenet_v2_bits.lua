-- Seed 003: MobileNetV2 swept over weight bits x activation bits. Answers:
-- baseline accuracy, accuracy / model size / compression ratio per
-- configuration, the heat map, and the configuration to choose.
--
-- The seed trained a width-1.0 MobileNetV2 on CIFAR-100. qlab trains on
-- CIFAR-10/100 when their files are in data/ (datasets/README.md) and on
-- Fashion-MNIST padded to 32x32 otherwise; the report names what was used.
--
--   qlab sweep scripts/seed003_mobilenet_v2_bits.lua                       -- quick (~12 min)
--   qlab sweep scripts/seed003_mobilenet_v2_bits.lua -- width=1.0 epochs=30 limit_train=0 limit_test=0
local args = qlab.args{ width = 0.25, epochs = 2, limit_train = 12000, limit_test = 1000,
                        dataset = "cifar100" }

local rows = qlab.sweep{
  name = "seed003",
  base = {
    model = { name = "mobilenet_v2", width_mult = args.width },
    dataset = { name = args.dataset, fallback = "fashion-mnist",
                limit_train = args.limit_train, limit_test = args.limit_test },
    train = { epochs = args.epochs },
    quantizer = { name = "static" },
    backend = { name = "onednn" },
    metrics = { names = { "accuracy", "size" } },
  },
  grid = {
    ["quantizer.weight_bits"] = { 1, 2, 4, 8, 16 },
    -- 1-bit weights are binary {-a, +a}; 1-bit activations are {0, max}.
    ["quantizer.activation_bits"] = { 1, 2, 4, 8, 16 },
  },
}

-- Compression ratio as the seed defines it: fp32 size / quantized size.
local fp32, best = nil, nil
for _, r in ipairs(rows) do
  if r.status == "ok" then
    fp32 = r.baseline
    r.metrics.compression = r.baseline.metrics.size_bytes / r.metrics.size_bytes
    -- The choice: the smallest model within 1 point of fp32 accuracy.
    if r.metrics.accuracy >= fp32.metrics.accuracy - 1.0
       and (best == nil or r.metrics.size_bytes < best.metrics.size_bytes) then
      best = r
    end
  end
end
assert(fp32, "no point of the sweep was measured")
local choice = best
  and ("The configuration to choose is **W%d A%d**: the smallest model within 1 point of fp32 "
       .. "(%.2f%% against %.2f%%), %.1fx smaller (%.1f KiB).")
      :format(best.config.quantizer.weight_bits, best.config.quantizer.activation_bits,
              best.metrics.accuracy, fp32.metrics.accuracy, best.metrics.compression,
              best.metrics.size_bytes / 1024)
  or "No configuration stays within 1 point of fp32 accuracy."

qlab.report{
  name = "seed003_mobilenet_v2_bits",
  title = "MobileNetV2: weight bits x activation bits",
  intro = ("MobileNetV2 (width %.2f) trained %d epochs on %s, then quantized after training with "
           .. "per-channel weights and calibrated activations. Every pair of at most 8 bits runs on "
           .. "oneDNN int8 kernels (a b-bit grid is a subset of the 8-bit one); pairs with 16 bits "
           .. "are simulated with fake quantization, so their size is real (bit-packed weights) but "
           .. "their speed is not. The baseline reaches %.2f%%.\n\n%s")
          :format(args.width, args.epochs, fp32.dataset, fp32.metrics.accuracy, choice),
  rows = rows,
  plots = {
    { kind = "heatmap", name = "accuracy_heatmap", title = "Test accuracy (%) by weight and activation bits",
      x = "quantizer.weight_bits", y = "quantizer.activation_bits", z = "accuracy",
      xlabel = "weight bits", ylabel = "activation bits" },
    { kind = "heatmap", name = "compression_heatmap", title = "Compression ratio (fp32 size / size)",
      x = "quantizer.weight_bits", y = "quantizer.activation_bits", z = "compression",
      xlabel = "weight bits", ylabel = "activation bits" },
    { kind = "line", name = "accuracy_vs_weight_bits", title = "Accuracy against weight bits",
      x = "quantizer.weight_bits", y = "accuracy", series = "quantizer.activation_bits", logx = true,
      xlabel = "weight bits", ylabel = "accuracy %" },
    { kind = "scatter", name = "size_vs_accuracy", title = "Model size against accuracy",
      x = "size_bytes", y = "accuracy", series = "point.label", xlabel = "bytes", ylabel = "accuracy %" },
    { kind = "curves", name = "training", title = "Training loss of the baseline", y = "loss" },
  },
}
