#!/usr/bin/env python3
"""The reference for qlab's training speed: LeNet on Fashion-MNIST in
PyTorch's Python frontend, the same recipe and data pipeline as qlab's
`lenet` (SGD lr 0.05 momentum 0.9, batch 64, inputs zero-padded to 32x32,
normalised by the training set's mean and std, tensors held in memory).

Run it with Debian's python3-torch (the same LibTorch as qlab):
    /usr/bin/python3 tests/bench/lenet_epoch_reference.py --epochs 3 --threads 2
It prints one line per epoch (seconds) and the test accuracy. With
--save FILE.safetensors it writes the trained state_dict as safetensors
(written here: Debian 12 has no python3-safetensors), and with --save-pt
FILE.pt as torch.save(model.state_dict()), for qlab's `[model] weights`; with --load FILE.safetensors it evaluates one that
`qlab export --weights` wrote (tests/bench/pytorch_weights_in.sh).
"""
import argparse
import gzip
import json
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        raw = f.read()
    ndims = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims).copy()


def load():
    xs = [idx("train-images-idx3-ubyte.gz"), idx("t10k-images-idx3-ubyte.gz")]
    ys = [idx("train-labels-idx1-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")]
    train = torch.from_numpy(xs[0].astype(np.float32) / 255)
    mean, std = train.mean(), train.std()
    # Pad before normalising, as qlab does: padding is black, like the background.
    def prep(x):
        x = F.pad(torch.from_numpy(x).unsqueeze(1), (2, 2, 2, 2)).float() / 255
        return (x - mean) / std
    return (prep(xs[0]), torch.from_numpy(ys[0].astype(np.int64)),
            prep(xs[1]), torch.from_numpy(ys[1].astype(np.int64)))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.AvgPool2d(2, 2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2, 2),
            nn.Conv2d(16, 120, 5), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def save_safetensors(state, path):
    """The safetensors layout: header length (u64 LE), JSON header, raw bytes."""
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        data = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_safetensors(path):
    """A safetensors file's tensors (the F32 ones a state_dict has), by name."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    return {name: torch.frombuffer(bytearray(data[e["data_offsets"][0]:e["data_offsets"][1]]),
                                   dtype=torch.float32).reshape(e["shape"])
            for name, e in header.items() if name != "__metadata__"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", help="write the trained state_dict here (.safetensors)")
    ap.add_argument("--save-pt", help="and here with torch.save(model.state_dict())")
    ap.add_argument("--load", help="evaluate this state_dict (.safetensors) instead of training")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    tx, ty, vx, vy = load()
    model = LeNet()
    if args.load:
        model.load_state_dict(load_safetensors(args.load))  # strict, as PyTorch's default
        args.epochs = 0
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(tx), generator=gen)
        for i in range(0, len(tx), 64):
            idx_ = order[i:i + 64]
            x, y = tx.index_select(0, idx_), ty.index_select(0, idx_)
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.item()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: {time.perf_counter() - t0:.3f} s", flush=True)
    model.eval()
    with torch.no_grad():
        acc = (model(vx).argmax(1) == vy).float().mean().item() * 100
    print(f"test accuracy {acc:.2f}%")
    if args.save:
        save_safetensors(model.state_dict(), args.save)
    if args.save_pt:
        torch.save(model.state_dict(), args.save_pt)


if __name__ == "__main__":
    main()
