-- Binary and 2-bit LeNets, trained with DoReFa-Net and run on bit kernels.
-- DoReFa fine-tunes the float baseline at W1A1 and W2A2 for every layer
-- but the first (real-valued input: 4-bit weights, 8-bit input) and the
-- last (4-bit weights, 8-bit output), as DoReFa-Net and XNOR-Net keep them.
-- Each model runs on the `bitserial` backend (AND + popcount bit kernels for
-- the 1- and 2-bit layers, selected sums for a last layer on one-bit inputs,
-- int8 for the rest) and on `onednn` (its int8 twin: the same codes on int8
-- kernels). Both run the first layer, over one input channel, on qlab's int8
-- image convolution. Latency is measured at batch 64 against fp32 in the
-- same run; the table also gives bitserial's speed-up over its twin.
--
--   qlab sweep scripts/binary_lenet.lua
--   qlab sweep scripts/binary_lenet.lua -- finetune=1
local args = qlab.args{ epochs = 3, finetune = 2 }

local function config(bits)
  local all = { "weight", "input", "output" }
  return {
    { op_types = { "conv2d", "linear" }, quant_types = all, quant_bits = bits },
    { op_names = { "features.0" }, quant_types = all,
      quant_bits = { weight = 4, input = 8, output = bits } },
    { op_names = { "classifier.2" }, quant_types = all,
      quant_bits = { weight = 4, input = bits, output = 8 } },
  }
end

local rows = {}
for _, bits in ipairs({ 1, 2 }) do
  local found = qlab.sweep{
    name = "binary_lenet",
    base = {
      model = "lenet",
      dataset = { name = "fashion-mnist" },
      train = { epochs = args.epochs },
      quantizer = { name = "dorefa", epochs = args.finetune, config = config(bits) },
      backend = { name = "bitserial" },
      metrics = { names = { "accuracy", "size", "latency" }, batch_size = 64 },
    },
    grid = { ["backend.name"] = { "onednn", "bitserial" } },
  }
  for _, r in ipairs(found) do
    r.bits = bits
    rows[#rows + 1] = r
  end
end

-- Each width's onednn speed-up over fp32, for bitserial's over its twin:
-- the ratio of the two rows' speed-ups, each measured with the same fp32
-- model interleaved, so that the machine's drift between the two rows
-- (measured a minute apart) cancels, as a ratio of their latencies would not.
local twin_speedup = {}
for _, r in ipairs(rows) do
  if r.status == "ok" and r.backend == "onednn" then
    twin_speedup[r.bits] = r.metrics.speedup_vs_fp32
  end
end

local lines, fp32 = {}, nil
for _, r in ipairs(rows) do
  if r.status == "ok" then
    local b = r.baseline.metrics
    fp32 = fp32 or b
    local vs_twin = "-"
    if r.backend == "bitserial" and twin_speedup[r.bits] then
      vs_twin = ("%.2fx"):format(r.metrics.speedup_vs_fp32 / twin_speedup[r.bits])
    end
    lines[#lines + 1] = ("| W%dA%d | %s | %s | %.2f | %+.2f | %.1f | %.3f | %.2fx | %s |")
      :format(r.bits, r.bits, r.backend, r.mode, r.metrics.accuracy, r.metrics.accuracy - b.accuracy,
              r.metrics.size_bytes / 1024, r.metrics.latency_ms, r.metrics.speedup_vs_fp32, vs_twin)
  end
end
local head = ""
if fp32 then
  head = ("fp32 LeNet: %.2f%%, %.1f KiB, %.3f ms per batch of 64.\n\n")
         :format(fp32.accuracy, fp32.size_bytes / 1024, fp32.latency_ms)
end

qlab.report{
  name = "binary_lenet",
  title = "Binary and 2-bit LeNet on bit kernels",
  intro = ("LeNet-5 trained %d epochs on Fashion-MNIST, then fine-tuned %d epoch(s) with DoReFa-Net "
           .. "at W1A1 and W2A2 (first layer: 4-bit weights on an 8-bit input; last: 4-bit weights, "
           .. "8-bit output). `bitserial` runs the 1- and 2-bit layers on AND + popcount bit kernels, "
           .. "a last layer on one-bit inputs (W1A1) on selected sums, and the rest on int8 kernels; "
           .. "`onednn` runs the same codes on int8 kernels only. Both run the first layer (one input "
           .. "channel) on qlab's int8 image convolution. Size counts the bit-packed weights. "
           .. "Speed-ups over fp32 are measured with the fp32 model interleaved; the one over the "
           .. "int8 twin (`onednn`) is the ratio of the two rows' speed-ups over fp32.\n\n")
          :format(args.epochs, args.finetune)
          .. head
          .. "| widths | backend | mode | accuracy % | change (points) | size KiB | ms per batch | "
          .. "speed-up over fp32 | over int8 twin |\n|---|---|---|---|---|---|---|---|---|\n"
          .. table.concat(lines, "\n"),
  rows = rows,
}
