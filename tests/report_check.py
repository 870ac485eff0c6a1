#!/usr/bin/python3
"""`simclr report RUN_DIR` (issue 17) on a run directory made up here, with
the line kinds train/run_log.h writes: 40 step lines, 4 epoch lines, kNN
lines, the quickstart's three linear-probe lines and results.json, and a last
line cut in the middle (a run still writing). Checks:
  - exit 0; the four PNGs exist, are PNG files of the size the script sets
    (8x6 in at 110 dpi = 880x660 for the loss plot, ...), and differ;
  - report.md holds the numbers of the run: the last step, the final linear
    top-1 of each probe (83.02 / 77.00 / 84.68 %), the kNN top-1, the skipped line;
  - a directory that does not exist, and one without metrics.jsonl: exit 2,
    a message naming it;
  - matplotlib missing (a stand-in package that fails to import, first on
    PYTHONPATH): exit 3, the message names python3-matplotlib.
Usage: report_check.py <simclr> <scratch dir>
"""
import json
import os
import shutil
import struct
import subprocess
import sys


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts"))
from checks import check  # noqa: E402


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def main():
    simclr, scratch = sys.argv[1], sys.argv[2]
    shutil.rmtree(scratch, ignore_errors=True)
    run = os.path.join(scratch, "run")
    os.makedirs(run)
    lines = []
    for s in range(1, 41):
        lines.append({"step": s, "epoch": s / 10, "loss": 5.0 - 0.05 * s, "lr": min(s, 10) * 0.03,
                      "views_per_s": 500 + s, "wait_frac": 0.1, "time_s": 0.5 * s})
        if s % 10 == 0:
            lines.append({"step": s, "epoch": s // 10, "epoch_loss": 5.0 - 0.05 * s + 0.2, "time_s": 0.5 * s})
            lines.append({"eval": "knn", "step": s, "epoch": s // 10, "top1": 0.6 + 0.05 * (s // 10), "top5": 0.9,
                          "k": 200, "temperature": 0.1, "seconds": 1.0})
    probes = [("SimCLR encoder", 0.8302), ("random-init encoder", 0.77), ("raw pixels", 0.8468)]
    for what, top1 in probes:
        lines.append({"eval": "linear", "what": what, "linear": {"top1": top1, "top5": 0.99}})
    with open(os.path.join(run, "metrics.jsonl"), "w") as f:
        for l in lines:
            f.write(json.dumps(l) + "\n")
        f.write('{"step": 41, "epoch": 4.1, "lo')  # being written
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump({"model": {"arch": "resnet18", "width": 0.25, "stem": "cifar"}, "head": {"out": 128},
                   "data": {"dataset": "fashion-mnist", "image_size": 28}, "optimizer": {"name": "lars"},
                   "temperature": 0.5, "train": {"epochs": 4, "batch": 256, "device": "cpu"}}, f)
    keys = {"SimCLR encoder": "encoder", "random-init encoder": "random_init", "raw pixels": "raw_pixels"}
    results = {keys[w]: {"what": w, "linear": {"top1": t, "top5": 0.99}} for w, t in probes}
    results.update({"pretrain_seconds": 20, "views_per_second": 512, "eval_seconds": 5, "total_seconds": 25,
                    "cores": 2, "commit": "abc"})
    with open(os.path.join(run, "results.json"), "w") as f:
        json.dump(results, f)

    p = subprocess.run([simclr, "report", run], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    print(p.stdout)
    check(p.returncode == 0, "simclr report exits 0")
    sizes = {}
    for name, size in (("report_loss.png", (880, 660)), ("report_speed.png", (880, 550)),
                       ("report_accuracy.png", (880, 440)), ("report_baselines.png", (770, 385))):
        path = os.path.join(run, name)
        check(os.path.exists(path), "%s written" % name)
        check(png_size(path) == size, "%s is a %dx%d PNG (got %s)" % (name, size[0], size[1], png_size(path)))
        sizes[name] = os.path.getsize(path)
        check(sizes[name] > 10000, "%s has content (%d bytes)" % (name, sizes[name]))
    check(len(set(sizes.values())) == 4, "the four plots differ")
    report = open(os.path.join(run, "report.md")).read()
    for needle in ("step 40", "83.02%", "77.00%", "84.68%", "kNN monitor: top-1 80.00%", "1 unreadable lines",
                   "![Loss and learning rate](report_loss.png)", "resnet18 width 0.25"):
        check(needle in report, "report.md contains %r" % needle)

    p = subprocess.run([simclr, "report", os.path.join(scratch, "nope")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    check(p.returncode == 2 and "nope" in p.stdout and "not a directory" in p.stdout,
          "a missing directory: exit 2 naming it (%d: %s)" % (p.returncode, p.stdout.strip()))
    empty = os.path.join(scratch, "empty")
    os.makedirs(empty)
    p = subprocess.run([simclr, "report", empty], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(p.returncode == 2 and "no metrics.jsonl" in p.stdout,
          "a directory without metrics.jsonl: exit 2 (%d: %s)" % (p.returncode, p.stdout.strip()))

    fake = os.path.join(scratch, "fake_site", "matplotlib")
    os.makedirs(fake)
    with open(os.path.join(fake, "__init__.py"), "w") as f:
        f.write("raise ImportError('stand-in: matplotlib is not installed')\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(fake))
    p = subprocess.run([simclr, "report", run], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    check(p.returncode == 3 and "python3-matplotlib" in p.stdout,
          "matplotlib missing: exit 3 naming python3-matplotlib (%d: %s)" % (p.returncode, p.stdout.strip()))


if __name__ == "__main__":
    main()
