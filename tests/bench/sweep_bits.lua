-- The sweep of tests/bench/sweep_bits.sh: LeNet on Fashion-MNIST, static
-- post-training quantization on oneDNN, weight bits x activation bits,
-- accuracy only. 25 points on one cached baseline.
local args = qlab.args{ epochs = 3 }
qlab.sweep{
  name = "bench_sweep_bits",
  base = {
    model = "lenet",
    dataset = { name = "fashion-mnist" },
    train = { epochs = args.epochs },
    quantizer = { name = "static" },
    backend = { name = "onednn" },
    metrics = { names = { "accuracy" } },
  },
  grid = {
    ["quantizer.weight_bits"] = { 1, 2, 4, 8, 16 },
    ["quantizer.activation_bits"] = { 1, 2, 4, 8, 16 },
  },
}
