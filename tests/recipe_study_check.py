#!/usr/bin/python3
"""benchmarks/recipe_study.sh (issue 18): the study's commands and one tiny variant.
Usage: recipe_study_check.py <simclr> <recipe_study.sh> <scratch dir>

  1. --dry-run prints one `simclr quickstart` command per variant: the base
     recipe plus every non-base value of the five factors (1 + 3 + 5 + 2 + 2 +
     2 = 15), each with --set eval.holdout=0.1 and its one override; --only
     narrows to a factor or a comma-separated list of factors and variants;
     --baselines-once leaves the two baselines to the base run; nothing is
     run or written.
  2. One variant (--only tau=0.2), made tiny by --set (512 training images,
     batch 64, width 1/16, one L2 value, 10 L-BFGS iterations, one thread),
     1 epoch, with data.path pointing at a folder that holds only the training
     files: it succeeds (the test split is never opened), its run used
     loss.temperature 0.2 and scored on 51 held-out images (round(0.1 * 512)),
     results.json and the metrics lines say "holdout", and the table printed
     (and written to study.md) has its row with three accuracies.
  3. --only base,tau=0.2 --baselines-once, as tiny: the base run has the two
     baselines, the tau=0.2 run does not run them (its summary says so,
     results.json lacks them) and its row shows "-" for them.
Prints SKIPPED when Fashion-MNIST is not installed."""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts"))
from checks import fail, check  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"
SMALL = ["data.subset=512", "train.batch=64", "model.width=0.0625", "eval.l2_grid=[0.0001]", "eval.max_iter=10",
         "train.threads=1", "data.workers=1"]


def run(cmd, what):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=250)
    if p.returncode != 0:
        fail("%s: status %d:\n%s\n%s" % (what, p.returncode, p.stdout, p.stderr))
    return p.stdout  # (the study's progress lines go to stderr; the table alone to stdout)


def main():
    simclr, script, scratch = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    out = os.path.join(scratch, "out")

    # 1. the commands
    dry = run(["bash", script, "--dry-run", "--simclr", simclr, "--out", out, "--epochs", "2"], "--dry-run")
    cmds = [l for l in dry.splitlines() if l.strip()]
    check(len(cmds) == 15, "15 variants (base + 14 one-factor changes): %d\n%s" % (len(cmds), dry))
    check(all(" quickstart --epochs 2 " in c and "eval.holdout=0.1" in c for c in cmds),
          "each a quickstart with --epochs 2 and eval.holdout=0.1")
    for s in ["loss.temperature=0.1", "loss.temperature=1.0", "optimizer.lr=0.6", "optimizer.lr=2.4",
              "optimizer.lr=1.2", "optimizer.lr=4.8", "optimizer.lr=19.2",
              "train.batch=128", "train.batch=512", "model.width=0.125", "model.width=0.5"]:
        check(sum(("--set " + s + " ") in (c + " ") for c in cmds) == 1,
              "one command sets %s" % s)
    check(sum("crop_scale=" in c for c in cmds) == 2 and "0.08" in dry, "two crop-scale variants (0.08, 0.4)")
    check(not os.path.exists(out), "--dry-run writes nothing")
    only = run(["bash", script, "--dry-run", "--simclr", simclr, "--only", "batch", "--budget", "30"], "--only")
    lines = [l for l in only.splitlines() if l.strip()]
    check(len(lines) == 3 and all("--budget 30" in l for l in lines), "--only batch: base, 128, 512:\n" + only)
    many = run(["bash", script, "--dry-run", "--simclr", simclr, "--only", "base,tau=0.2,lr,tau=0.2",
                "--baselines-once"], "--only a list")
    lines = [l for l in many.splitlines() if l.strip()]
    check(len(lines) == 7 and "/base " in lines[0] and "loss.temperature=0.2" in lines[1] and
          [l.split("optimizer.lr=")[1].split()[0] for l in lines[2:]] == ["0.6", "1.2", "2.4", "4.8", "19.2"],
          "--only base,tau=0.2,lr,tau=0.2: base, tau 0.2, the five other lr values, each once, in order:\n" + many)
    check("eval.raw_pixels=false" not in lines[0] and
          all("eval.random_init=false" in l and "eval.raw_pixels=false" in l for l in lines[1:]),
          "--baselines-once: the baselines run in the base variant only:\n" + many)
    p = subprocess.run(["bash", script, "--dry-run", "--only", "depth"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    check(p.returncode != 0 and "unknown factor" in p.stdout, "an unknown factor is an error: " + p.stdout)

    if not os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")):
        print("SKIPPED: Fashion-MNIST not installed at %s (Debian: dataset-fashion-mnist)" % FMNIST)
        return
    # 2. one tiny variant, with the test split's files absent
    data = os.path.join(scratch, "fmnist-train-only")
    os.makedirs(data)
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]:
        os.symlink(os.path.join(FMNIST, f), os.path.join(data, f))
    cmd = ["bash", script, "--simclr", simclr, "--out", out, "--epochs", "1", "--only", "tau=0.2",
           "--set", "data.path=" + data]
    for s in SMALL:
        cmd += ["--set", s]
    table = run(cmd, "recipe_study.sh --only tau=0.2")
    run_dir = os.path.join(out, "tau=0.2")
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    check(cfg["loss"]["temperature"] == 0.2 and cfg["eval"]["holdout"] == 0.1, "the variant's config: %s %s" %
          (cfg["loss"], cfg["eval"]))
    res = json.load(open(os.path.join(run_dir, "results.json")))
    check(res.get("split") == "holdout", "results.json: split holdout: %s" % res.get("split"))
    for k in ["encoder", "random_init", "raw_pixels"]:
        check(res[k].get("split") == "holdout" and res[k]["test_images"] == 51 and res[k]["train_images"] == 461,
              "%s probe: 461 train / 51 held-out images: %s" % (k, res[k]))
    log = open(os.path.join(out, "tau=0.2.log")).read()
    check("linear probe, held-out top-1" in log and "test top-1" not in log, "the summary says held-out")
    ev = [e for e in (json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))) if e.get("eval") == "linear"]
    check(len(ev) == 3 and all(e.get("split") == "holdout" for e in ev), "three eval lines with split holdout")
    row = re.search(r"^\| tau=0\.2 \| loss\.temperature=0\.2 \| 1 \| [^|]+ \| \d+ \| ([0-9.]+)% \| ([0-9.]+)% \| "
                    r"([0-9.]+)% \|$", table, re.M)
    check(row is not None, "the table has the variant's row:\n" + table)
    check(abs(float(row.group(1)) - 100 * res["encoder"]["linear"]["top1"]) < 0.006,
          "the row's SimCLR top-1 is results.json's")
    check("held-out top-1" in table.splitlines()[0], "the header says held-out")
    check(open(os.path.join(out, "study.md")).read() == table, "study.md holds the same table")
    print(table)

    # 3. --baselines-once: the other variants skip the two baselines (not run, "-" in the table)
    out2 = os.path.join(scratch, "out_once")
    cmd = ["bash", script, "--simclr", simclr, "--out", out2, "--epochs", "1", "--only", "base,tau=0.2",
           "--baselines-once", "--set", "data.path=" + data]
    for s in SMALL:
        cmd += ["--set", s]
    table2 = run(cmd, "recipe_study.sh --only base,tau=0.2 --baselines-once")
    res_b = json.load(open(os.path.join(out2, "base", "results.json")))
    res_t = json.load(open(os.path.join(out2, "tau=0.2", "results.json")))
    check("random_init" in res_b and "raw_pixels" in res_b, "the base run has both baselines")
    check("random_init" not in res_t and "raw_pixels" not in res_t and "encoder" in res_t,
          "the tau=0.2 run skipped them: %s" % sorted(res_t))
    log2 = open(os.path.join(out2, "tau=0.2.log")).read()
    check("random-init encoder   not run (eval.random_init false)" in log2 and
          "raw pixels            not run (eval.raw_pixels false)" in log2 and "random-init encoder:" not in log2,
          "its summary says the baselines were not run:\n" + log2[-1500:])
    check(re.search(r"^\| tau=0\.2 \| [^|]+ \| 1 \| [^|]+ \| \d+ \| [0-9.]+% \| - \| - \|$", table2, re.M) and
          re.search(r"^\| base \| [^|]+ \| 1 \| [^|]+ \| \d+ \| [0-9.]+% \| [0-9.]+% \| [0-9.]+% \|$", table2, re.M),
          "the table: three accuracies for base, '-' for the skipped baselines:\n" + table2)


if __name__ == "__main__":
    main()
