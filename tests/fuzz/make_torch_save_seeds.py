#!/usr/bin/env python3
"""Writes the torch.save seeds and test files with PyTorch's own torch.save
(Debian's python3-torch), so that qlab's reader is tested on real files:

    /usr/bin/python3 tests/fuzz/make_torch_save_seeds.py

corpus/torch_save/ (fuzz_torch_save's seeds, read by the unit tests too):
  fuzz_graph.pt        the state_dict of fuzz_torch_save's graph, every
                       value arange(n) / 1000 + k (k counts the tensors)
  fuzz_graph.pkl       its pickle alone, for the fuzzer's pickle mode
  views_params.pt      the same, saved with keep_vars=True (Parameters),
                       classifier.weight a transposed view of a bigger
                       storage, features.0.bias as float64
../malformed/weights/ (the malformed-input corpus):
  whole_module.pt      torch.save(model): names the global __main__.Fuzz
  zip_bomb.pt          a data.pkl that deflates 4000 to 1
  missing_storage.pt   fuzz_graph.pt without its record data/0
  legacy.pt            the pre-1.6 format (_use_new_zipfile_serialization=False)
"""
import io
import os
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "corpus", "torch_save")
BAD = os.path.join(HERE, "..", "malformed", "weights")


class Fuzz(torch.nn.Module):
    """fuzz_torch_save.cpp's graph under PyTorch's names."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU())
        self.classifier = torch.nn.Linear(4 * 8 * 8, 3)


def filled():
    m = Fuzz()
    with torch.no_grad():
        for k, p in enumerate(m.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) / 1000 + k)
    return m


def main():
    os.makedirs(SEEDS, exist_ok=True)
    os.makedirs(BAD, exist_ok=True)
    m = filled()
    torch.save(m.state_dict(), os.path.join(SEEDS, "fuzz_graph.pt"))
    with zipfile.ZipFile(os.path.join(SEEDS, "fuzz_graph.pt")) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        with open(os.path.join(SEEDS, "fuzz_graph.pkl"), "wb") as f:
            f.write(z.read(pkl))
        sizes = {n.rsplit("/", 1)[1]: z.getinfo(n).file_size for n in z.namelist() if "/data/" in n}
        print("storage bytes by key (fuzz_torch_save.cpp's table):", sizes)
        with zipfile.ZipFile(os.path.join(BAD, "missing_storage.pt"), "w", zipfile.ZIP_STORED) as out:
            for n in z.namelist():
                if not n.endswith("/data/0"):
                    out.writestr(n, z.read(n))

    sd = m.state_dict(keep_vars=True)
    big = torch.arange(3 * 4 * 8 * 8 + 6, dtype=torch.float32) / 1000 + 3
    sd["classifier.weight"] = torch.nn.Parameter(big[6:].reshape(4 * 8 * 8, 3).t())
    sd["features.0.bias"] = sd["features.0.bias"].detach().double()
    torch.save(sd, os.path.join(SEEDS, "views_params.pt"))

    torch.save(m, os.path.join(BAD, "whole_module.pt"))
    with zipfile.ZipFile(os.path.join(BAD, "zip_bomb.pt"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00." + bytes(40_000_000))
    torch.save(m.state_dict(), os.path.join(BAD, "legacy.pt"), _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
