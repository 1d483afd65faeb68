#!/usr/bin/env python3
"""One point of a bit-width sweep the way users run them before qlab: a
fresh Python process per point (the seed 003 shell loop), PyTorch's fake
quantization. It does the work a qlab sweep point does: load Fashion-MNIST,
build LeNet and load the float baseline, measure fp32 accuracy on the test
set, quantize the weights (symmetric, per output channel) to W bits,
calibrate activation ranges (min/max) on 32 batches of 64, and measure the
quantized model's accuracy.

    /usr/bin/python3 tests/bench/sweep_point_reference.py --weight-bits 4 --activation-bits 8 \\
        --checkpoint .qlab/cache/lenet-<hash>.pt

The checkpoint is qlab's cached LeNet baseline (qlab's tensor file:
"QLABTNS1", an 8-byte header length, a JSON index, raw tensors); without one
the weights are random, which changes the accuracies but not the time. tests/bench/sweep_bits.sh runs 25 points.
"""
import argparse
import json

import numpy as np
import torch
import torch.nn as nn

from lenet_epoch_reference import LeNet, load

CALIBRATION_BATCHES = 32
BATCH = 64


def load_baseline(model, path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"QLABTNS1":
        raise SystemExit(f"{path}: not a qlab checkpoint")
    n = int.from_bytes(raw[8:16], "little")
    index = json.loads(raw[16:16 + n])["tensors"]
    # qlab's LeNet names its layers as this one does (features.0, ...).
    state = model.state_dict()
    for name, e in index.items():
        if name not in state:
            raise SystemExit(f"{path}: tensor '{name}' is not one of LeNet's")
        start = 16 + n + e["offset"]
        data = np.frombuffer(raw[start:start + e["bytes"]], dtype=np.float32)
        state[name].copy_(torch.from_numpy(data.copy()).reshape(e["shape"]))


def fake_quant_weight(w, bits):
    if bits >= 32:
        return w
    if bits == 1:
        return w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True) * torch.sign(w)
    qmax = 2 ** (bits - 1) - 1
    scale = (w.abs().amax(dim=tuple(range(1, w.dim()))) / qmax).clamp_min(1e-12)
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -qmax - 1, qmax)


class ActivationQuant(nn.Module):
    """Observes min/max while calibrating, then fake-quantizes to `bits`."""

    def __init__(self, bits):
        super().__init__()
        self.bits, self.lo, self.hi, self.calibrating = bits, 0.0, 0.0, True

    def forward(self, x):
        if self.calibrating:
            self.lo, self.hi = min(self.lo, x.min().item()), max(self.hi, x.max().item())
            return x
        levels = 2 ** self.bits - 1
        scale = max(self.hi - self.lo, 1e-8) / levels
        zero = int(round(-self.lo / scale))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, levels)


def accuracy(model, x, y):
    with torch.no_grad():
        correct = sum((model(x[i:i + BATCH]).argmax(1) == y[i:i + BATCH]).sum().item()
                      for i in range(0, len(x), BATCH))
    return 100.0 * correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weight-bits", type=int, required=True)
    ap.add_argument("--activation-bits", type=int, required=True)
    ap.add_argument("--checkpoint", default="")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tx, _, vx, vy = load()
    model = LeNet().eval()
    if args.checkpoint:
        load_baseline(model, args.checkpoint)
    fp32 = accuracy(model, vx, vy)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(fake_quant_weight(m.weight, args.weight_bits))
    # An activation quantizer after every ReLU and on the input, as qlab's
    # static quantizer places them (each layer's input and output).
    quants = [ActivationQuant(args.activation_bits) for _ in range(6)]
    f = model.features
    q = nn.Sequential(quants[0], f[0], f[1], quants[1], f[2], f[3], f[4], quants[2], f[5],
                      f[6], f[7], quants[3], nn.Flatten(), model.classifier[0],
                      model.classifier[1], quants[4], model.classifier[2], quants[5])
    order = torch.randperm(len(tx), generator=torch.Generator().manual_seed(4242))
    with torch.no_grad():
        for b in range(CALIBRATION_BATCHES):
            q(tx.index_select(0, order[b * BATCH:(b + 1) * BATCH]))
    for a in quants:
        a.calibrating = False
    print(f"W{args.weight_bits}A{args.activation_bits}: fp32 {fp32:.2f}%, "
          f"fake-quant {accuracy(q, vx, vy):.2f}%")


if __name__ == "__main__":
    main()
