#!/usr/bin/python3
"""Summarises a recipe study (benchmarks/recipe_study.sh) as a markdown table.

Usage: recipe_study.py <results dir>

Reads <dir>/variants.tsv (name<TAB>--set override, in run order) and each
variant's <dir>/<name>/results.json (written by `simclr quickstart`); prints
one row per variant: the override, epochs, pretraining wall time, views/s and
the linear-probe top-1 of the SimCLR encoder, the random-init encoder and raw
pixels on the split they were scored on (held-out with eval.holdout > 0).
A variant without results.json is a row saying so. Standard library only."""
import json
import os
import sys


def fmt_time(s):
    s = float(s)
    if s < 60:
        return "%.1f s" % s
    if s < 3600:
        return "%d min %02d s" % (s // 60, round(s % 60))
    return "%d h %02d min" % (s // 3600, round((s % 3600) / 60))


def pct(probe):
    lin = (probe or {}).get("linear", {})
    return "%.2f%%" % (100 * lin["top1"]) if "top1" in lin else "-"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    tsv = os.path.join(out, "variants.tsv")
    if not os.path.exists(tsv):
        sys.exit("recipe_study.py: no %s (run benchmarks/recipe_study.sh first)" % tsv)
    rows, splits, meta = [], set(), {}
    for line in open(tsv):
        line = line.rstrip("\n")
        if not line:
            continue
        name, _, setting = line.partition("\t")
        path = os.path.join(out, name, "results.json")
        if not os.path.exists(path):
            rows.append([name, setting or "(quickstart recipe)", "failed: no results.json (see %s.log)" % name,
                         "", "", "", "", ""])
            continue
        r = json.load(open(path))
        splits.add(r.get("split", "test"))
        meta = {"holdout": r.get("holdout", 0), "commit": r.get("commit", "?"), "cores": r.get("cores", "?"),
                "images": (r.get("encoder") or {}).get("test_images", "?"),
                "train_images": (r.get("encoder") or {}).get("train_images", "?")}
        rows.append([name, setting or "(quickstart recipe)", str(r.get("epochs", "?")),
                     fmt_time(r.get("pretrain_seconds", 0)), "%.0f" % r.get("views_per_second", 0),
                     pct(r.get("encoder")), pct(r.get("random_init")), pct(r.get("raw_pixels"))])
    split = "held-out" if splits == {"holdout"} else "/".join(sorted(splits)) or "held-out"
    head = ["variant", "override", "epochs", "pretrain time", "views/s", "SimCLR encoder %s top-1" % split,
            "random-init %s top-1" % split, "raw pixels %s top-1" % split]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    if meta:
        print()
        print("eval.holdout %s: probes trained on %s images, scored on %s held-out training images (the test "
              "split not opened); commit %s, %s cores." % (meta["holdout"], meta["train_images"], meta["images"],
                                                          meta["commit"], meta["cores"]))


if __name__ == "__main__":
    main()
