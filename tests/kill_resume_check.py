#!/usr/bin/python3
"""Resume after SIGKILL is exact, with `simclr train` as a separate process at
2 threads (issue 12). Usage: kill_resume_check.py <simclr> <scratch dir>

Pure Python (no NumPy). On 64 random 16x16 grey images it writes itself as
an IDX file (no dataset needed), ResNet-18 at width 1/16, batch 16: 4 steps
per epoch, 12 epochs, a checkpoint every epoch, keep_last 3.
  1. Two uninterrupted runs: the reference, and a check that they agree (a
     nondeterministic engine would make any comparison below meaningless).
  2. The same config in another run directory, started with --resume again
     and again and killed with SIGKILL at these moments, in this order:
       - before the first checkpoint (right after step 1),
       - at a random moment in the middle of an epoch,
       - while a checkpoint is being written (the test hook
         SIMCLR_TEST_CHECKPOINT_WRITE_DELAY_MS of train/checkpoint.cpp holds
         a half-written temporary in place; the kill lands in that window),
       - right after a checkpoint completed (the file appeared),
       - at a random moment in the middle of an epoch again,
       - while a checkpoint is being written again,
     then resumed until it finishes.
After every kill: every file named like a checkpoint verifies (magic, sizes,
CRC-32: no partial file a resume could pick up), the checkpoint being written
at a kill in the write window is absent, and the next resume warns about no
bad checkpoint. At the end: the final checkpoint's model and optimiser
tensors equal the reference's bit for bit (and its training state);
metrics.jsonl has every step's line exactly once (and every epoch's), with
the reference's losses bit for bit. Temporaries left by the kills (never
named like a checkpoint) are listed.
The kill moments are drawn from a seed printed first (KILL_RESUME_SEED=<n>
repeats one).
"""
import json
import os
import queue
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts"))
from checks import write_tiny_config  # noqa: E402

STEPS_PER_EPOCH, EPOCHS = 4, 12
TOTAL = STEPS_PER_EPOCH * EPOCHS
WRITE_DELAY_MS = 3000  # the test hook's window; the kill comes as soon as the partial file appears
CKPT_NAME = re.compile(r"^checkpoint-(\d{9})\.ckpt$")  # list_checkpoints() of train/checkpoint.cpp
DEADLINE_S = 30  # for any one wait (a whole run takes about 1 s)


LIVE = []  # the simclr processes started here: none outlives this script


def fail(what):
    print("FAILED:", what)
    for p in LIVE:
        if p.poll() is None:
            p.kill()
            p.wait()
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)
    print("ok:", what)


def write_idx_u8(path, rng, n, s):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">III", n, s, s))
        f.write(bytes(rng.randrange(256) for _ in range(n * s * s)))


def read_checkpoint(path):
    """docs/checkpoint.md, version 1: returns (meta, {(group, name): (dtype, shape, raw bytes)})."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28 or data[:8] != b"SIMCLRCK":
        raise ValueError("bad magic or too short (%d bytes)" % len(data))
    version, _, hlen = struct.unpack("<IIQ", data[8:24])
    if version != 1 or 24 + hlen + 4 > len(data):
        raise ValueError("version %d, header %d bytes in %d" % (version, hlen, len(data)))
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != crc:
        raise ValueError("CRC-32 mismatch")
    header = json.loads(data[24:24 + hlen].decode("utf-8"))
    start = (24 + hlen + 63) // 64 * 64
    tensors = {}
    for e in header["tensors"]:
        b = start + e["offset"]
        if b + e["bytes"] > len(data) - 4:
            raise ValueError("tensor %s outside the file" % e["name"])
        tensors[(e["group"], e["name"])] = (e["dtype"], e["shape"], data[b:b + e["bytes"]])
    return header["meta"], tensors


def checkpoints(run_dir):
    """{step: path} of the files the trainer would consider."""
    out = {}
    for n in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
        m = CKPT_NAME.match(n)
        if m:
            out[int(m.group(1))] = os.path.join(run_dir, n)
    return out


class Trainer:
    """One `simclr train ... --resume` process; its stdout lines in a queue."""

    def __init__(self, simclr, config, run_dir, env_extra=None, resume=True):
        env = dict(os.environ)
        env.pop("SIMCLR_TEST_CHECKPOINT_WRITE_DELAY_MS", None)
        env.update(env_extra or {})
        cmd = [simclr, "train", config, "--set", "train.run_dir=" + run_dir] + (["--resume"] if resume else [])
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        LIVE.append(self.p)
        self.lines, self.all = queue.Queue(), []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.all.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_line(self, pred, what):
        """Waits for a stdout line that satisfies pred; fails if the process ends first."""
        end = time.time() + DEADLINE_S
        while time.time() < end:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                fail("simclr train ended (status %s) before %s:\n%s" % (self.p.wait(), what, "".join(self.all)))
            if pred(line):
                return line
        fail("timed out waiting for " + what)

    def kill(self, what):
        if self.p.poll() is not None:
            fail("simclr train had already ended (status %s) when it was to be killed %s" % (self.p.returncode, what))
        self.p.send_signal(signal.SIGKILL)
        rc = self.p.wait()
        check(rc == -signal.SIGKILL, "killed by SIGKILL " + what)

    def finish(self):
        try:
            rc = self.p.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            fail("simclr train did not finish in %d s (hung?); its output:\n%s" % (DEADLINE_S, "".join(self.all[-5:])))
        time.sleep(0.05)  # let the pump take the last lines
        if rc != 0:
            fail("simclr train exited with status %d:\n%s" % (rc, "".join(self.all)))


STEP_LINE = re.compile(r"^epoch \d+/\d+ step (\d+)/\d+ loss")


def step_of(line):
    m = STEP_LINE.match(line)
    return int(m.group(1)) if m else None


def poll(cond, what, interval=0.0005):
    end = time.time() + DEADLINE_S
    while time.time() < end:
        r = cond()
        if r:
            return r
        time.sleep(interval)
    fail("timed out waiting for " + what)


def verify_after_kill(run_dir):
    cks = checkpoints(run_dir)
    for step, path in sorted(cks.items()):
        try:
            meta, _ = read_checkpoint(path)
        except ValueError as e:
            fail("%s is named like a checkpoint but does not verify: %s" % (path, e))
        if meta["state"]["step"] != step:
            fail("%s holds step %d" % (path, meta["state"]["step"]))
    others = sorted(n for n in os.listdir(run_dir) if n.startswith("checkpoint-") and not CKPT_NAME.match(n))
    print("   checkpoints %s verify; other files: %s" % (sorted(cks), others or "none"))
    return max(cks) if cks else 0


def main():
    simclr, scratch = sys.argv[1], sys.argv[2]
    seed = int(os.environ.get("KILL_RESUME_SEED", random.SystemRandom().randrange(1 << 30)))
    print("kill moments from KILL_RESUME_SEED=%d" % seed)
    rng = random.Random(seed)
    t0 = time.time()
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    images = os.path.join(scratch, "train-images")
    write_idx_u8(images, random.Random(7), STEPS_PER_EPOCH * 16, 16)
    config = os.path.join(scratch, "run.json")
    write_tiny_config(config, images, 0.5, 1,
                      {"epochs": EPOCHS, "batch": 16, "threads": 2, "keep_last": 3, "checkpoint_every": 1})

    # two uninterrupted runs: the reference, and a check that training at 2
    # threads is deterministic at all (else a difference below is no resume bug)
    ref_dir = os.path.join(scratch, "reference")
    for d in (ref_dir, ref_dir + "2"):
        Trainer(simclr, config, d, resume=False).finish()
    print("   two uninterrupted runs: %.1f s" % (time.time() - t0))
    a, b = read_checkpoint(checkpoints(ref_dir)[TOTAL])[1], read_checkpoint(checkpoints(ref_dir + "2")[TOTAL])[1]
    differ = [k[1] for k in sorted(a) if a[k] != b[k]]
    check(not differ, "two uninterrupted runs end with the same tensors bit for bit%s" %
          ("" if not differ else " - they do NOT: training is not deterministic here, differing in " +
           ", ".join(differ[:6])))

    run_dir = os.path.join(scratch, "killed")
    kills = []

    def resumed(env_extra=None):
        tr = Trainer(simclr, config, run_dir, env_extra)
        # the resume reports where it starts; a bad checkpoint it had to skip would be a warning
        tr.first_step = step_of(tr.wait_line(lambda l: step_of(l) is not None, "the first step of a resumed run"))
        if any("skipping a bad checkpoint" in l for l in tr.all):
            fail("the resume skipped a bad checkpoint:\n" + "".join(tr.all))
        return tr

    # before the first checkpoint
    tr = resumed()
    kills.append("after step 1, before any checkpoint")
    tr.kill(kills[-1])
    check(verify_after_kill(run_dir) == 0, "no checkpoint yet")

    def mid_epoch():
        start = verify_after_kill(run_dir)
        target = start + rng.randrange(2, 2 * STEPS_PER_EPOCH)
        if target % STEPS_PER_EPOCH == 0:
            target += 1
        tr = resumed()
        if tr.first_step != start + 1:
            fail("the resume started at step %d, after the checkpoint of step %d" % (tr.first_step, start))
        tr.wait_line(lambda l: step_of(l) == target, "step %d" % target)
        delay = rng.uniform(0, 0.03)
        time.sleep(delay)  # somewhere inside step target + 1
        kills.append("mid-epoch, %.0f ms after step %d was logged" % (1000 * delay, target))
        tr.kill(kills[-1])
        verify_after_kill(run_dir)

    def during_write():
        tr = resumed({"SIMCLR_TEST_CHECKPOINT_WRITE_DELAY_MS": str(WRITE_DELAY_MS)})
        partial = poll(lambda: [n for n in os.listdir(run_dir) if n.endswith(".tmp.%d.partial" % tr.p.pid)],
                       "a checkpoint write")[0]
        step = int(CKPT_NAME.match(partial.split(".tmp.")[0]).group(1))
        kills.append("while checkpoint-%09d.ckpt was being written" % step)
        tr.kill(kills[-1])
        check(step not in checkpoints(run_dir), "the checkpoint of step %d killed in its write is absent" % step)
        verify_after_kill(run_dir)

    def after_write():
        start = verify_after_kill(run_dir)
        step = (start // STEPS_PER_EPOCH + 1) * STEPS_PER_EPOCH
        tr = resumed()
        poll(lambda: step in checkpoints(run_dir), "checkpoint-%09d.ckpt" % step)
        kills.append("right after checkpoint-%09d.ckpt appeared" % step)
        tr.kill(kills[-1])
        verify_after_kill(run_dir)

    mid_epoch()
    during_write()
    after_write()
    mid_epoch()
    during_write()
    tr = resumed()
    tr.finish()
    print("   resumed to the end after %d kills: %.1f s in all" % (len(kills), time.time() - t0))

    # the final checkpoints: every tensor byte for byte, and the training state
    ref_ck, got_ck = checkpoints(ref_dir), checkpoints(run_dir)
    check(max(ref_ck) == TOTAL and max(got_ck) == TOTAL, "both runs ended with the checkpoint of step %d" % TOTAL)
    ref_meta, ref_t = read_checkpoint(ref_ck[TOTAL])
    got_meta, got_t = read_checkpoint(got_ck[TOTAL])
    check(set(ref_t) == set(got_t) and any(g == "optimizer" for g, _ in ref_t), "the same tensor names, with the optimiser's")
    differ = [k for k in sorted(ref_t) if ref_t[k] != got_t[k]]
    nbytes = sum(len(v[2]) for v in ref_t.values())
    check(not differ, "%d tensors (%d bytes) of model and optimiser equal the uninterrupted run's bit for bit%s" %
          (len(ref_t), nbytes, "" if not differ else ": differ " + ", ".join("%s/%s" % k for k in differ[:8])))
    check(ref_meta["state"] == got_meta["state"], "the training state equals: %s" % json.dumps(got_meta["state"]))

    def metrics(d):
        with open(os.path.join(d, "metrics.jsonl")) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        steps = [l["step"] for l in lines if "loss" in l]
        epochs = [l["epoch"] for l in lines if "epoch_loss" in l]
        return lines, steps, epochs

    got_lines, got_steps, got_epochs = metrics(run_dir)
    ref_lines, ref_steps, ref_epochs = metrics(ref_dir)
    dup = sorted({s for s in got_steps if got_steps.count(s) > 1})
    check(not dup, "metrics.jsonl has no duplicated steps" + ("" if not dup else ": %s" % dup))
    check(got_steps == list(range(1, TOTAL + 1)) and got_epochs == list(range(1, EPOCHS + 1)),
          "metrics.jsonl has steps 1..%d and epochs 1..%d once each, in order" % (TOTAL, EPOCHS))
    check([l["loss"] for l in got_lines if "loss" in l] == [l["loss"] for l in ref_lines if "loss" in l] and
          [l["epoch_loss"] for l in got_lines if "epoch_loss" in l] ==
          [l["epoch_loss"] for l in ref_lines if "epoch_loss" in l],
          "every logged loss equals the uninterrupted run's bit for bit")
    left = sorted(n for n in os.listdir(run_dir) if not CKPT_NAME.match(n) and n not in ("config.json", "metrics.jsonl"))
    print("note: %d file(s) left behind by the kills (never named like a checkpoint, so no resume reads them): %s" %
          (len(left), left))
    print("kills: " + "; ".join(kills))
    print("passed in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        for p in LIVE:
            if p.poll() is None:
                p.kill()
        raise
