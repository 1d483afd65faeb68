-- LeNet and MobileNetV2 on an NVIDIA GPU through the `cuda` backend: each
-- trained on the device, then run at batch 256 in fp32, fp16 and bf16 and as
-- a static 8-bit model whose layers run on at::_int_mm, all in one run. It
-- needs a LibTorch with CUDA (2.1 or later for int8) and a visible GPU
-- (docs/building.md); elsewhere every point fails saying so.
--
--   qlab sweep scripts/gpu_inference.lua
--   qlab sweep scripts/gpu_inference.lua -- epochs=3 batch=1024
local args = qlab.args{ epochs = 1, limit_train = 12000, limit_test = 1000, batch = 256 }

local models = {
  { key = "lenet", model = { name = "lenet" }, dataset = "fashion-mnist" },
  -- seed 003's quick set-up: width 0.25, Fashion-MNIST padded to 32x32
  -- unless CIFAR-100's files are in data/.
  { key = "mobilenet_v2", model = { name = "mobilenet_v2", width_mult = 0.25 },
    dataset = "cifar100", fallback = "fashion-mnist" },
}

local rows, lines = {}, {}
for _, m in ipairs(models) do
  local found = qlab.sweep{
    name = "gpu_" .. m.key,
    base = {
      model = m.model,
      dataset = { name = m.dataset, fallback = m.fallback,
                  limit_train = args.limit_train, limit_test = args.limit_test },
      train = { epochs = args.epochs },
      quantizer = { name = "static" },
      backend = { name = "cuda" },
      metrics = { names = { "accuracy", "latency", "memory" }, batch_size = args.batch },
    },
    grid = { ["backend.precision"] = { "fp32", "fp16", "bf16" } },
  }
  local fp32
  for _, r in ipairs(found) do
    rows[#rows + 1] = r
    if r.status == "ok" then
      local b = r.baseline.metrics
      fp32 = fp32 or b
      lines[#lines + 1] = ("| %s | %s | %.2f | %.3f | %.2fx | %.1f |"):format(
        m.key, r.config.backend.precision, b.accuracy, b.latency_ms,
        fp32.latency_ms / b.latency_ms, b.train_seconds)
    end
  end
  -- The quantized model is the same at each precision: one line for it.
  local q = found[1]
  if q and q.status == "ok" and fp32 then
    lines[#lines + 1] = ("| %s | %s (%s) | %.2f | %.3f | %.2fx | |"):format(
      m.key, "static 8-bit", q.mode, q.metrics.accuracy, q.metrics.latency_ms,
      fp32.latency_ms / q.metrics.latency_ms)
  end
end

qlab.report{
  name = "gpu_inference",
  title = "LeNet and MobileNetV2 on an NVIDIA GPU",
  intro = ("Each model trained %d epoch(s) on the GPU (%d images), then timed at batch %d on "
           .. "%d test images; the environment below names the GPU and the LibTorch. fp32 runs "
           .. "without TF32. The static 8-bit model runs its conv2d (groups 1) and linear layers "
           .. "on at::_int_mm, int8 x int8 -> int32, and requantizes on the GPU; its mode says "
           .. "`int8` when every quantized layer did, `simulated` when some (MobileNetV2's "
           .. "depthwise convolutions) ran as fake-quant simulation. Latency includes copying the "
           .. "batch to the GPU and the outputs back.\n\n")
          :format(args.epochs, args.limit_train, args.batch, args.limit_test)
          .. "| model | precision | accuracy % | ms per batch | speed-up over fp32 | "
          .. "training s |\n|---|---|---|---|---|---|\n" .. table.concat(lines, "\n"),
  rows = rows,
}
