-- Seed 003's starting point: VGG16 (with batch norm) fp32 against W8A8, the
-- seed's first table (accuracy before and after, sizes, compression ratio),
-- here on real int8 kernels with the speed-up measured too.
--
--   qlab sweep scripts/seed003_vgg16_w8a8.lua                   -- quick: 200 steps
--   qlab sweep scripts/seed003_vgg16_w8a8.lua -- epochs=30 limit_train=0 limit_test=0
-- lr 0.01: at the recipe's 0.05, VGG16 stayed at chance level for 200 steps
-- here (4.34 -> 2.12 loss, 11.85% accuracy).
local args = qlab.args{ epochs = 4, limit_train = 6400, limit_test = 2000, dataset = "cifar10", lr = 0.01 }

local row = qlab.evaluate{
  sweep = "seed003_vgg16",
  model = "vgg16",
  dataset = { name = args.dataset, fallback = "fashion-mnist",
              limit_train = args.limit_train, limit_test = args.limit_test },
  train = { epochs = args.epochs, lr = args.lr },
  quantizer = { name = "static" },
  backend = { name = "onednn" },
  metrics = { names = { "accuracy", "loss", "size", "latency" } },
}
assert(row.status == "ok", row.message)
local b = row.baseline

qlab.report{
  name = "seed003_vgg16_w8a8",
  title = "VGG16: fp32 against W8A8 static int8",
  intro = ("VGG16 with batch norm, trained %d epochs (SGD, lr %g, cosine) on %s of %s, then "
           .. "quantized statically to W8A8 and run on oneDNN's int8 kernels.\n\n"
           .. "| | fp32 | W8A8 int8 |\n|---|---:|---:|\n"
           .. "| test accuracy | %.2f%% | %.2f%% |\n| model size | %.2f MB | %.2f MB |\n"
           .. "| compression ratio | | %.2fx |\n| latency, batch of 64 | %.1f ms | %.1f ms (A/B %.2fx) |")
          :format(args.epochs, args.lr,
                  args.limit_train > 0
                    and ("%d images (%d steps of 128)"):format(args.limit_train, args.epochs * math.ceil(args.limit_train / 128))
                    or "all images", b.dataset,
                  b.metrics.accuracy, row.metrics.accuracy, b.metrics.size_bytes / 1e6,
                  row.metrics.size_bytes / 1e6, b.metrics.size_bytes / row.metrics.size_bytes,
                  b.metrics.latency_ms, row.metrics.latency_ms, row.metrics.speedup_vs_fp32),
  rows = { row },
  plots = { { kind = "curves", name = "training", title = "Training loss", y = "loss" } },
}
