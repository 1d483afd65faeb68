-- Seed 001: the VAE with QAT, DoReFa and LSQ at two configurations each, 8
-- and 4 bits. Answers: each configuration's per-layer calibration config,
-- training and evaluation time before and after quantization, test loss
-- before and after, whether the result runs on int8 kernels or is only
-- simulated, and the model printouts.
--
--   qlab sweep scripts/seed001_vae_qat_dorefa_lsq.lua
--   qlab sweep scripts/seed001_vae_qat_dorefa_lsq.lua -- epochs=10 finetune=2
local args = qlab.args{ epochs = 3, finetune = 1, dataset = "fashion-mnist", backend = "onednn" }

local base = {
  model = "vae",
  dataset = { name = args.dataset },
  train = { epochs = args.epochs },
  backend = { name = args.backend },
  metrics = { names = { "loss", "size", "latency", "runtime" } },
}

-- The seed's configurations quantize every linear layer's weight and input
-- (C0: 8 bits, C1: 4 bits). QAT and LSQ also quantize outputs, which int8
-- kernels need; DoReFa quantizes weights only (its activations are clipped
-- to [0, 1], which the VAE's unbounded latent code would not survive).
local function config(bits, types)
  return { { op_types = { "linear" }, quant_types = types, quant_bits = bits } }
end

local rows = {}
for _, q in ipairs{ "qat", "lsq", "dorefa" } do
  local types = q == "dorefa" and { "weight" } or { "weight", "input", "output" }
  for _, bits in ipairs{ 8, 4 } do
    local b = {}
    for k, v in pairs(base) do b[k] = v end
    b.quantizer = { name = q, epochs = args.finetune, config = config(bits, types) }
    for _, r in ipairs(qlab.sweep{ name = ("seed001_%s_%d"):format(q, bits), base = b }) do
      r.point.label = ("%s C%d (%d bits)"):format(q, bits == 8 and 0 or 1, bits)
      rows[#rows + 1] = r
    end
  end
end

local speed, losses = {}, {}
for _, r in ipairs(rows) do
  if r.status == "ok" then
    local b = r.baseline.metrics
    speed[#speed + 1] = ("| %s | %s | %.1f | %.0f | %.1f | %.0f |")
      :format(r.point.label, r.mode, b.train_seconds, b.test_set_ms, r.metrics.train_seconds, r.metrics.test_set_ms)
    losses[#losses + 1] = ("| %s | %.2f | %.2f | %+.2f%% |")
      :format(r.point.label, b.loss, r.metrics.loss, 100 * (r.metrics.loss / b.loss - 1))
  end
end

qlab.report{
  name = "seed001_vae_qat_dorefa_lsq",
  title = "VAE with QAT, DoReFa and LSQ at 8 and 4 bits",
  intro = ("The VAE of seed 001 (784-400-20-400-784), trained %d epochs on %s (the seed used MNIST), then "
           .. "fine-tuned %d epoch(s) by each quantizer. Loss is binary cross-entropy summed over pixels "
           .. "plus KL divergence, per test image.\n\n"
           .. "Running speed, as the seed measured it (training time of the float model and of the "
           .. "quantizer's fine-tuning; evaluation = one pass over the test set, mean of 3):\n\n"
           .. "| configuration | runs as | fp32 training s | fp32 evaluation ms | fine-tuning s | evaluation ms |\n"
           .. "|---|---|---|---|---|---|\n"):format(args.epochs, args.dataset, args.finetune)
          .. table.concat(speed, "\n")
          .. "\n\nTest loss before and after quantization:\n\n| configuration | fp32 | quantized | change |\n"
          .. "|---|---|---|---|\n" .. table.concat(losses, "\n"),
  rows = rows,
  columns = { "quantizer.epochs" },
  plots = {
    { kind = "bars", name = "loss", title = "Test loss per image", x = "point.label", y = "loss",
      xlabel = "", ylabel = "BCE + KLD" },
    { kind = "curves", name = "training", title = "Training and fine-tuning loss", y = "loss" },
    { kind = "images", name = "reconstructions", title = "Test images, their reconstructions, and samples",
      series = "point.label" },
  },
}
