#!/usr/bin/env python3
"""LeNet and MNIST CNN as qlab builds them (plugins/models/), exported to
ONNX for ONNX Runtime, and timed in PyTorch's Python frontend on the same
LibTorch as qlab: the peers of qlab's fp32 rows in tests/bench/fp32_vs_onnxruntime.sh.

    /usr/bin/python3 tests/bench/fp32_reference_models.py --out DIR [--threads 2]

writes DIR/lenet.onnx and DIR/mnist_cnn.onnx (batch 64, random weights:
latency does not depend on them) and prints PyTorch's latency per batch.
"""
import argparse

import torch
import torch.nn as nn

from lenet_epoch_reference import LeNet
from mnist_cnn_int8_reference import median_ms

BATCH = 64


class MnistCnn(nn.Module):
    """PyTorch's examples/mnist network, qlab's `mnist_cnn`."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv2(torch.relu(self.conv1(x)))), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name, model, size in (("lenet", LeNet(), 32), ("mnist_cnn", MnistCnn(), 28)):
        model.eval()
        x = torch.randn(BATCH, 1, size, size)
        torch.onnx.export(model, x, f"{args.out}/{name}.onnx", input_names=["input"],
                          output_names=["output"], opset_version=13)
        print(f"{name}: PyTorch (Python, {args.threads} threads) {median_ms(model, x, 200):.3f} ms")


if __name__ == "__main__":
    main()
