-- Seed 003: MobileNetV2 swept over weight bits x activation bits. Answers:
-- baseline accuracy, accuracy / model size / compression ratio per
-- configuration, the heat map, and the configuration to choose; then what
-- the post-training remedies (bias correction, cross-layer equalization,
-- AdaRound) and a mixed-precision search recover below 8 bits.
--
-- The seed trained a width-1.0 MobileNetV2 on CIFAR-100. qlab trains on
-- CIFAR-10/100 when their files are in data/ (datasets/README.md) and on
-- Fashion-MNIST padded to 32x32 otherwise; the report names what was used.
--
--   qlab sweep scripts/seed003_mobilenet_v2_bits.lua                       -- quick (~30 min)
--   qlab sweep scripts/seed003_mobilenet_v2_bits.lua -- width=1.0 epochs=30 limit_train=0 limit_test=0
local args = qlab.args{ width = 0.25, epochs = 2, limit_train = 12000, limit_test = 1000,
                        dataset = "cifar100" }

local with = qlab.with

-- A point whose quantizer takes a config list.
local function has_list(r) return next(r.config.quantizer.config or {}) ~= nil end

local base = {
  model = { name = "mobilenet_v2", width_mult = args.width },
  dataset = { name = args.dataset, fallback = "fashion-mnist",
              limit_train = args.limit_train, limit_test = args.limit_test },
  train = { epochs = args.epochs },
  quantizer = { name = "static" },
  backend = { name = "onednn" },
  metrics = { names = { "accuracy", "size" } },
}

-- 1. The seed's grid, rounding to nearest with min/max calibration.
local rows = qlab.sweep{
  name = "seed003",
  base = base,
  grid = {
    ["quantizer.weight_bits"] = { 1, 2, 4, 8, 16 },
    -- 1-bit weights are binary {-a, +a}; 1-bit activations are {0, max}.
    ["quantizer.activation_bits"] = { 1, 2, 4, 8, 16 },
  },
}
local fp32
local cells = {}  -- "W4 A8" -> the best row of that cell so far
local function consider(r, method)
  if r.status ~= "ok" then return end
  fp32 = r.baseline
  r.point.method = method
  local q = r.config.quantizer
  if not has_list(r) then
    local cell = ("W%d A%d"):format(q.weight_bits, q.activation_bits)
    if cells[cell] == nil or r.metrics.accuracy > cells[cell].metrics.accuracy then cells[cell] = r end
  end
end
for _, r in ipairs(rows) do
  consider(r, "nearest")
  if r.status == "ok" then
    r.metrics.accuracy_nearest = r.metrics.accuracy
    r.metrics.compression = r.baseline.metrics.size_bytes / r.metrics.size_bytes
  end
end
assert(fp32, "no point of the sweep was measured")

-- 2. The remedies, on the cells below 8 bits where they matter. "MSE
-- ranges" is the histogram observer: each activation's clipping range is
-- searched per layer at its own width for the least squared error. AdaRound
-- learns each weight's rounding (200 steps a layer here, against the default
-- 500: still minutes a point on 53 layers), on the cells where rounding
-- error dominates; it runs last.
local methods = {
  { key = "bc", name = "bias correction", options = { bias_correction = true } },
  { key = "mse_bc", name = "MSE ranges + bias correction",
    options = { observer = "histogram", bias_correction = true } },
  { key = "cle_mse_bc", name = "CLE + MSE ranges + bias correction",
    options = { equalize = true, observer = "histogram", bias_correction = true },
    where = function(p) return p.quantizer.weight_bits < 8 end },
  { key = "adaround_mse_bc", name = "AdaRound + MSE ranges + bias correction",
    options = { rounding = "adaround", adaround_iterations = 200, observer = "histogram",
                bias_correction = true },
    where = function(p)
      return p.quantizer.weight_bits < 8 and (p.quantizer.activation_bits == 8 or p.quantizer.weight_bits == 4)
    end },
}
local function run_method(m)
  local found = qlab.sweep{
    name = "seed003_" .. m.key,
    base = with(base, { quantizer = with({ name = "static" }, m.options) }),
    grid = {
      ["quantizer.weight_bits"] = { 2, 4, 8 },
      ["quantizer.activation_bits"] = { 4, 8 },
    },
    where = m.where,
  }
  for _, r in ipairs(found) do
    consider(r, m.name)
    r.point.label = m.name .. ": " .. r.point.label
    r.metrics["accuracy_" .. m.key] = r.metrics.accuracy
    rows[#rows + 1] = r
  end
end
for k = 1, 3 do run_method(methods[k]) end

-- W4A4 as most papers count it: the image input and the logits stay at 8
-- bits (pixels are 8-bit to begin with, and 16 levels of logits tie).
local function w4a4_first_last(options)
  local all = { weight = 4, input = 4, output = 4 }
  return with({ name = "static", config = {
    { op_types = { "conv2d", "linear" }, quant_types = { "weight", "input", "output" }, quant_bits = all },
    { op_names = { "features.0.0" }, quant_types = { "weight", "input", "output" },
      quant_bits = { weight = 4, input = 8, output = 4 } },
    { op_names = { "classifier.1" }, quant_types = { "weight", "input", "output" },
      quant_bits = { weight = 4, input = 4, output = 8 } },
  } }, options)
end
local first_last = {}
for _, m in ipairs{ methods[2], methods[4] } do
  for _, r in ipairs(qlab.sweep{ name = "seed003_w4a4_first_last",
                                 base = with(base, { quantizer = w4a4_first_last(m.options) }) }) do
    if r.status == "ok" then
      r.point.label = "W4A4, image and logits at 8 bits: " .. m.name
      r.point.method = m.name
      first_last[#first_last + 1] = r
    end
    rows[#rows + 1] = r
  end
end

-- 3. Mixed precision: each layer's loss increase at 2, 4 and 8 bits on
-- calibration images, then the widths that lose least under each size
-- budget (exact allocation), run with bias correction.
local candidates, sensitivity = qlab.mixed_precision{
  base = with(base, { quantizer = { name = "static", activation_bits = 8 } }),
  bits = { 2, 4, 8 },
  budget = { size_ratio = { 0.09, 0.1, 0.125, 0.15 } },
}
local mixed = {}
for _, c in ipairs(candidates) do
  local found = qlab.sweep{
    name = "seed003_mixed",
    base = with(base, { quantizer = { name = "static", bias_correction = true, config = c.config } }),
  }
  for _, r in ipairs(found) do
    if r.status == "ok" then
      r.point.label = c.label
      r.point.method = "mixed precision + bias correction"
      r.point.family = "mixed"
      local n = { [2] = 0, [4] = 0, [8] = 0 }
      for _, bits in pairs(c.bits) do n[bits] = n[bits] + 1 end
      r.point.widths = ("%d layers at 2 bits, %d at 4, %d at 8"):format(n[2], n[4], n[8])
      mixed[#mixed + 1] = r
    end
    rows[#rows + 1] = r
  end
end

run_method(methods[4])

-- The Pareto view: weight bytes against accuracy at 8-bit activations.
for _, r in ipairs(rows) do
  local q = r.config.quantizer
  local mixed_row = r.point.family == "mixed"
  if r.status == "ok" and (mixed_row or (not has_list(r) and q.activation_bits == 8 and q.weight_bits <= 8)) then
    r.metrics.pareto_accuracy = r.metrics.accuracy
    r.point.family = mixed_row and "mixed, bias correction"
      or ("uniform, " .. r.point.method)
  end
end

-- The targets of issue 19, measured.
local w8a8 = cells["W8 A8"]
local function best_text(cell)
  local r = cells[cell]
  return ("%.1f%% (%s, %+.1f points)"):format(r.metrics.accuracy, r.point.method,
                                              r.metrics.accuracy - fp32.metrics.accuracy)
end
local best_mixed
for _, r in ipairs(mixed) do
  if r.metrics.size_bytes <= 0.6 * w8a8.metrics.size_bytes
     and (best_mixed == nil or r.metrics.accuracy > best_mixed.metrics.accuracy) then
    best_mixed = r
  end
end
local first_last_text = {}
for _, r in ipairs(first_last) do
  first_last_text[#first_last_text + 1] = ("%.1f%% with %s (%+.1f points)")
    :format(r.metrics.accuracy, r.point.method, r.metrics.accuracy - fp32.metrics.accuracy)
end
local mixed_text = best_mixed
  and ("%s: %.1f%% against W8A8's %.1f%% (%+.1f points) at %.2fx its bytes (%s)")
      :format(best_mixed.point.label, best_mixed.metrics.accuracy, w8a8.metrics.accuracy,
              best_mixed.metrics.accuracy - w8a8.metrics.accuracy,
              best_mixed.metrics.size_bytes / w8a8.metrics.size_bytes, best_mixed.point.widths)
  or "no mixed configuration fits in 0.6x W8A8's bytes"

-- The best per cell, with its method.
local grid_md = "| weight \\ activation bits | 4 | 8 |\n|---|---:|---:|\n"
for _, w in ipairs{ 2, 4, 8 } do
  local line = ("| W%d |"):format(w)
  for _, a in ipairs{ 4, 8 } do
    local r = cells[("W%d A%d"):format(w, a)]
    line = line .. (" %.1f (%s) |"):format(r.metrics.accuracy, r.point.method)
  end
  grid_md = grid_md .. line .. "\n"
end

-- Sensitivity: the layers that lose most at 2 bits.
table.sort(sensitivity, function(a, b) return a.by_bits[1].loss_increase > b.by_bits[1].loss_increase end)
local sens_md = "| layer | weights | loss increase at 2 bits | at 4 | at 8 |\n|---|---:|---:|---:|---:|\n"
for i = 1, math.min(8, #sensitivity) do
  local l = sensitivity[i]
  sens_md = sens_md .. ("| %s | %d | %.4f | %.4f | %.4f |\n")
    :format(l.layer, l.weights, l.by_bits[1].loss_increase, l.by_bits[2].loss_increase,
            l.by_bits[3].loss_increase)
end

local best
for _, r in ipairs(rows) do
  if r.status == "ok" and r.metrics.accuracy >= fp32.metrics.accuracy - 1.0
     and (best == nil or r.metrics.size_bytes < best.metrics.size_bytes) then
    best = r
  end
end
local choice = best
  and ("The configuration to choose is **%s** (%s): the smallest model within 1 point of fp32 "
       .. "(%.2f%% against %.2f%%), %.1fx smaller (%.1f KiB).")
      :format(best.point.label, best.point.method, best.metrics.accuracy, fp32.metrics.accuracy,
              fp32.metrics.size_bytes / best.metrics.size_bytes, best.metrics.size_bytes / 1024)
  or "No configuration stays within 1 point of fp32 accuracy."

local plots = {
  { kind = "heatmap", name = "accuracy_heatmap",
    title = "Test accuracy (%) by weight and activation bits, rounding to nearest",
    x = "quantizer.weight_bits", y = "quantizer.activation_bits", z = "accuracy_nearest",
    xlabel = "weight bits", ylabel = "activation bits" },
}
for _, m in ipairs(methods) do
  plots[#plots + 1] = { kind = "heatmap", name = "accuracy_heatmap_" .. m.key,
    title = "Test accuracy (%) with " .. m.name,
    x = "quantizer.weight_bits", y = "quantizer.activation_bits", z = "accuracy_" .. m.key,
    xlabel = "weight bits", ylabel = "activation bits" }
end
for _, p in ipairs{
  { kind = "line", name = "pareto_size_accuracy",
    title = "Weight bytes against accuracy, 8-bit activations: uniform widths and mixed precision",
    x = "size_bytes", y = "pareto_accuracy", series = "point.family",
    xlabel = "model bytes", ylabel = "accuracy %" },
  { kind = "heatmap", name = "compression_heatmap", title = "Compression ratio (fp32 size / size)",
    x = "quantizer.weight_bits", y = "quantizer.activation_bits", z = "compression",
    xlabel = "weight bits", ylabel = "activation bits" },
  { kind = "line", name = "accuracy_vs_weight_bits", title = "Accuracy against weight bits, rounding to nearest",
    x = "quantizer.weight_bits", y = "accuracy_nearest", series = "quantizer.activation_bits", logx = true,
    xlabel = "weight bits", ylabel = "accuracy %" },
  { kind = "curves", name = "training", title = "Training loss of the baseline", y = "loss" },
} do plots[#plots + 1] = p end

qlab.report{
  name = "seed003_mobilenet_v2_bits",
  title = "MobileNetV2: weight bits x activation bits",
  intro = ("MobileNetV2 (width %.2f) trained %d epochs on %s, then quantized after training with "
           .. "per-channel weights and calibrated activations. Every pair of at most 8 bits runs on "
           .. "oneDNN int8 kernels (a b-bit grid is a subset of the 8-bit one), mixed widths "
           .. "included; pairs with 16 bits are simulated with fake quantization, so their size is "
           .. "real (bit-packed weights) but their speed is not. The baseline reaches %.2f%%.\n\n%s\n\n"
           .. "**Post-training remedies** (docs/quantizers.md): bias correction (Nagel et al. 2019), "
           .. "cross-layer equalization (CLE, same paper; MobileNetV2's ReLU6 blocks most pairs, which "
           .. "the rows' notes name), AdaRound (Nagel et al. 2020), and MSE ranges (the histogram "
           .. "observer: each activation's clipping range searched per layer at its width). Best "
           .. "accuracy per cell, with "
           .. "the method that reached it:\n\n%s\n"
           .. "Against fp32: W4A8 %s; W4A4 %s. W4A4 with the image input and the logits at 8 bits, "
           .. "as most papers count W4A4: %s.\n\n"
           .. "**Mixed precision** (`qlab.mixed_precision`): each layer's calibration-loss increase "
           .. "when only its weights are rounded to 2, 4 or 8 bits, then per size budget (the "
           .. "weights' bits as a share of fp32's) the exact allocation that loses least. Best "
           .. "within 0.6x W8A8's bytes: %s. The most sensitive layers:\n\n%s")
          :format(args.width, args.epochs, fp32.dataset, fp32.metrics.accuracy, choice, grid_md,
                  best_text("W4 A8"), best_text("W4 A4"), table.concat(first_last_text, "; "),
                  mixed_text, sens_md),
  rows = rows,
  plots = plots,
}
