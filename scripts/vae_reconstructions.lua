-- The VAE of seed 001 on Fashion-MNIST, fp32 against dynamic and static
-- int8: average test loss (BCE + KLD per image) of each, and pictures of
-- what each model reconstructs and what the float decoder samples.
--
--   qlab sweep scripts/vae_reconstructions.lua
--   qlab sweep scripts/vae_reconstructions.lua -- epochs=10 dataset=mnist
local args = qlab.args{ epochs = 3, dataset = "fashion-mnist", limit_train = 0 }

local rows = qlab.sweep{
  name = "vae",
  base = {
    model = "vae",
    dataset = { name = args.dataset, limit_train = args.limit_train },
    train = { epochs = args.epochs },
    backend = { name = "onednn" },
    metrics = { names = { "loss", "size", "latency" } },
  },
  grid = { ["quantizer.name"] = { "dynamic", "static" } },
}

local lines = {}
for _, r in ipairs(rows) do
  if r.status == "ok" then
    lines[#lines + 1] = ("- **%s %s**: test loss %.2f -> %.2f per image (%+.2f%%), size %.0f -> %.0f KiB.")
      :format(r.quantizer, r.mode, r.baseline.metrics.loss, r.metrics.loss,
              100 * (r.metrics.loss / r.baseline.metrics.loss - 1),
              r.baseline.metrics.size_bytes / 1024, r.metrics.size_bytes / 1024)
  end
end

qlab.report{
  name = "vae_reconstructions",
  title = "VAE: fp32 against dynamic and static int8",
  intro = ("The VAE of seed 001 (784-400-20-400-784), trained %d epochs on %s. Loss is binary "
           .. "cross-entropy summed over pixels plus KL divergence, averaged per test image; "
           .. "`accuracy` does not apply to a reconstruction model.\n\n"):format(args.epochs, args.dataset)
          .. table.concat(lines, "\n"),
  rows = rows,
  plots = {
    { kind = "images", name = "reconstructions", title = "Test images, their reconstructions, and samples from the prior",
      series = "point.label" },
    { kind = "curves", name = "training", title = "Training loss", y = "loss" },
  },
}
