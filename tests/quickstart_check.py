#!/usr/bin/python3
"""`simclr quickstart`, scaled down: the calibration and the exact repeat (issue 18).
Usage: quickstart_check.py <simclr> <scratch dir>

The main job with its embedded config, made small by --set overrides (512
training images, batch 64, width 1/16, one L2 value, 20 L-BFGS iterations;
the test split stays the full 10 000 images), one thread, --budget 10 (the
minimum, 3 epochs, or a few more on a fast machine):
  1. The output says how the epoch count was chosen (the step time and the
     evaluation's estimated cost) and prints the command that repeats the run;
     results.json records the same (calibration.repeat, the estimate).
  2. That command, run as printed (only the program path replaced), gives the
     same three accuracies and the same epoch mean losses, to the last digit:
     the timing chose the epoch count and nothing else.
  3. The precision: bf16 by itself where the CPU has AVX512-BF16 or AMX and
     there is no CUDA device (the output says so), fp32 elsewhere; the
     calibration timed steps of that precision (results.json
     calibration.step_precision).
  The estimate of the evaluation and the measured time are printed, not
  compared (a timing).
Prints SKIPPED when Fashion-MNIST is not installed."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts"))
from checks import fail, check  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"
SMALL = ["data.subset=512", "train.batch=64", "model.width=0.0625", "eval.l2_grid=[0.0001]", "eval.max_iter=20",
         "train.threads=1", "data.workers=1"]


def run(cmd, what):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if p.returncode != 0:
        fail("%s: status %d:\n%s" % (what, p.returncode, p.stdout))
    return p.stdout


def numbers(out):
    acc = re.findall(r"^\s+(SimCLR encoder|random-init encoder|raw pixels)\s+([0-9.]+%)", out, re.M)
    losses = re.findall(r"^epoch \d+/\d+ done: mean loss ([0-9.]+)", out, re.M)
    return acc, losses


def main():
    simclr, scratch = sys.argv[1], sys.argv[2]
    if not os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")) and \
            not os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte")):
        print("SKIPPED: Fashion-MNIST not installed at %s (Debian: dataset-fashion-mnist)" % FMNIST)
        return
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    first = os.path.join(scratch, "first")
    cmd = [simclr, "quickstart", "--budget", "10", "--run-dir", first]
    for s in SMALL:
        cmd += ["--set", s]
    out = run(cmd, "quickstart --budget 10")
    m = re.search(r"^calibration: ([0-9.]+) s/step, evaluation about (\S+) on this machine -> ([0-9]+) epochs ",
                  out, re.M)
    check(m is not None, "the calibration line gives the step time, the evaluation estimate and the epochs:\n" +
          out[:2000])
    n = m.group(3)
    check(int(n) >= 3, "at least the minimum of 3 epochs (%s)" % n)
    r = re.search(r"^epochs: %s \(calibration\); to repeat this run exactly: (simclr quickstart .*)$" % n, out, re.M)
    check(r is not None, "the output names the command that repeats the run")
    repeat = r.group(1)
    check(repeat.startswith("simclr quickstart --epochs %s --run-dir %s" % (n, first)) and
          all(("--set " + s) in repeat for s in SMALL), "... with --epochs 3, the run directory and every --set: "
          + repeat)
    check(("  repeat exactly          " + repeat) in out, "the summary repeats it")
    res = json.load(open(os.path.join(first, "results.json")))
    cal = res.get("calibration", {})
    check(cal.get("repeat") == repeat and cal.get("epochs_from") == "calibration" and
          cal.get("eval_estimate_seconds", 0) > 0 and cal.get("seconds_per_step", 0) > 0,
          "results.json records the calibration: %s" % cal)
    # 3. the precision: bf16 by itself on a CPU with oneDNN's bf16 convolution kernels
    #    (AVX512-BF16 or AMX, no CUDA device), fp32 elsewhere; the calibration timed
    #    steps of the precision the run took
    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    except OSError:
        pass
    want = "bf16" if (flags & {"avx512_bf16", "amx_bf16"}) and "CUDA: available" not in out else "fp32"
    took = json.load(open(os.path.join(first, "config.json")))["train"].get("precision", "fp32")
    check(took == want and (("\nprecision: bf16 (" in out) == (want == "bf16")),
          "precision %s on this CPU (flags %s): the run took %s" %
          (want, sorted(flags & {"avx512_bf16", "amx_bf16", "avx512f"}), took))
    check(cal.get("step_precision") == want, "the calibration timed %s steps: %s" % (want, cal))
    # (how close the estimate comes is a timing, not asserted: printed for the log)
    print("   evaluation: estimated %.1f s, measured %.1f s" % (cal["eval_estimate_seconds"], res["eval_seconds"]))
    acc1, loss1 = numbers(out)
    check(len(acc1) == 3 and len(loss1) == int(n), "three accuracies and three epoch losses: %s %s" % (acc1, loss1))

    # the repeat, as printed (its run directory is the first's: that run moves to first.prev)
    argv = shlex.split(repeat)
    out2 = run([simclr] + argv[1:], "the repeat command")
    check("calibration:" not in out2 and ("epochs: %s (--epochs); to repeat this run exactly: " % n) + repeat in out2,
          "the repeat skips the calibration and prints the same command")
    acc2, loss2 = numbers(out2)
    check(acc2 == acc1 and loss2 == loss1, "the repeat gives the same accuracies %s and epoch losses %s" %
          (acc2, loss2))
    check(os.path.isdir(first + ".prev"), "the first run was kept as %s.prev" % first)


if __name__ == "__main__":
    main()
