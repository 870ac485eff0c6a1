#!/usr/bin/python3
"""tests/packed_check.py - issue 15's packed format through the real binary:
simclr pack from an image folder of PNGs (with --max-side) and from
Fashion-MNIST, simclr info (and --verify) output, refusing to overwrite
without --force, a flipped pixel byte found by --verify naming the chunk, a
truncated file, and a pack killed mid-way leaving no file that looks valid.
Pure Python (zlib PNGs, struct IDX). usage: packed_check.py SIMCLR SCRATCH"""
import glob
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts"))
from checks import check, fail  # noqa: E402

SIMCLR, TMP = sys.argv[1], sys.argv[2]
shutil.rmtree(TMP, ignore_errors=True)
os.makedirs(TMP)


def run(*args):
    r = subprocess.run([SIMCLR] + list(args), capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def png(path, w, h, salt):
    raw = b"".join(b"\0" + bytes((x * 7 + y * 3 + c * 50 + salt) % 256 for x in range(w) for c in range(3))
                   for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---- an image folder: 2 classes, 12 images of 9..20 px
folder = os.path.join(TMP, "img")
for i in range(12):
    d = os.path.join(folder, ["cat", "dog"][i % 2])
    os.makedirs(d, exist_ok=True)
    png(os.path.join(d, "%02d.png" % i), 9 + i, 20 - i // 2, i)
out = os.path.join(TMP, "a.simclr")
rc, so, se = run("pack", "--from", folder, "--out", out, "--max-side", "10", "--threads", "2")
check(rc == 0 and "packed 12 images into " + out in so, "pack an image folder (rc %d: %s%s)" % (rc, so, se))
check("; 10 resized to shorter side <= 10" in so, "pack reports the resized count: " + so.strip().splitlines()[-1])
rc, so, se = run("info", out)
lines = {l[:12].strip(): l[12:] for l in so.splitlines()}
check(rc == 0, "simclr info runs (%s)" % se)
check(lines.get("images") == "12, 3 channel(s)", "info: images line: %r" % lines.get("images"))
check(lines.get("labels", "").startswith("yes, 2 classes, 6..6 images per class"), "info: labels: %r" % lines.get("labels"))
check(lines.get("classes") == "cat, dog", "info: classes: %r" % lines.get("classes"))
check("shorter side at most 10" in lines.get("sizes", ""), "info: sizes: %r" % lines.get("sizes"))
check(lines.get("source", "").startswith("image-folder: image-folder '" + folder), "info: source: %r" % lines.get("source"))
check("not checked" in lines.get("checksums", ""), "info: checksums without --verify: %r" % lines.get("checksums"))
rc, so, se = run("info", out, "--verify")
check(rc == 0 and "pixel chunks OK" in so, "info --verify on a good file: " + so.splitlines()[-1])

# ---- refuse to overwrite; --force replaces
rc, so, se = run("pack", "--from", folder, "--out", out)
check(rc == 1 and "already exists" in se and "--force" in se, "pack refuses an existing --out: " + se.strip())
rc, so, se = run("pack", "--from", folder, "--out", out, "--force", "--max-side", "0")
check(rc == 0, "pack --force replaces it")
rc, so, se = run("info", out)
check("max side    0" in so and "height 15..20, width 9..20" in so, "the replaced file keeps the sizes (--max-side 0): " + so)
rc, so, se = run("pack", "--from", out, "--out", out, "--force")
check(rc == 1 and "refusing to overwrite an input" in se, "pack refuses --out = --from: " + se.strip())

# ---- corruption: a pixel byte (found by --verify only), a truncation
data = bytearray(open(out, "rb").read())
bad = os.path.join(TMP, "bad.simclr")
data[200] ^= 1
open(bad, "wb").write(data)
rc, so, se = run("info", bad)
check(rc == 0, "info without --verify opens a file with a bad pixel chunk")
rc, so, se = run("info", bad, "--verify")
check(rc == 1 and bad in se and "chunk 0 (bytes 128.." in se and "pixel chunks fail their checksum" in se,
      "info --verify names the file and the bad chunk: " + se.strip())
open(bad, "wb").write(data[:1000])
rc, so, se = run("info", bad)
check(rc == 1 and bad in se and "truncated: the header says" in se, "a truncated file: " + se.strip())
open(bad, "wb").write(b"hello, world" * 20)
rc, so, se = run("info", bad)
check(rc == 1 and "not a simclr packed dataset: wrong magic" in se, "a foreign file: " + se.strip())

# ---- Fashion-MNIST: named classes, one size
fm = "/usr/share/datasets/fashion-mnist"
if os.path.exists(os.path.join(fm, "train-images-idx3-ubyte.gz")):
    fo = os.path.join(TMP, "fm.simclr")
    rc, so, se = run("pack", "--from", fm, "--out", fo, "--subset", "500", "--split", "test")
    check(rc == 0, "pack Fashion-MNIST's test split (%s)" % se)
    rc, so, se = run("info", fo, "--verify")
    check("images      500, 1 channel(s)" in so and "sizes       all 28x28" in so and "T-shirt/top, Trouser" in so and
          "source      fashion-mnist" in so, "info of packed Fashion-MNIST: " + so)
else:
    print("(Fashion-MNIST not installed: its pack skipped)")

# ---- a pack killed mid-way: no output, and the temporary left is not a valid packed file
n, side = 60000, 32
idxf = os.path.join(TMP, "big-images-idx3-ubyte")
with open(idxf, "wb") as f:
    f.write(bytes([0, 0, 8, 3]) + struct.pack(">III", n, side, side))
    f.write(bytes(range(256)) * (n * side * side // 256))
killed = os.path.join(TMP, "killed.simclr")
p = subprocess.Popen([SIMCLR, "pack", "--from", idxf, "--out", killed, "--threads", "1", "--max-side", "5"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
tmp = []
t0 = time.time()
while not tmp and p.poll() is None and time.time() - t0 < 60:
    tmp = glob.glob(killed + ".tmp.*")
    time.sleep(0.002)
while tmp and p.poll() is None and os.path.getsize(tmp[0]) < (1 << 20) and time.time() - t0 < 60:
    time.sleep(0.002)  # until pixels are on disk (the header is still zeros)
if p.poll() is not None:
    fail("the pack ended (rc %s) before it could be killed: make the input larger" % p.returncode)
p.send_signal(signal.SIGKILL)
p.wait()
check(not os.path.exists(killed), "a killed pack leaves no file under the output name")
tmp = glob.glob(killed + ".tmp.*")
check(len(tmp) == 1, "it leaves its temporary file %s" % tmp)
rc, so, se = run("info", tmp[0])
check(rc == 1 and "wrong magic \"........\"" in se and os.path.getsize(tmp[0]) >= (1 << 20), "the temporary file is not a valid packed dataset (header written last): " +
      se.strip())
print("all packed checks passed")
