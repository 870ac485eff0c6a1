#!/usr/bin/python3
"""Optional check (not in CI; needs torch + torchvision): an export_encoder
output loads into torchvision's ResNet and gives simclr embed's features.

Usage: export_torchvision_check.py <simclr> <export_encoder> <scratch dir>

For ResNet-18 and ResNet-50 at width 1 (ImageNet stem) it trains one step with
`simclr train` on random images (so BN statistics are not at their init),
exports, and loads the file into torchvision.models.resnet18() / resnet50()
with load_state_dict(strict=False): the only missing keys must be fc.weight
and fc.bias, and nothing unexpected. With fc replaced by Identity, the eval-
mode forward on a few images (normalised with the manifest's mean/std) must
match `simclr embed` within 1e-4 relative. A --with-head export must add only
projection_head.* as unexpected keys. A width-0.125 CIFAR-stem ResNet-18 is
loaded into torchvision's ResNet class with scaled widths (same module names).
The .safetensors file is parsed here (torch 1.13 has no safetensors reader).
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    np_dtype = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
    sd = {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        raw = data[8 + n + b:8 + n + en]
        if e["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, np_dtype[e["dtype"]])
        sd[name] = torch.from_numpy(a.reshape(e["shape"]).copy())
    return sd, json.loads(meta["simclr_manifest"])


class ScaledResNet(ResNet):
    """torchvision's ResNet with every width scaled (SimCLR's width multiplier)
    and optionally the CIFAR stem; module names stay torchvision's."""

    def __init__(self, depth, width, stem):
        block, layers = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
                         50: (Bottleneck, [3, 4, 6, 3])}[depth]
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.dilation, self.groups, self.base_width = 1, 1, 64
        c = [max(1, round(b * width)) for b in (64, 128, 256, 512)]
        self.inplanes = c[0]
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, c[0], 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, c[0], layers[0])
        self.layer2 = self._make_layer(block, c[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, c[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, c[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c[3] * block.expansion, 10)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("FAILED:", " ".join(cmd), "\n", r.stdout, r.stderr)
        sys.exit(1)
    return r


def check(cond, what):
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        sys.exit(1)


def train_and_export(simclr, export, d, arch, width, stem, size, rng, extra=()):
    os.makedirs(d)
    imgs = rng.integers(0, 256, size=(16, size, size, 3), dtype=np.uint8)
    with open(os.path.join(d, "train-images"), "wb") as f:
        f.write(bytes([0, 0, 8, 4]) + struct.pack(">IIII", *imgs.shape) + imgs.tobytes())
    cfg = {
        "data": {"dataset": "idx", "images": os.path.join(d, "train-images"), "channels": 3, "image_size": size,
                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "workers": 1},
        "model": {"arch": arch, "width": width, "stem": stem},
        "train": {"epochs": 1, "batch": 4, "max_steps": 1, "threads": 2, "run_dir": os.path.join(d, "run")},
        "eval": {"knn_every": 0, "linear_at_end": False, "raw_pixels": False, "random_init": False},
    }
    with open(os.path.join(d, "run.json"), "w") as f:
        json.dump(cfg, f)
    run([simclr, "train", os.path.join(d, "run.json")])
    ckpt = os.path.join(d, "run", sorted(x for x in os.listdir(os.path.join(d, "run")) if x.endswith(".ckpt"))[-1])
    out = os.path.join(d, "enc.safetensors")
    run([export, ckpt, "--out", out] + list(extra))
    np.save(os.path.join(d, "imgs.npy"), rng.integers(0, 256, size=(3, size, size, 3), dtype=np.uint8))
    run([simclr, "embed", "--weights", out, "--data", os.path.join(d, "imgs.npy"), "--out", os.path.join(d, "f.npy")])
    return out


def compare(model, d, manifest, label):
    model.fc = nn.Identity()
    model.eval()
    imgs = np.load(os.path.join(d, "imgs.npy")).astype(np.float32) / 255.0
    mean = np.array(manifest["input"]["mean"], np.float32)
    std = np.array(manifest["input"]["std"], np.float32)
    x = torch.from_numpy(((imgs - mean) / std).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        ref = model.double()(x.double()).numpy()
    got = np.load(os.path.join(d, "f.npy")).astype(np.float64)
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    check(got.shape == ref.shape and err <= 1e-4, "%s: torchvision forward vs simclr embed, rel err %.2e" % (label, err))


def main():
    simclr, export, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = np.random.default_rng(7)
    print("torch", torch.__version__, "torchvision", torchvision.__version__)
    for arch in ("resnet18", "resnet50"):
        d = os.path.join(work, arch)
        out = train_and_export(simclr, export, d, arch, 1.0, "imagenet", 64, rng)
        sd, manifest = load_safetensors(out)
        model = getattr(torchvision.models, arch)()
        res = model.load_state_dict(sd, strict=False)
        check(sorted(res.missing_keys) == ["fc.bias", "fc.weight"] and not res.unexpected_keys,
              "%s: load_state_dict(strict=False): missing %s, unexpected %s" % (arch, res.missing_keys,
                                                                                  res.unexpected_keys))
        check(int(model.bn1.num_batches_tracked) == 1, arch + ": num_batches_tracked loaded as int64 = 1")
        compare(model, d, manifest, arch)

    d = os.path.join(work, "resnet18-head")
    out = train_and_export(simclr, export, d, "resnet18", 1.0, "imagenet", 64, rng, ["--with-head"])
    sd, manifest = load_safetensors(out)
    res = torchvision.models.resnet18().load_state_dict(sd, strict=False)
    check(sorted(res.missing_keys) == ["fc.bias", "fc.weight"] and res.unexpected_keys and
          all(k.startswith("projection_head.") for k in res.unexpected_keys),
          "resnet18 --with-head: unexpected keys are only projection_head.* (%d)" % len(res.unexpected_keys))

    d = os.path.join(work, "resnet18-w0.125-cifar")
    out = train_and_export(simclr, export, d, "resnet18", 0.125, "cifar", 16, rng)
    sd, manifest = load_safetensors(out)
    model = ScaledResNet(18, 0.125, "cifar")
    res = model.load_state_dict(sd, strict=False)
    check(sorted(res.missing_keys) == ["fc.bias", "fc.weight"] and not res.unexpected_keys,
          "resnet18 width 0.125 cifar stem: only fc.* missing")
    compare(model, d, manifest, "resnet18 width 0.125 cifar stem")
    print("export_torchvision_check: all checks passed")


if __name__ == "__main__":
    main()
