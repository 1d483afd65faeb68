-- Issue 19's two hardest targets, measured: LeNet (the quickstart's recipe)
-- at W2A8 within 2 points of fp32, and MobileNetV2 (seed 003's quick setup)
-- at W4A4 within 8. Each method runs on oneDNN's int8 kernels; the first row
-- of each model is the best of scripts/lowbit_ptq.lua, rerun here so that
-- every figure comes from the same run.
--
--   qlab sweep scripts/lowbit_ptq_targets.lua     -- ~35 min (~10 more to train the baselines)
local args = qlab.args{ lenet_epochs = 3, mobilenet_epochs = 2 }

local with = qlab.with

local seq_mse = { weight_range = "seq_mse", observer = "histogram" }
local long_adaround = { rounding = "adaround", adaround_iterations = 5000, adaround_batches = 128 }
local models = {
  { name = "LeNet", cell = { 2, 8 }, target = 2, base = {
      model = "lenet",
      dataset = { name = "fashion-mnist" },
      train = { epochs = args.lenet_epochs },
      backend = { name = "onednn" },
      metrics = { names = { "accuracy", "size" } },
    }, methods = {
      { name = "AdaRound (500 steps a layer on 256 images)", options = { rounding = "adaround" } },
      { name = "sequential MSE", options = { weight_range = "seq_mse" } },
      { name = "AdaRound, 5,000 steps on 8,192 images", options = long_adaround },
      { name = "AdaRound, 10,000 steps on 8,192 images",
        options = with(long_adaround, { adaround_iterations = 10000 }) },
    } },
  -- Exactly seed 003's base, so that its baseline is reused.
  { name = "MobileNetV2", cell = { 4, 4 }, target = 8, base = {
      model = { name = "mobilenet_v2", width_mult = 0.25 },
      dataset = { name = "cifar100", fallback = "fashion-mnist", limit_train = 12000, limit_test = 1000 },
      train = { epochs = args.mobilenet_epochs },
      backend = { name = "onednn" },
      metrics = { names = { "accuracy", "size" } },
    }, methods = {
      { name = "AdaRound (200 steps a layer) + MSE ranges + bias correction",
        options = { rounding = "adaround", adaround_iterations = 200, observer = "histogram",
                    bias_correction = true } },
      { name = "sequential MSE + MSE ranges", options = seq_mse },
      { name = "sequential MSE + MSE ranges + cross-entropy logit range",
        options = with(seq_mse, { output_range = "cross_entropy" }) },
      { name = "AdaRound (200 steps a layer) + sequential MSE + MSE ranges + cross-entropy logit range",
        options = with(seq_mse, { output_range = "cross_entropy", rounding = "adaround",
                                  adaround_iterations = 200 }) },
    } },
}

local rows, lines = {}, {}
for _, model in ipairs(models) do
  local w, a = model.cell[1], model.cell[2]
  for _, m in ipairs(model.methods) do
    local quantizer = with({ name = "static", weight_bits = w, activation_bits = a }, m.options)
    for _, r in ipairs(qlab.sweep{ name = "lowbit_ptq_targets",
                                   base = with(model.base, { quantizer = quantizer }) }) do
      r.point.label = ("%s W%dA%d, %s"):format(model.name, w, a, m.name)
      if r.status == "ok" then
        local fp32 = r.baseline.metrics.accuracy
        local delta = r.metrics.accuracy - fp32
        lines[#lines + 1] = ("| %s | W%dA%d | %s | %.2f | %.2f | %+.2f | %s |"):format(
          model.name, w, a, m.name, fp32, r.metrics.accuracy, delta,
          delta >= -model.target and ("met (within %d)"):format(model.target)
                                 or ("not met (within %d)"):format(model.target))
      else
        lines[#lines + 1] = ("| %s | W%dA%d | %s | | %s | | |"):format(model.name, w, a, m.name, r.status)
      end
      rows[#rows + 1] = r
    end
  end
end

qlab.report{
  name = "lowbit_ptq_targets",
  title = "Post-training quantization below 8 bits: issue 19's LeNet W2A8 and MobileNetV2 W4A4 targets",
  intro = "Test accuracy (%) of static post-training quantization on oneDNN's int8 kernels, "
    .. "per-channel weights, every conv and linear layer quantized (the first and the last "
    .. "too). LeNet: the quickstart's recipe, 10,000 test images. MobileNetV2: seed 003's "
    .. "quick setup, 1,000 test images. One run each; the methods are in "
    .. "docs/quantizers.md.\n\n"
    .. "| model | cell | method | fp32 | quantized | vs fp32 (points) | target |\n"
    .. "|---|---|---|---:|---:|---:|---|\n" .. table.concat(lines, "\n") .. "\n",
  rows = rows,
}
