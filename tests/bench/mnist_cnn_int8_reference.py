#!/usr/bin/env python3
"""The reference for qlab's static int8 MNIST CNN: the same network (seed
000) quantized the way PyTorch's Python frontend does it (fused conv+relu
and linear+relu, the onednn qconfig, 4 calibration batches), on the same
LibTorch, timed per batch of 64 against its fp32 self. Weights and inputs
are random: the time does not depend on what the weights learned.

    /usr/bin/python3 tests/bench/mnist_cnn_int8_reference.py --threads 2
"""
import argparse
import time

import torch
import torch.ao.quantization as tq
import torch.nn as nn


class MnistCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv1, self.relu1 = nn.Conv2d(1, 32, 3), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(32, 64, 3), nn.ReLU()
        self.pool, self.dropout1 = nn.MaxPool2d(2), nn.Dropout(0.25)
        self.fc1, self.relu3, self.dropout2 = nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(self.quant(x)))))
        x = torch.flatten(self.dropout1(self.pool(x)), 1)
        return self.dequant(self.fc2(self.dropout2(self.relu3(self.fc1(x)))))


def median_ms(model, x, runs):
    with torch.no_grad():
        for _ in range(10):
            model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return sorted(times)[runs // 2] * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(0)
    fp32 = MnistCnn().eval()
    int8 = MnistCnn().eval()
    int8.load_state_dict(fp32.state_dict())
    int8.qconfig = tq.get_default_qconfig("onednn")
    int8 = tq.prepare(tq.fuse_modules(int8, [["conv1", "relu1"], ["conv2", "relu2"], ["fc1", "relu3"]]))
    with torch.no_grad():
        for _ in range(4):
            int8(torch.randn(64, 1, 28, 28))
    int8 = tq.convert(int8)
    x = torch.randn(64, 1, 28, 28)
    # Alternated twice, so that the machine's drift hits both sides.
    fp32_ms, int8_ms = [], []
    for _ in range(2):
        fp32_ms.append(median_ms(fp32, x, args.runs))
        int8_ms.append(median_ms(int8, x, args.runs))
    fp, q = sum(fp32_ms) / 2, sum(int8_ms) / 2
    print(f"fp32 {fp:.2f} ms, int8 {q:.2f} ms per batch of 64: {fp / q:.2f}x")


if __name__ == "__main__":
    main()
