#!/usr/bin/python3
"""Issue 16 reproductions through the programs, as a user meets them.
Usage: reliability_check.py <simclr> <export_encoder> <bench_ntxent or -> <scratch dir>

Pure Python (no NumPy); about 64 random 16x16 grey images written as IDX
files, ResNet-18 at width 1/16, batch 16 (4 steps per epoch). Each section
is one numbered item of the issue; every failed check is listed and the
script exits 1 at the end (so one run shows every item that fails):
  1a. bad checkpoints with higher step numbers: --resume takes the newest
      good one, sets the bad ones aside (*.bad), and rotation keeps the new
      checkpoints (it used to keep the bad files and delete each new one);
  1b. only bad checkpoints: --resume fails naming each, changes nothing (it
      used to restart from step 0 and throw metrics.jsonl away);
  1c. a bad newest checkpoint: resumed from the older good one, the history
      metrics.jsonl loses is kept in a copy;
  2.  crafted headers with a valid CRC (negative / wrapped / unaligned /
      overlapping offsets, negative step, step beyond the total, no
      meta.state): exit 1 with a message naming the file, never a crash;
  3.  outputs: a FIFO as --out stays a FIFO, a symlink is written through,
      an unrelated X.json beside X.safetensors needs --force, preview never
      overwrites its config, embed never its labels file, bench_ntxent never
      its --z input;
  4.  a second `simclr train` on a busy run directory fails at once naming
      the first's pid; after a kill -9 the lock is taken over;
  6.  a broken test split (needed by the kNN monitor) fails before step 1;
  5.  an append that fails (metrics.jsonl on a full device) and an
      unwritable stdout are errors, not successes;
  8.  the epoch's mean loss after a mid-epoch stop and resume equals the
      uninterrupted run's;
  9.  SIGHUP stops like SIGTERM (checkpoint, status 129); temporaries left by
      a killed write are removed at the next start;
  10/11. bench_ntxent --z with a NaN is an error, with exit status 1;
  7.  data.image_size=4096 and a 65536-wide head are refused before the first
      step with the estimate and a suggestion; bench_ntxent --n 100000000 is a
      clear out-of-memory error;
  6.  a kNN monitor failing at an undecodable test image leaves the epoch's
      checkpoint; eval.linear_at_end on unlabelled data fails before step 1;
  10. notes for train.max_steps skipping the final probe, data.subset beyond
      the dataset, eval.knn_k beyond the bank; a one-class probe is an error;
      bench_ntxent --n 2 --check prints no NaN;
  11. last-bit float differences do not block a resume; real ones are shown
      readably with what to do.
"""
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib

FAILED = []
LIVE = []
DEADLINE_S = 60


def check(cond, what, detail=""):
    if cond:
        print("ok:", what)
    else:
        print("FAILED:", what + (("\n    " + detail.replace("\n", "\n    ")) if detail else ""))
        FAILED.append(what)
    return cond


def write_idx(path, data, dims, code=0x08):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, code, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims))
        f.write(bytes(data))


def run(cmd, timeout=DEADLINE_S, **kw):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        got = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return -999, got, "timed out after %d s" % timeout
    return p.returncode, p.stdout, p.stderr


def ckpts(d):
    return sorted(n for n in os.listdir(d) if n.startswith("checkpoint-") and n.endswith(".ckpt") and len(n) == 25)


def name(step):
    return "checkpoint-%09d.ckpt" % step


def read_ck(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28 or data[:8] != b"SIMCLRCK":
        raise ValueError("bad magic")
    (hlen,) = struct.unpack("<Q", data[16:24])
    if 24 + hlen + 4 > len(data) or zlib.crc32(data[:-4]) & 0xFFFFFFFF != struct.unpack("<I", data[-4:])[0]:
        raise ValueError("truncated or CRC mismatch")
    return json.loads(data[24:24 + hlen]), data


def verifies(path):
    try:
        read_ck(path)
        return True
    except (ValueError, OSError):
        return False


def craft(src, dst, edit):
    """dst = src with its header edited by edit(header), the CRC recomputed."""
    header, data = read_ck(src)
    (hlen,) = struct.unpack("<Q", data[16:24])
    start = (24 + hlen + 63) // 64 * 64
    blob = data[start:-4]
    edit(header)
    hs = json.dumps(header).encode()
    out = bytearray(data[:16] + struct.pack("<Q", len(hs)) + hs)
    out += b"\0" * ((-len(out)) % 64)
    out += blob
    out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
    with open(dst, "wb") as f:
        f.write(out)


def metrics_steps(path):
    steps = []
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if "loss" in j and "step" in j:
                steps.append(j["step"])
    return steps


def epoch_losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if "epoch_loss" in j:
                out[j["epoch"]] = j["epoch_loss"]
    return out


class Proc:
    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        LIVE.append(self.p)
        self.lines = []

    def wait_for(self, pred):
        end = time.time() + DEADLINE_S
        while time.time() < end:
            line = self.p.stdout.readline()
            if not line:
                return None
            self.lines.append(line)
            if pred(line):
                return line
        return None

    def finish(self, timeout=DEADLINE_S):
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
            self.lines.append(out)
            return -999
        self.lines.append(out)
        return self.p.returncode

    def text(self):
        return "".join(self.lines)


def main():
    simclr, export_encoder, bench, scratch = sys.argv[1:5]
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    t0 = time.time()
    import random
    rng = random.Random(7)
    n, s = 64, 16
    images = os.path.join(scratch, "train-images-idx3-ubyte")
    labels = os.path.join(scratch, "train-labels-idx1-ubyte")
    write_idx(images, [rng.randrange(256) for _ in range(n * s * s)], [n, s, s])
    write_idx(labels, [i % 4 for i in range(n)], [n])
    images8 = os.path.join(scratch, "big-images-idx3-ubyte")  # 128 images: 8 steps per epoch
    write_idx(images8, [rng.randrange(256) for _ in range(2 * n * s * s)], [2 * n, s, s])

    def config(path, imgs=images, **train):
        t = {"epochs": 4, "batch": 16, "threads": 1, "log_interval": 1, "keep_last": 2, "checkpoint_every": 1}
        t.update(train)
        with open(path, "w") as f:
            json.dump({
                "data": {"dataset": "idx", "images": imgs, "labels": labels if imgs == images else "",
                         "test_images": images, "test_labels": labels,
                         "channels": 1, "image_size": 16, "mean": [0.5], "std": [0.25], "workers": 1},
                "model": {"arch": "resnet18", "width": 0.0625, "stem": "cifar"},
                "head": {"depth": 2, "out": 16},
                "optimizer": {"name": "lars", "lr": 0.5},
                "schedule": {"warmup_epochs": 1},
                "train": t,
                "eval": {"knn_every": 0, "linear_at_end": False, "raw_pixels": False, "random_init": False,
                         "knn_k": 5},
            }, f, indent=1)
        return path

    cfg = config(os.path.join(scratch, "run.json"))

    def train(run_dir, *extra, conf=cfg):
        return run([simclr, "train", conf, "--set", "train.run_dir=" + run_dir] + list(extra))

    # a run stopped at step 8 (train.max_steps): checkpoints 4 and 8, metrics 1..8
    base = os.path.join(scratch, "base")
    rc, out, err = train(base, "--set", "train.max_steps=8")
    if not check(rc == 0 and ckpts(base) == [name(4), name(8)], "the base run (8 of 16 steps) ran", out + err):
        return 1

    # ---- 1a: bad checkpoints with higher step numbers (a copied run dir, truncate -s 100)
    d = os.path.join(scratch, "1a")
    shutil.copytree(base, d)
    for st in (96, 100):
        shutil.copy(os.path.join(d, name(8)), os.path.join(d, name(st)))
        os.truncate(os.path.join(d, name(st)), 100)
    rc, out, err = train(d, "--resume")
    text = out + err
    check(rc == 0 and "resuming from " + os.path.join(d, name(8)) in text, "1a: resumed from the newest good checkpoint",
          text)
    check(name(96) in text and name(100) in text and "skipping a bad checkpoint" in text,
          "1a: the console names the skipped bad checkpoints", text)
    kept = ckpts(d)
    check(name(16) in kept and name(12) in kept and all(verifies(os.path.join(d, k)) for k in kept),
          "1a: rotation kept the new checkpoints (12, 16), all verify", "left: %s" % kept)
    check(os.path.exists(os.path.join(d, name(96) + ".bad")) and os.path.exists(os.path.join(d, name(100) + ".bad")),
          "1a: the bad files are set aside as *.bad, not deleted", str(sorted(os.listdir(d))))
    check(metrics_steps(os.path.join(d, "metrics.jsonl")) == list(range(1, 17)), "1a: metrics.jsonl has steps 1..16 once")

    # ---- 1b: only bad checkpoints: refuse, change nothing
    d = os.path.join(scratch, "1b")
    shutil.copytree(base, d)
    for k in ckpts(d):
        os.truncate(os.path.join(d, k), 100)
    before = {k: os.path.getsize(os.path.join(d, k)) for k in os.listdir(d)}
    rc, out, err = train(d, "--resume")
    check(rc == 1 and name(4) in err and name(8) in err and "Nothing was changed" in err,
          "1b: --resume with only bad checkpoints fails naming each", "status %d\n%s" % (rc, out + err))
    after = {k: os.path.getsize(os.path.join(d, k)) for k in os.listdir(d) if k != ".simclr-lock"}
    before.pop(".simclr-lock", None)
    check(after == before, "1b: nothing in the run directory changed (metrics.jsonl kept)", "%s -> %s" % (before, after))

    # ---- 1c: bad newest, good older: resume from it, keep the history it cuts
    d = os.path.join(scratch, "1c")
    shutil.copytree(base, d)
    os.truncate(os.path.join(d, name(8)), 100)
    rc, out, err = train(d, "--resume")
    check(rc == 0 and "resuming from " + os.path.join(d, name(4)) in out, "1c: resumed from the older good one", out + err)
    backup = os.path.join(d, "metrics.jsonl.before-resume-at-4")
    check(os.path.exists(backup) and metrics_steps(backup) == list(range(1, 9)),
          "1c: the metrics lines the resume cut are kept in metrics.jsonl.before-resume-at-4", str(sorted(os.listdir(d))))
    check(os.path.exists(os.path.join(d, name(8) + ".bad")), "1c: the bad one is set aside")

    # ---- 2: crafted headers with a valid CRC
    src = os.path.join(base, name(8))
    model_idx = None

    def t_edit(key, value, which=1):
        def f(h):
            h["tensors"][which][key] = value
        return f

    def state_edit(**kv):
        def f(h):
            for k, v in kv.items():
                if v is None:
                    h["meta"].pop("state", None)
                else:
                    h["meta"]["state"][k] = v
        return f

    crafted = [
        ("negative offset", t_edit("offset", -64), "non-negative integer"),
        ("wrapped offset (2^64 - 64)", t_edit("offset", 2 ** 64 - 64), "lies outside the file"),
        ("unaligned offset", t_edit("offset", 68), "not a multiple of 64"),
        ("overlapping tensors", t_edit("offset", 0), "overlap"),
    ]
    for what, edit, expect in crafted:
        p = os.path.join(scratch, "crafted.ckpt")
        craft(src, p, edit)
        rc, out, err = run([export_encoder, p, "--out", os.path.join(scratch, "crafted.safetensors")])
        check(rc == 1 and ("checkpoint '%s'" % p) in err and expect in err,
              "2: export_encoder on a crafted checkpoint (%s): exit 1, '%s', naming the file" % (what, expect),
              "status %d: %s" % (rc, (out + err)[-600:]))
    for what, edit, expect in [("negative step", state_edit(step=-8, epoch=-2), "meta.state.step must be"),
                               ("step beyond the total", state_edit(step=1600, epoch=400), "beyond meta.state.total_steps"),
                               ("no meta.state", state_edit(state=None), "meta.state")]:
        d = os.path.join(scratch, "2-" + what.replace(" ", "-"))
        os.makedirs(d)
        craft(src, os.path.join(d, name(8)), edit)
        rc, out, err = train(d, "--resume")
        check(rc == 1 and name(8) in err and expect in err,
              "2: --resume from a crafted checkpoint (%s): exit 1 naming the file and '%s'" % (what, expect),
              "status %d: %s" % (rc, (out + err)[-600:]))

    # ---- 3: outputs
    outd = os.path.join(scratch, "out")
    os.makedirs(outd)
    fifo = os.path.join(outd, "pipe.safetensors")
    os.mkfifo(fifo)
    rc, out, err = run([export_encoder, src, "--out", fifo])
    check(rc == 1 and "FIFO" in err and stat.S_ISFIFO(os.lstat(fifo).st_mode),
          "3: --out naming a FIFO is refused and the FIFO stays", "status %d: %s" % (rc, err))
    target = os.path.join(outd, "v1.safetensors")
    with open(target, "w") as f:
        f.write("old")
    os.symlink("v1.safetensors", os.path.join(outd, "latest.safetensors"))
    rc, out, err = run([export_encoder, src, "--out", os.path.join(outd, "latest.safetensors")])
    check(rc == 0 and os.path.islink(os.path.join(outd, "latest.safetensors")) and os.path.getsize(target) > 100,
          "3: --out naming a symlink writes through it (the link stays)", "status %d: %s" % (rc, err))
    unrelated = os.path.join(outd, "enc.json")
    with open(unrelated, "w") as f:
        f.write('{"train": {"epochs": 100}}\n')
    rc, out, err = run([export_encoder, src, "--out", os.path.join(outd, "enc.safetensors")])
    with open(unrelated) as f:
        kept_text = f.read()
    check(rc == 1 and "--force" in err and kept_text == '{"train": {"epochs": 100}}\n',
          "3: an unrelated enc.json beside enc.safetensors is not replaced without --force", "status %d: %s" % (rc, err))
    rc, out, err = run([export_encoder, src, "--out", os.path.join(outd, "enc.safetensors"), "--force"])
    check(rc == 0 and "source_checkpoint" in open(unrelated).read(), "3: ... and is replaced with --force", err)
    rc, out, err = run([export_encoder, src, "--out", os.path.join(outd, "enc.safetensors")])
    check(rc == 0, "3: a manifest of an earlier export is replaced without --force", err)
    pcfg = os.path.join(outd, "preview.json")  # a copy: the old preview overwrote it
    shutil.copy(cfg, pcfg)
    with open(pcfg) as f:
        cfg_text = f.read()
    rc, out, err = run([simclr, "preview", pcfg, "--out", pcfg, "--n", "2"])
    check(rc == 1 and open(pcfg, "rb").read() == cfg_text.encode(), "3: preview --out naming its own config is refused",
          "status %d: %s" % (rc, err))
    emb = os.path.join(outd, "emb")  # copies: the old embed overwrote the labels file
    os.makedirs(emb)
    for f in (images, labels):
        shutil.copy(f, emb)
    emb_labels = os.path.join(emb, os.path.basename(labels))
    with open(emb_labels, "rb") as f:
        labels_bytes = f.read()
    rc, out, err = run([simclr, "embed", "--weights", src, "--data", os.path.join(emb, os.path.basename(images)),
                        "--out", os.path.join(outd, "f.npy"), "--labels-out", emb_labels, "--threads", "1"])
    with open(emb_labels, "rb") as f:
        check(rc == 1 and f.read() == labels_bytes and "labels file" in err,
              "3: embed --labels-out naming the labels file it reads is refused", "status %d: %s" % (rc, out + err))
    if bench != "-":
        z = os.path.join(outd, "z.npy")
        hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }"
        hdr += " " * ((-(10 + len(hdr) + 1)) % 64) + "\n"
        zbytes = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + struct.pack("<12f", *range(12))
        with open(z, "wb") as f:
            f.write(zbytes)
        rc, out, err = run([bench, "--z", z, "--grad-out", z, "--device", "cpu"])
        with open(z, "rb") as f:
            check(rc != 0 and f.read() == zbytes and "is the input" in err,
                  "3: bench_ntxent --grad-out naming its --z input is refused", "status %d: %s" % (rc, out + err))
        znan = os.path.join(outd, "znan.npy")
        with open(znan, "wb") as f:
            f.write(zbytes[:-4] + struct.pack("<f", float("nan")))
        rc, out, err = run([bench, "--z", znan, "--device", "cpu"])
        check(rc == 1 and "non-finite" in err and "row 3, column 2" in err,
              "10/11: bench_ntxent --z with a NaN is an error (exit 1, as every tool)", "status %d: %s" % (rc, out + err))

    # ---- 4: the run-directory lock
    d = os.path.join(scratch, "4")
    long_cfg = config(os.path.join(scratch, "long.json"), epochs=500)
    first = Proc([simclr, "train", long_cfg, "--set", "train.run_dir=" + d, "--resume"])
    started = first.wait_for(lambda l: " step 1/" in l)
    if check(started is not None, "4: a first long run started", first.text()):
        t = time.time()
        rc, out, err = run([simclr, "train", long_cfg, "--set", "train.run_dir=" + d, "--resume"], timeout=20)
        check(rc == 1 and ("in use by process %d" % first.p.pid) in err and time.time() - t < 15,
              "4: a second run on the same directory fails at once naming the first's pid",
              "status %d after %.1f s: %s" % (rc, time.time() - t, (out + err)[-500:]))
        first.p.send_signal(signal.SIGKILL)
        first.finish()
        third = Proc([simclr, "train", long_cfg, "--set", "train.run_dir=" + d, "--resume"])
        line = third.wait_for(lambda l: " step " in l)
        check(line is not None and ("took over the lock of process %d" % first.p.pid) in third.text(),
              "4: after a kill -9 the next run takes the lock over (and says so)", third.text()[-800:])
        third.p.send_signal(signal.SIGKILL)
        third.finish()

    # ---- 5: write errors
    d = os.path.join(scratch, "5")
    shutil.copytree(base, d)
    os.remove(os.path.join(d, "metrics.jsonl"))
    if os.path.exists("/dev/full"):
        os.symlink("/dev/full", os.path.join(d, "metrics.jsonl"))
        rc, out, err = run([simclr, "eval", os.path.join(d, name(8)), "--knn", "--no-linear", "--set",
                            "train.threads=1"])
        check(rc == 1 and "metrics.jsonl" in err, "5: simclr eval whose metrics.jsonl append fails exits 1 naming it",
              "status %d: %s" % (rc, (out + err)[-500:]))
        with open("/dev/full", "w") as full:
            p = subprocess.run([simclr, "version"], stdout=full, stderr=subprocess.PIPE, text=True)
        check(p.returncode == 1 and "standard output" in p.stderr, "5: an unwritable stdout is an error (exit 1)",
              "status %d: %s" % (p.returncode, p.stderr))
    else:
        print("note: no /dev/full here: item 5 checks skipped")

    # ---- 6: a broken test split is found before the first step, not at the first kNN
    broken = os.path.join(scratch, "t10k-images-broken")
    with open(images, "rb") as f:
        good_images = f.read()
    with open(broken, "wb") as f:
        f.write(good_images[:100])
    c6 = config(os.path.join(scratch, "run6.json"))
    with open(c6) as f:
        j = json.load(f)
    j["data"]["test_images"] = broken
    j["eval"]["knn_every"] = 1
    with open(c6, "w") as f:
        json.dump(j, f)
    d = os.path.join(scratch, "6")
    rc, out, err = train(d, conf=c6)
    check(rc == 1 and "t10k-images-broken" in err and " step 1/" not in out and not ckpts(d),
          "6: a broken test split fails the run before its first step", "status %d: %s" % (rc, (out + err)[-500:]))

    # ---- 8: the epoch mean loss after a mid-epoch stop and resume
    cfg8 = config(os.path.join(scratch, "run8.json"), imgs=images8, epochs=2, keep_last=3)
    ref = os.path.join(scratch, "8-ref")
    rc, out, err = train(ref, conf=cfg8)
    check(rc == 0, "8: the uninterrupted reference run", out + err)
    d = os.path.join(scratch, "8")
    pr = Proc([simclr, "train", cfg8, "--set", "train.run_dir=" + d])
    pr.wait_for(lambda l: " step 2/" in l)
    pr.p.send_signal(signal.SIGTERM)
    rc = pr.finish()
    stopped = [int(k[11:20]) for k in ckpts(d)]
    mid = [x for x in stopped if x % 8 != 0]
    if check(rc == 143 and mid, "8: SIGTERM stopped the run mid-epoch with a checkpoint (%s)" % stopped, pr.text()):
        rc, out, err = train(d, "--resume", conf=cfg8)
        got, want = epoch_losses(os.path.join(d, "metrics.jsonl")), epoch_losses(os.path.join(ref, "metrics.jsonl"))
        check(rc == 0 and got == want and len(want) == 2,
              "8: the epoch mean losses after the mid-epoch resume equal the uninterrupted run's",
              "got %s, want %s\n%s" % (got, want, (out + err)[-300:]))

    # ---- 9: SIGHUP, and the temporaries a killed write leaves
    d = os.path.join(scratch, "9")
    pr = Proc([simclr, "train", long_cfg, "--set", "train.run_dir=" + d, "--resume"])
    pr.wait_for(lambda l: " step 1/" in l)
    pr.p.send_signal(signal.SIGHUP)
    rc = pr.finish()
    check(rc == 129 and "SIGHUP received" in pr.text() and ckpts(d),
          "9: SIGHUP stops like SIGTERM: a checkpoint, status 129", "status %d: %s" % (rc, pr.text()[-400:]))
    leftover = os.path.join(d, name(4) + ".tmp.999999.12345")
    with open(leftover, "wb") as f:
        f.write(b"\0" * 4096)
    pr = Proc([simclr, "train", long_cfg, "--set", "train.run_dir=" + d, "--resume"])
    pr.wait_for(lambda l: " step " in l)
    pr.p.send_signal(signal.SIGKILL)
    pr.finish()
    check(not os.path.exists(leftover) and "removed" in pr.text(),
          "9: a temporary left by a killed write is removed at the next start (and named)", pr.text()[-400:])

    # ---- 7: a run that cannot fit in memory is refused before its first step (it used to be OOM-killed)
    for what, sets, expect in [("data.image_size=4096", ["data.image_size=4096"], "--set data.image_size="),
                               ("a 65536-wide head", ["head.hidden=65536", "head.out=65536"], "head.hidden")]:
        d = os.path.join(scratch, "7-" + sets[0].split("=")[0])
        args = []
        for x in sets:
            args += ["--set", x]
        t = time.time()
        rc, out, err = train(d, *args)
        check(rc == 1 and "this run needs about" in err and "available" in err and expect in err
              and " step 1/" not in out and time.time() - t < 30,
              "7: %s is refused before the first step with the estimate and '%s'" % (what, expect),
              "status %d after %.1f s: %s" % (rc, time.time() - t, (out + err)[-700:]))
    if bench != "-":
        rc, out, err = run([bench, "--n", "100000000", "--device", "cpu"])
        check(rc == 1 and "out of" in err and "memory" in err and "allocat" in err,
              "7: bench_ntxent --n 100000000 is a clear out-of-memory error, not an abort",
              "status %d: %s" % (rc, (out + err)[-500:]))

    # ---- 6: a kNN monitor that fails (an undecodable test image, found only when it is read)
    # loses nothing: the epoch's checkpoint is written before the kNN runs
    def png(path, w, h, seed):
        raw = b"".join(b"\0" + bytes((seed * 31 + x * 7 + y * 13) % 256 for x in range(w)) for y in range(h))
        def chunk(t, b):
            return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    folder = os.path.join(scratch, "folder")
    for split, count in (("train", 16), ("test", 8)):
        for c in ("a", "b"):
            os.makedirs(os.path.join(folder, split, c))
            for i in range(count):
                png(os.path.join(folder, split, c, "%d.png" % i), 16, 16, i + (50 if c == "b" else 0))
    with open(os.path.join(folder, "test", "b", "7.png"), "r+b") as f:  # a valid header, the pixel data cut
        f.truncate(60)
    with open(cfg) as f:
        jf = json.load(f)
    jf["data"] = {"dataset": "image-folder", "path": os.path.join(folder, "train"),
                  "test_path": os.path.join(folder, "test"), "strict": True, "channels": 1, "image_size": 16,
                  "mean": [0.5], "std": [0.25], "workers": 1}
    jf["train"]["batch"] = 8
    jf["eval"]["knn_every"] = 1
    cfgf = os.path.join(scratch, "run-folder.json")
    with open(cfgf, "w") as f:
        json.dump(jf, f)
    d = os.path.join(scratch, "6-knn")
    rc, out, err = train(d, conf=cfgf)
    check(rc == 1 and "7.png" in err and ckpts(d) == [name(4)] and verifies(os.path.join(d, name(4))),
          "6: a kNN monitor that fails after epoch 1 leaves epoch 1's checkpoint (written before the kNN)",
          "status %d, checkpoints %s: %s" % (rc, ckpts(d) if os.path.isdir(d) else "-", (out + err)[-600:]))

    # ---- 6: a final linear probe that cannot run (no labels) is found before the first step
    with open(cfg) as f:
        ju = json.load(f)
    ju["data"]["images"], ju["data"]["labels"] = images8, ""
    ju["eval"]["linear_at_end"] = True
    cfgu = os.path.join(scratch, "run-unlabelled.json")
    with open(cfgu, "w") as f:
        json.dump(ju, f)
    d = os.path.join(scratch, "6-nolabels")
    rc, out, err = train(d, conf=cfgu)
    check(rc == 1 and "eval.linear_at_end" in err and "no labels" in err and " step 1/" not in out,
          "6: eval.linear_at_end on an unlabelled train split fails before the first step (not after pretraining)",
          "status %d: %s" % (rc, (out + err)[-500:]))

    # ---- 10: silent acceptance becomes a note or an error
    d = os.path.join(scratch, "10-notes")
    rc, out, err = train(d, "--set", "train.max_steps=2", "--set", "eval.linear_at_end=true",
                         "--set", "data.subset=1000")
    check(rc == 0 and "no final linear evaluation" in out and "data.subset = 1000 is larger than the dataset" in out,
          "10: train.max_steps skipping the final probe and a subset larger than the dataset are noted",
          "status %d: %s" % (rc, (out + err)[-600:]))
    d = os.path.join(scratch, "10-knn")
    rc, out, err = train(d, "--set", "train.epochs=1", "--set", "eval.knn_every=1", "--set", "eval.knn_k=500")
    knn_lines = []
    if os.path.exists(os.path.join(d, "metrics.jsonl")):
        with open(os.path.join(d, "metrics.jsonl")) as f:
            knn_lines = [json.loads(l) for l in f if '"knn"' in l]
    check(rc == 0 and "k = 64 is used" in out and knn_lines and knn_lines[0]["k"] == 64,
          "10: a kNN k larger than the bank is noted and the k used is recorded",
          "status %d, %s: %s" % (rc, knn_lines, (out + err)[-600:]))
    one = os.path.join(scratch, "one-class-labels")
    write_idx(one, [0] * n, [n])
    d = os.path.join(scratch, "10-one-class")
    rc, out, err = train(d, "--set", "data.labels=" + one, "--set", "data.test_labels=" + one,
                         "--set", "eval.knn_every=1")
    check(rc == 1 and "one class" in err and " step 1/" not in out,
          "10: a one-class kNN monitor / probe is an error before the first step, not 100%",
          "status %d: %s" % (rc, (out + err)[-500:]))
    if bench != "-":
        rc, out, err = run([bench, "--n", "2", "--check", "--device", "cpu", "--d", "8"])
        check("nan" not in out.lower(), "10: bench_ntxent --n 2 --check reports no NaN relative error",
              "status %d: %s" % (rc, (out + err)[-600:]))

    # ---- 11: a resume blocked by float noise in a derived key; the message says what to do
    d = os.path.join(scratch, "11")
    shutil.copytree(base, d)
    rc, out, err = train(d, "--resume", "--set", "schedule.warmup_epochs=1.0000000000000002", "--set",
                         "train.max_steps=9")
    check(rc == 0, "11: a float that differs in the last bit only (a derived value) does not block a resume",
          "status %d: %s" % (rc, (out + err)[-500:]))
    rc, out, err = train(d, "--resume", "--set", "schedule.warmup_epochs=0.30000000000000004")
    check(rc == 1 and "(1.0 in the checkpoint, 0.3 now)" in err and "--set" in err,
          "11: a real difference is shown with readable numbers and what to do",
          "status %d: %s" % (rc, (out + err)[-500:]))

    print("%d failed check(s) in %.1f s" % (len(FAILED), time.time() - t0))
    for f in FAILED:
        print("  FAILED:", f)
    return 1 if FAILED else 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        for p in LIVE:
            if p.poll() is None:
                p.kill()
                p.wait()
    sys.exit(rc)
