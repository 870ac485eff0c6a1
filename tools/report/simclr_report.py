#!/usr/bin/python3
"""simclr report <run_dir>: plots and a summary of a training run.

Called by `simclr report` (tools/cli/report_cli.cpp), which finds this file
and the interpreter; runnable by hand as well:

    /usr/bin/python3 tools/report/simclr_report.py RUN_DIR [--out DIR]

Reads RUN_DIR/metrics.jsonl (one JSON object per line, as train/run_log.h
writes them: step lines with loss, lr, views_per_s, wait_frac, time_s; epoch
lines with epoch_loss; eval lines with eval = knn | linear), config.json and,
when the run was a quickstart, results.json. A line being written (a run
still going) is skipped. Writes into --out (default RUN_DIR):

    report_loss.png        loss (per step and epoch mean) and learning rate against step
    report_speed.png       views/s and the fraction of time waiting for input, against step
    report_accuracy.png    kNN top-1 against epoch and the final linear top-1 (when the kNN monitor ran)
    report_baselines.png   final linear top-1: the encoder against its baselines (when evaluated)
    report.md              config, machine, wall time, final numbers, the plots

Needs matplotlib (Debian: python3-matplotlib); exits 3 naming the package
when it is missing, 2 on a run directory it cannot read.
"""
import json
import os
import sys


def die(code, msg):
    print("simclr report: error: " + msg, file=sys.stderr)
    sys.exit(code)


def read_metrics(path):
    steps, epochs, evals, events = [], [], [], []
    bad = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                m = json.loads(line)
            except ValueError:
                bad += 1  # a line being written by a run that is still going
                continue
            if not isinstance(m, dict):
                bad += 1
                continue
            if "eval" in m:
                evals.append(m)
            elif "event" in m:
                events.append(m)
            elif "epoch_loss" in m:
                epochs.append(m)
            elif "loss" in m and "step" in m:
                steps.append(m)
    return steps, epochs, evals, events, bad


def load_json(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError:
        return None


def main(argv):
    args = list(argv)
    out_dir = None
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            die(2, "--out needs a directory")
        out_dir = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1 or args[0].startswith("-"):
        die(2, "usage: simclr report RUN_DIR [--out DIR]")
    run_dir = args[0]
    if not os.path.isdir(run_dir):
        die(2, "'%s' is not a directory (give a run directory: train.run_dir)" % run_dir)
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(metrics_path):
        die(2, "'%s' has no metrics.jsonl: not a run directory, or the run has not logged a step yet" % run_dir)
    out_dir = out_dir or run_dir
    os.makedirs(out_dir, exist_ok=True)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as e:
        die(3, "plotting needs matplotlib, which this Python (%s) cannot import (%s): install the Debian package "
               "python3-matplotlib (apt-get install python3-matplotlib; ./setup.sh does)" % (sys.executable, e))

    steps, epochs, evals, events, bad = read_metrics(metrics_path)
    if not steps:
        die(2, "'%s' holds no step lines yet: nothing to plot" % metrics_path)
    config = load_json(os.path.join(run_dir, "config.json")) or {}
    results = load_json(os.path.join(run_dir, "results.json"))
    plt.rcParams.update({"figure.dpi": 110, "font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    written = []

    # ---- loss and learning rate
    x = [m["step"] for m in steps]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    a1.plot(x, [m["loss"] for m in steps], lw=0.8, color="tab:blue", alpha=0.6, label="loss (per logged step)")
    if epochs:
        a1.plot([m["step"] for m in epochs], [m["epoch_loss"] for m in epochs], "o-", color="tab:red", ms=4,
                label="epoch mean")
    a1.set_ylabel("NT-Xent loss")
    a1.set_title("Training loss")
    a1.legend(loc="upper right")
    a2.plot(x, [m.get("lr", float("nan")) for m in steps], color="tab:green")
    a2.set_ylabel("learning rate")
    a2.set_xlabel("step")
    fig.tight_layout()
    p = os.path.join(out_dir, "report_loss.png")
    fig.savefig(p)
    plt.close(fig)
    written.append(("Loss and learning rate", p))

    # ---- speed and input wait
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    a1.plot(x, [m.get("views_per_s", float("nan")) for m in steps], color="tab:purple")
    a1.set_ylabel("views / s")
    a1.set_title("Throughput (since the previous logged step)")
    a1.set_ylim(bottom=0)
    waits = [m.get("wait_frac") for m in steps]
    if any(w is not None for w in waits):
        a2.plot(x, [100.0 * w if w is not None else float("nan") for w in waits], color="tab:orange")
        a2.set_ylim(0, 100)
    else:
        a2.text(0.5, 0.5, "not logged by this run", ha="center", va="center", transform=a2.transAxes)
    a2.set_ylabel("waiting for input (%)")
    a2.set_xlabel("step")
    fig.tight_layout()
    p = os.path.join(out_dir, "report_speed.png")
    fig.savefig(p)
    plt.close(fig)
    written.append(("Throughput and input wait", p))

    # ---- accuracy against epoch
    knn = [m for m in evals if m.get("eval") == "knn" and "top1" in m]
    linear = [m for m in evals if m.get("eval") == "linear" and isinstance(m.get("linear"), dict)]
    total_epochs = (config.get("train") or {}).get("epochs")
    if knn:  # (final linear probes alone: the baselines chart shows them)
        fig, ax = plt.subplots(figsize=(8, 4))
        if knn:
            ax.plot([m["epoch"] for m in knn], [100 * m["top1"] for m in knn], "o-", label="kNN top-1 (monitor)")
        end = total_epochs or (knn[-1]["epoch"] if knn else 1)
        for m in linear:
            ax.scatter([end], [100 * m["linear"]["top1"]], marker="s", s=40, zorder=3,
                       label="linear probe: %s" % m.get("what", "?"))
        ax.set_xlim(0, end + 0.5)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title("Accuracy on the test split")
        ax.legend(loc="lower right")
        fig.tight_layout()
        p = os.path.join(out_dir, "report_accuracy.png")
        fig.savefig(p)
        plt.close(fig)
        written.append(("Accuracy", p))

    else:
        stale = os.path.join(out_dir, "report_accuracy.png")  # from an earlier report of this run
        if os.path.exists(stale):
            os.remove(stale)

    # ---- the final comparison
    bars = []
    if results:
        for key, label in (("encoder", "SimCLR encoder"), ("random_init", "random-init encoder"),
                           ("raw_pixels", "raw pixels")):
            r = results.get(key)
            if isinstance(r, dict) and isinstance(r.get("linear"), dict):
                bars.append((label, 100 * r["linear"]["top1"]))
    elif linear:
        bars = [(m.get("what", "?"), 100 * m["linear"]["top1"]) for m in linear]
    if bars:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        colors = ["tab:blue", "tab:gray", "tab:olive", "tab:cyan", "tab:pink"]
        b = ax.barh([l for l, _ in bars][::-1], [v for _, v in bars][::-1], color=colors[:len(bars)][::-1])
        for rect, (_, v) in zip(b, bars[::-1]):
            ax.text(rect.get_width() + 0.5, rect.get_y() + rect.get_height() / 2, "%.2f%%" % v, va="center")
        lo = max(0.0, min(v for _, v in bars) - 10)
        ax.set_xlim(lo, min(100.0, max(v for _, v in bars) + 6))
        ax.set_xlabel("linear probe, test top-1 (%)")
        ax.set_title("The encoder against its baselines")
        fig.tight_layout()
        p = os.path.join(out_dir, "report_baselines.png")
        fig.savefig(p)
        plt.close(fig)
        written.append(("Against the baselines", p))

    # ---- report.md
    last = steps[-1]
    lines = ["# Run report: %s" % os.path.abspath(run_dir), ""]
    t, m, d = config.get("train") or {}, config.get("model") or {}, config.get("data") or {}
    lines.append("- model: %s width %s (%s stem), head %s" % (
        m.get("arch", "?"), m.get("width", "?"), m.get("stem", "?"), json.dumps(config.get("head", {}))))
    lines.append("- data: %s" % ", ".join("%s=%s" % (k, d[k]) for k in sorted(d) if k in (
        "dataset", "path", "images", "image_size", "subset", "split") and d[k] not in ("", 0, None)))
    o = config.get("optimizer") or {}
    lines.append("- schedule: %s epochs, batch %s (%s views), %s lr %s (%s scaling), temperature %s" % (
        t.get("epochs", "?"), t.get("batch", "?"), 2 * t["batch"] if isinstance(t.get("batch"), int) else "?",
        o.get("name", "?"), o.get("lr", "?"), o.get("lr_scaling", "?"),
        (config.get("loss") or {}).get("temperature", config.get("temperature", "?"))))
    lines.append("- device: %s, precision %s" % (t.get("device", "?"), t.get("precision", "fp32")))
    if results:
        lines.append("- machine: %s CPU cores; commit %s" % (results.get("cores", "?"), results.get("commit", "?")))
    lines.append("- progress: step %d, epoch %.2f, last logged loss %.4f, wall time %.0f s%s" % (
        last["step"], last.get("epoch", 0.0), last["loss"], last.get("time_s", 0.0),
        " (%d unreadable lines skipped: the run may still be going)" % bad if bad else ""))
    stopped = [e for e in events if e.get("event") in ("stopped", "non-finite loss")]
    for e in stopped:
        lines.append("- event: %s at step %s" % (e["event"], e.get("step", "?")))
    if epochs:
        lines.append("- epoch mean loss: first %.4f, last %.4f" % (epochs[0]["epoch_loss"], epochs[-1]["epoch_loss"]))
    if knn:
        lines.append("- kNN monitor: top-1 %.2f%% at epoch %s" % (100 * knn[-1]["top1"], knn[-1]["epoch"]))
    if results:
        lines.append("- pretraining %.0f s (%.0f views/s), evaluation %.0f s, total %.0f s" % (
            results.get("pretrain_seconds", 0), results.get("views_per_second", 0), results.get("eval_seconds", 0),
            results.get("total_seconds", 0)))
    if bars:
        lines += ["", "| linear probe | test top-1 |", "|---|---|"] + ["| %s | %.2f%% |" % (l, v) for l, v in bars]
    preview = os.path.join(run_dir, "preview.png")
    lines += [""]
    if os.path.exists(preview):
        lines += ["## Augmentation preview", "", "![augmentation preview](%s)" % os.path.relpath(preview, out_dir), ""]
    else:
        lines += ["(Augmentation preview: `simclr preview %s/config.json --out %s` adds one.)" % (run_dir, preview), ""]
    for title, path in written:
        lines += ["## " + title, "", "![%s](%s)" % (title, os.path.relpath(path, out_dir)), ""]
    report = os.path.join(out_dir, "report.md")
    tmp = report + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(tmp, report)
    for _, path in written:
        print(path)
    print(report)


if __name__ == "__main__":
    main(sys.argv[1:])
