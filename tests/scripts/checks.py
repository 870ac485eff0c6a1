"""tests/scripts/checks.py - the two helpers every scripted test uses: a check
that prints "ok: <what>" or "FAILED: <what>" and exits 1. Import with
    sys.path.insert(0, os.path.join(<tests dir>, "scripts")); from checks import fail, check
"""
import sys


def fail(what):
    print("FAILED:", what)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)
    print("ok:", what)


def write_tiny_config(path, images, lr, warmup_epochs, train):
    """The scripted tests' tiny run: a 16x16 grey IDX file, ResNet-18 at width
    1/16 (CIFAR stem), head 16-d, LARS at `lr`, every step logged, no
    evaluation; `train` holds the train section's keys (epochs, batch, ...)."""
    import json
    with open(path, "w") as f:
        json.dump({
            "data": {"dataset": "idx", "images": images, "channels": 1, "image_size": 16, "mean": [0.5],
                     "std": [0.25], "workers": 1},
            "model": {"arch": "resnet18", "width": 0.0625, "stem": "cifar"},
            "head": {"depth": 2, "out": 16},
            "optimizer": {"name": "lars", "lr": lr},
            "schedule": {"warmup_epochs": warmup_epochs},
            "train": dict({"log_interval": 1}, **train),
            "eval": {"knn_every": 0, "linear_at_end": False, "raw_pixels": False, "random_init": False},
        }, f, indent=1)
