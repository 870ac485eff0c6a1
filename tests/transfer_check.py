#!/usr/bin/python3
"""Transfer (issue 17): `simclr eval CK --data FOLDER --test-data FOLDER` and
`simclr finetune CK --data ...` read another labelled dataset than the one
the encoder was pretrained on, and score on its test split.

Pure Python (no NumPy). The encoder: `simclr train` for 2 steps on 256
Fashion-MNIST images (skipped when the dataset is missing). The other
dataset, written here as grey 28x28 PNGs in class folders: horizontal
against vertical stripes of random period and phase, 24 train and 24 test
images per class; what tells them apart is the stripes' orientation, which
any convolutional encoder's features separate linearly: the probe must score
>= 85 % (measured 94 %), 8 epochs of fine-tuning >= 75 % (measured 85-96 %;
chance is 50 %) (a probe that read the pretraining data instead, or mixed up
the test split, is at chance or fails). Also the errors: a missing --data
path, --test-data on a kind that has its own test files.
Usage: transfer_check.py <simclr> <scratch dir>
"""
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import zlib

FMNIST = "/usr/share/datasets/fashion-mnist"


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts"))
from checks import check  # noqa: E402


def write_png(path, rows):
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def stripes(rng, vertical, s=28):
    period = rng.randrange(4, 9)
    phase = rng.randrange(period)
    rows = []
    for y in range(s):
        row = []
        for x in range(s):
            t = (x if vertical else y) + phase
            v = 220 if (t % period) < period // 2 else 30
            row.append(max(0, min(255, v + rng.randrange(-20, 21))))
        rows.append(row)
    return rows


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    print("$", " ".join(cmd))
    print(p.stdout)
    return p


def main():
    simclr, scratch = sys.argv[1], sys.argv[2]
    if not os.path.isdir(FMNIST):
        print("SKIPPED: Fashion-MNIST is not installed at %s (./setup.sh installs dataset-fashion-mnist)" % FMNIST)
        return
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    rng = random.Random(3)
    for split, n in (("train", 24), ("test", 24)):
        for cls, vertical in (("horizontal", False), ("vertical", True)):
            d = os.path.join(scratch, split, cls)
            os.makedirs(d)
            for i in range(n):
                write_png(os.path.join(d, "%03d.png" % i), stripes(rng, vertical))

    config = os.path.join(scratch, "pre.json")
    run_dir = os.path.join(scratch, "run")
    with open(config, "w") as f:
        json.dump({"data": {"subset": 256, "workers": 1},
                   "model": {"arch": "resnet18", "width": 0.0625, "stem": "cifar"},
                   "optimizer": {"name": "lars", "lr": 0.5},
                   "train": {"epochs": 1, "batch": 32, "max_steps": 2, "threads": 2, "run_dir": run_dir},
                   "eval": {"linear_at_end": False, "raw_pixels": False, "random_init": False, "knn_every": 0}}, f)
    p = run([simclr, "train", config])
    check(p.returncode == 0, "a 2-step pretraining on Fashion-MNIST")

    train_dir, test_dir = os.path.join(scratch, "train"), os.path.join(scratch, "test")
    p = run([simclr, "eval", run_dir, "--data", train_dir, "--test-data", test_dir])
    check(p.returncode == 0, "simclr eval --data (a folder of class folders) exits 0")
    m = re.search(r"linear probe: top-1 ([0-9.]+)%", p.stdout)
    check(m is not None and float(m.group(1)) >= 85.0,
          "the transfer probe separates the stripes: top-1 %s%% >= 85%%" % (m.group(1) if m else "?"))
    check("48 train / 48 test images" in p.stdout, "the probe read the other dataset's 48 train and 48 test images")

    p = run([simclr, "finetune", run_dir, "--data", train_dir, "--test-data", test_dir, "--fraction", "1",
             "--epochs", "8", "--batch", "16", "--out", os.path.join(scratch, "ft")])
    check(p.returncode == 0, "simclr finetune --data exits 0")
    m = re.search(r"test top-1 ([0-9.]+)%", p.stdout)
    check(m is not None and float(m.group(1)) >= 75.0,
          "fine-tuned transfer: top-1 %s%% >= 75%%" % (m.group(1) if m else "?"))
    check("48 labelled images" in p.stdout, "fine-tuned on all 48 train images of the other dataset")

    # SimCLR v2's variant: fine-tune from the projection head's first layer (kept, pretrained)
    p = run([simclr, "finetune", run_dir, "--data", train_dir, "--test-data", test_dir, "--fraction", "1",
             "--epochs", "8", "--batch", "16", "--head-layers", "1", "--out", os.path.join(scratch, "ft1")])
    check(p.returncode == 0 and "+ 1 head layer(s)" in p.stdout, "simclr finetune --head-layers 1 exits 0")
    m = re.search(r"test top-1 ([0-9.]+)%", p.stdout)
    check(m is not None and float(m.group(1)) >= 75.0,
          "fine-tuned from the head's first layer: top-1 %s%% >= 75%%" % (m.group(1) if m else "?"))
    export = os.path.join(scratch, "enc.safetensors")
    ckpt = sorted(f for f in os.listdir(run_dir) if f.endswith(".ckpt"))[-1]
    p = run([os.path.join(os.path.dirname(simclr), "export_encoder"), os.path.join(run_dir, ckpt), "--out", export])
    check(p.returncode == 0, "export_encoder writes the encoder")
    p = run([simclr, "finetune", export, "--data", train_dir, "--test-data", test_dir, "--head-layers", "1"])
    check(p.returncode != 0 and "needs a training checkpoint" in p.stdout,
          "--head-layers on an exported encoder (no head) is an error saying why")

    p = run([simclr, "eval", run_dir, "--data", os.path.join(scratch, "nope")])
    check(p.returncode != 0 and "nope" in p.stdout and "does not exist" in p.stdout,
          "a missing --data path is an error naming it")
    p = run([simclr, "eval", run_dir, "--data", FMNIST, "--test-data", test_dir])
    check(p.returncode != 0 and "--test-data is for image-folder" in p.stdout,
          "--test-data on a dataset with its own test files is an error")


if __name__ == "__main__":
    main()
