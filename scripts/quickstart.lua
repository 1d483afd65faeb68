-- The main job: LeNet on Fashion-MNIST, fp32 against dynamic and static
-- int8 on the oneDNN engine, and static at 4 and 2 bits (on the same int8
-- kernels: a 4-bit grid is a subset of the 8-bit one), ending
-- in reports/quickstart/. A few minutes on 2 cores.
--
--   qlab sweep scripts/quickstart.lua                 -- quick run
--   qlab sweep scripts/quickstart.lua -- epochs=14    -- PyTorch example's length
local args = qlab.args{ epochs = 3, backend = "onednn" }

local rows = qlab.sweep{
  name = "quickstart",
  base = {
    model = "lenet",
    dataset = { name = "fashion-mnist" },
    train = { epochs = args.epochs },
    backend = { name = args.backend },
    metrics = { names = { "accuracy", "loss", "size", "latency", "memory" } },
  },
  grid = {
    ["quantizer.name"] = { "dynamic", "static" },
    ["quantizer.weight_bits"] = { 2, 4, 8 },
  },
  -- Dynamic quantization is only worth it at 8 bits; sub-8-bit points are static.
  where = function(p) return p.quantizer.name == "static" or p.quantizer.weight_bits == 8 end,
}

qlab.report{
  name = "quickstart",
  title = "LeNet on Fashion-MNIST: fp32 against int8 and low-bit weights",
  intro = ("LeNet trained for %d epochs on Fashion-MNIST, then quantized after training. "):format(args.epochs)
    .. "Every quantized row runs on real int8 kernels (" .. args.backend .. "): 4- and 2-bit "
    .. "weights are int8 codes of a narrower range, so those rows ship fewer bytes and run at "
    .. "the 8-bit rows' speed.",
  rows = rows,
  plots = {
    { kind = "line", name = "accuracy_vs_bits", title = "Test accuracy against weight bits",
      x = "quantizer.weight_bits", y = "accuracy", series = "quantizer", logx = true,
      xlabel = "weight bits", ylabel = "accuracy %" },
    { kind = "bars", name = "latency", title = "Latency per batch of 64",
      x = "point.label", y = "latency_ms", ylabel = "ms per batch" },
    { kind = "scatter", name = "size_vs_accuracy", title = "Model size against accuracy",
      x = "size_bytes", y = "accuracy", series = "point.label", xlabel = "bytes", ylabel = "accuracy %" },
    { kind = "curves", name = "training", title = "Training loss of the fp32 baseline", y = "loss" },
  },
}
