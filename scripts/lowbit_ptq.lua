-- Post-training quantization below 8 bits, method against method, on LeNet
-- (the quickstart's recipe) and MobileNetV2 (seed 003's quick setup): one
-- table of test accuracy per model, method and width. Every point runs on
-- oneDNN's int8 kernels (a b-bit grid is a subset of the 8-bit one).
--
--   qlab sweep scripts/lowbit_ptq.lua     -- ~10 min after seed 003's script (its points are reused)
local args = qlab.args{ lenet_epochs = 3, mobilenet_epochs = 2 }

local with = qlab.with

local models = {
  { name = "LeNet", base = {
      model = "lenet",
      dataset = { name = "fashion-mnist" },
      train = { epochs = args.lenet_epochs },
      quantizer = { name = "static" },
      backend = { name = "onednn" },
      metrics = { names = { "accuracy", "size" } },
    } },
  -- Exactly seed 003's base, so that its stored points are reused.
  { name = "MobileNetV2", base = {
      model = { name = "mobilenet_v2", width_mult = 0.25 },
      dataset = { name = "cifar100", fallback = "fashion-mnist", limit_train = 12000, limit_test = 1000 },
      train = { epochs = args.mobilenet_epochs },
      quantizer = { name = "static" },
      backend = { name = "onednn" },
      metrics = { names = { "accuracy", "size" } },
    } },
}
local cells = { { 2, 8 }, { 4, 8 }, { 4, 4 } }
local methods = {
  { name = "round to nearest", options = {} },
  { name = "bias correction", options = { bias_correction = true } },
  { name = "MSE ranges + bias correction", options = { observer = "histogram", bias_correction = true } },
  { name = "CLE + MSE ranges + bias correction",
    options = { equalize = true, observer = "histogram", bias_correction = true } },
  { name = "AdaRound", options = { rounding = "adaround" }, only = "LeNet" },
  -- MobileNetV2 takes seed 003's 200 AdaRound steps a layer (its 53 layers
  -- at the default 500 take minutes a point), so its points are reused.
  { name = "AdaRound + MSE ranges + bias correction",
    options = { rounding = "adaround", observer = "histogram", bias_correction = true },
    options_for = { MobileNetV2 = { adaround_iterations = 200 } } },
}

local rows, fp32, table_md = {}, {}, {}
for _, model in ipairs(models) do
  for _, m in ipairs(methods) do
    if m.only == nil or m.only == model.name then
      local found = qlab.sweep{
        name = "lowbit_ptq",
        base = with(model.base, { quantizer = with(with({ name = "static" }, m.options),
                                                   (m.options_for or {})[model.name]) }),
        grid = { ["quantizer.weight_bits"] = { 2, 4 }, ["quantizer.activation_bits"] = { 4, 8 } },
        where = function(p)
          return p.quantizer.activation_bits == 8 or p.quantizer.weight_bits == 4
        end,
      }
      local acc = {}
      for _, r in ipairs(found) do
        if r.status == "ok" then
          fp32[model.name] = r.baseline.metrics.accuracy
          acc[("W%dA%d"):format(r.config.quantizer.weight_bits, r.config.quantizer.activation_bits)] =
            r.metrics.accuracy
          r.point.label = ("%s, %s: %s"):format(model.name, m.name, r.point.label)
        end
        rows[#rows + 1] = r
      end
      local line = ("| %s | %s |"):format(model.name, m.name)
      for _, c in ipairs(cells) do
        local a = acc[("W%dA%d"):format(c[1], c[2])]
        line = line .. (a and (" %.2f |"):format(a) or " — |")
      end
      table_md[#table_md + 1] = line
    end
  end
end

qlab.report{
  name = "lowbit_ptq",
  title = "Post-training quantization below 8 bits: method against method",
  intro = ("Test accuracy (%%) of static post-training quantization on oneDNN's int8 kernels, "
           .. "per-channel weights, activations calibrated on training batches. LeNet: the "
           .. "quickstart's recipe (%d epochs on Fashion-MNIST, fp32 %.2f%%). MobileNetV2: seed "
           .. "003's quick setup (width 0.25, 1,000 test images, fp32 %.2f%%). Methods are in "
           .. "docs/quantizers.md; \"MSE ranges\" is the histogram observer (each activation's "
           .. "clipping range searched per layer at its width).\n\n"
           .. "| model | method | W2A8 | W4A8 | W4A4 |\n|---|---|---:|---:|---:|\n%s\n")
          :format(args.lenet_epochs, fp32.LeNet or 0, fp32.MobileNetV2 or 0,
                  table.concat(table_md, "\n")),
  rows = rows,
}
