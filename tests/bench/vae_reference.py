#!/usr/bin/env python3
"""The reference for qlab's `vae`: PyTorch's VAE example recipe (Adam lr
1e-3, batch 128, BCE summed over pixels + KL divergence) on Fashion-MNIST
pixels in [0, 1], written against the Python frontend of the same LibTorch.
Prints the average test loss per image after each epoch.

    /usr/bin/python3 tests/bench/vae_reference.py --epochs 3 --threads 2
"""
import argparse
import gzip

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def images(name):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        raw = f.read()
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).copy()).view(-1, 784).float() / 255


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def loss_sum(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    train, test = images("train-images-idx3-ubyte.gz"), images("t10k-images-idx3-ubyte.gz")
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(train)).split(128):
            x = train[idx]
            opt.zero_grad()
            recon, mu, logvar = model(x)
            loss = loss_sum(recon, x, mu, logvar)
            loss.backward()
            opt.step()
        model.eval()
        total = 0.0
        with torch.no_grad():
            for x in test.split(1000):
                recon, mu, logvar = model(x)
                total += loss_sum(recon, x, mu, logvar).item()
        print(f"epoch {epoch + 1}: average test loss per image {total / len(test):.4f}", flush=True)


if __name__ == "__main__":
    main()
