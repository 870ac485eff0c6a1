#!/usr/bin/python3
"""An independent check of export_encoder and `simclr embed` (issue 7).

Usage: export_numpy_check.py <simclr> <export_encoder> <scratch dir>

Shares no code with the engine. For two small models (ResNet-18 with the CIFAR
stem, ResNet-50 with the ImageNet stem: max-pool, bottlenecks) it
  1. trains a few steps with `simclr train` on random IDX images it writes
     itself (so BN running statistics and weights are not at their init),
  2. exports the checkpoint with export_encoder (fp32 safetensors, bf16
     safetensors, raw),
  3. parses the .safetensors bytes itself (8-byte little-endian header length,
     JSON header, raw little-endian data), checks the names against
     torchvision's ResNet naming written out here, and the raw export against
     the safetensors one,
  4. runs the ResNet forward in float64 NumPy on a few images (NCHW, conv by
     im2col, BN with running statistics, ReLU, max-pool for the ImageNet stem,
     residual adds with projection shortcuts, global average pooling), with the
     normalisation from the manifest,
  5. compares with `simclr embed` run on the same images: normwise relative
     error <= 1e-4 (fp32 weights, and bf16 weights read as bf16 here too).
Bad inputs: a corrupt checkpoint and an unwritable output must fail with
"error: ..." and leave no file.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

TOL = 1e-4


# ---------------------------------------------------------------- file formats

def write_idx_u8(path, a):
    """IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian dims, data."""
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, a.ndim]))
        for d in a.shape:
            f.write(struct.pack(">I", d))
        f.write(np.ascontiguousarray(a, dtype=np.uint8).tobytes())


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = data[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    end = 0
    for name, e in header.items():
        b, en = e["data_offsets"]
        raw = buf[b:en]
        end = max(end, en)
        tensors[name] = decode(raw, e["dtype"], e["shape"])
    assert end == len(buf), "data buffer has trailing bytes"
    return tensors, meta


def decode(raw, dtype, shape):
    if dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2")
    elif dtype == "BF16":
        a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "I64":
        a = np.frombuffer(raw, dtype="<i8")
    else:
        raise AssertionError("unexpected dtype " + dtype)
    return a.reshape(shape)


def read_raw(bin_path, manifest):
    with open(bin_path, "rb") as f:
        data = f.read()
    assert len(data) == manifest["raw"]["file_bytes"]
    out = {}
    for e in manifest["tensors"]:
        assert e["offset"] % 64 == 0
        out[e["name"]] = decode(data[e["offset"]:e["offset"] + e["bytes"]], e["dtype"], e["shape"])
    return out


# ---------------------------------------------------------------- torchvision names

def torchvision_names(depth):
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}[depth]
    convs = 3 if depth >= 50 else 2
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    names = ["conv1.weight"] + ["bn1." + s for s in bn]
    for li, nb in enumerate(blocks, start=1):
        for bi in range(nb):
            p = "layer%d.%d." % (li, bi)
            for k in range(1, convs + 1):
                names.append(p + "conv%d.weight" % k)
                names += [p + "bn%d.%s" % (k, s) for s in bn]
            if bi == 0 and (li > 1 or depth >= 50):
                names.append(p + "downsample.0.weight")
                names += [p + "downsample.1." + s for s in bn]
    return names


# ---------------------------------------------------------------- float64 ResNet

def conv2d(x, w, stride, pad):
    """x [N, C, H, W], w [O, C, kh, kw] -> [N, O, OH, OW] via im2col."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH = (H + 2 * pad - kh) // stride + 1
    OW = (W + 2 * pad - kw) // stride + 1
    cols = np.empty((N, C, kh, kw, OH, OW))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
    cols = cols.reshape(N, C * kh * kw, OH * OW)
    y = np.einsum("ok,nkp->nop", w.reshape(O, -1), cols)
    return y.reshape(N, O, OH, OW)


def bn(x, t, p, eps):
    g, b = t[p + ".weight"], t[p + ".bias"]
    m, v = t[p + ".running_mean"], t[p + ".running_var"]
    s = (g / np.sqrt(v + eps))[None, :, None, None]
    return (x - m[None, :, None, None]) * s + b[None, :, None, None]


def relu(x):
    return np.maximum(x, 0)


def maxpool3x3s2p1(x):
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    OH, OW = (H - 1) // 2 + 1, (W - 1) // 2 + 1
    out = np.full((N, C, OH, OW), -np.inf)
    for i in range(3):
        for j in range(3):
            out = np.maximum(out, xp[:, :, i:i + 2 * OH:2, j:j + 2 * OW:2])
    return out


def resnet_forward(t, x, stem, eps):
    t = {k: v.astype(np.float64) for k, v in t.items()}
    bottleneck = "layer1.0.conv3.weight" in t
    if stem == "imagenet":
        h = relu(bn(conv2d(x, t["conv1.weight"], 2, 3), t, "bn1", eps))
        h = maxpool3x3s2p1(h)
    else:
        h = relu(bn(conv2d(x, t["conv1.weight"], 1, 1), t, "bn1", eps))
    for li in range(1, 5):
        bi = 0
        while "layer%d.%d.conv1.weight" % (li, bi) in t:
            p = "layer%d.%d." % (li, bi)
            stride = 2 if (li > 1 and bi == 0) else 1
            if bottleneck:
                y = relu(bn(conv2d(h, t[p + "conv1.weight"], 1, 0), t, p + "bn1", eps))
                y = relu(bn(conv2d(y, t[p + "conv2.weight"], stride, 1), t, p + "bn2", eps))
                y = bn(conv2d(y, t[p + "conv3.weight"], 1, 0), t, p + "bn3", eps)
            else:
                y = relu(bn(conv2d(h, t[p + "conv1.weight"], stride, 1), t, p + "bn1", eps))
                y = bn(conv2d(y, t[p + "conv2.weight"], 1, 1), t, p + "bn2", eps)
            if p + "downsample.0.weight" in t:
                idn = bn(conv2d(h, t[p + "downsample.0.weight"], stride, 0), t, p + "downsample.1", eps)
            else:
                idn = h
            h = relu(y + idn)
            bi += 1
    return h.mean(axis=(2, 3))


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


# ---------------------------------------------------------------- driver

def run(cmd, expect_ok=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        print("FAILED:", " ".join(cmd), "\n", r.stdout, r.stderr)
        sys.exit(1)
    return r


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)
    print("ok:", what)


def one_model(simclr, export, work, arch, width, stem, size, rng, also_bf16):
    d = os.path.join(work, arch + "-" + stem)
    os.makedirs(d)
    train = rng.integers(0, 256, size=(48, size, size, 3), dtype=np.uint8)
    write_idx_u8(os.path.join(d, "train-images"), train)
    cfg = {
        "data": {"dataset": "idx", "images": os.path.join(d, "train-images"), "channels": 3, "image_size": size,
                 "mean": [0.45, 0.5, 0.55], "std": [0.22, 0.25, 0.28], "workers": 1},
        "model": {"arch": arch, "width": width, "stem": stem},
        "head": {"depth": 2, "out": 16},
        "optimizer": {"name": "lars", "lr": 0.5},
        "schedule": {"warmup_epochs": 0},
        "train": {"epochs": 1, "batch": 16, "max_steps": 3, "threads": 2, "run_dir": os.path.join(d, "run"),
                  "log_interval": 1},
        "eval": {"knn_every": 0, "linear_at_end": False, "raw_pixels": False, "random_init": False},
    }
    with open(os.path.join(d, "run.json"), "w") as f:
        json.dump(cfg, f)
    run([simclr, "train", os.path.join(d, "run.json")])
    ckpts = sorted(x for x in os.listdir(os.path.join(d, "run")) if x.endswith(".ckpt"))
    check(len(ckpts) >= 1, arch + ": simclr train wrote a checkpoint")
    ckpt = os.path.join(d, "run", ckpts[-1])

    st_path = os.path.join(d, "enc.safetensors")
    run([export, ckpt, "--out", st_path])
    tensors, meta = read_safetensors(st_path)
    with open(os.path.join(d, "enc.json")) as f:
        manifest = json.load(f)
    depth = int(arch[len("resnet"):])
    check(list(tensors) and set(tensors) == set(torchvision_names(depth)),
          arch + ": tensor names are exactly torchvision's (no fc.*)")
    check(all(tensors[n].dtype == np.float32 for n in tensors if not n.endswith("num_batches_tracked")) and
          all(tensors[n].dtype == np.int64 and tensors[n].shape == () and tensors[n] == 3
              for n in tensors if n.endswith("num_batches_tracked")),
          arch + ": fp32 weights, int64 scalar num_batches_tracked = 3 steps")
    k = 3 if stem == "cifar" else 7
    check(tensors["conv1.weight"].shape == (max(1, round(64 * width)), 3, k, k),
          arch + ": conv1.weight is O x I x kH x kW = %s" % (tensors["conv1.weight"].shape,))
    check(json.loads(meta["simclr_manifest"])["architecture"] == arch and manifest["architecture"] == arch and
          manifest["model"]["stem"] == stem and manifest["input"]["image_size"] == size and
          manifest["training"]["step"] == 3 and manifest["training"]["final_loss"] is not None and
          manifest["engine"]["commit"] and manifest["training"]["config_hash"].startswith("fnv1a64:"),
          arch + ": manifest (architecture, stem, input, step, loss, hash, commit)")
    check(not np.allclose(tensors["bn1.running_var"], 1.0) and not np.allclose(tensors["bn1.running_mean"], 0.0),
          arch + ": BN running statistics moved away from their init")

    # raw export == safetensors export
    raw_path = os.path.join(d, "raw", "enc.bin")
    os.makedirs(os.path.dirname(raw_path))
    run([export, ckpt, "--out", raw_path, "--format", "raw"])
    with open(os.path.join(d, "raw", "enc.json")) as f:
        raw = read_raw(raw_path, json.load(f))
    check(set(raw) == set(tensors) and all(np.array_equal(raw[n], tensors[n]) for n in raw),
          arch + ": raw export holds the same tensors as the safetensors export")

    # embed vs float64 NumPy
    imgs = rng.integers(0, 256, size=(5, size, size, 3), dtype=np.uint8)
    np.save(os.path.join(d, "imgs.npy"), imgs)
    mean = np.array(manifest["input"]["mean"], dtype=np.float64)
    std = np.array(manifest["input"]["std"], dtype=np.float64)
    x = ((imgs.astype(np.float64) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    eps = manifest["model"]["bn_eps"]
    ref = resnet_forward(tensors, x, stem, eps)
    check(ref.shape == (5, manifest["feature_dim"]), arch + ": reference features [5, %d]" % manifest["feature_dim"])

    feats = os.path.join(d, "f.npy")
    run([simclr, "embed", "--weights", st_path, "--data", os.path.join(d, "imgs.npy"), "--out", feats,
         "--batch", "2"])
    got = np.load(feats)
    check(got.dtype == np.float32 and got.shape == ref.shape, arch + ": embed wrote float32 %s" % (got.shape,))
    e = rel_err(got.astype(np.float64), ref)
    check(e <= TOL, arch + ": simclr embed vs NumPy float64 forward, rel err %.2e <= %g" % (e, TOL))

    run([simclr, "embed", "--weights", ckpt, "--data", os.path.join(d, "imgs.npy"), "--out", feats])
    e2 = rel_err(np.load(feats).astype(np.float64), ref)
    check(e2 <= TOL, arch + ": embed from the checkpoint itself, rel err %.2e" % e2)

    if also_bf16:
        bf_path = os.path.join(d, "enc_bf16.safetensors")
        run([export, ckpt, "--out", bf_path, "--dtype", "bf16"])
        bt, _ = read_safetensors(bf_path)
        check(all(bt[n].dtype == np.int64 for n in bt if n.endswith("num_batches_tracked")),
              arch + ": bf16 export keeps num_batches_tracked int64")
        w32 = tensors["conv1.weight"].astype(np.float32)
        bits = w32.view(np.uint32)
        rne = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
        check(np.array_equal(bt["conv1.weight"], rne), arch + ": bf16 weights = round-to-nearest-even of fp32")
        ref_bf = resnet_forward(bt, x, stem, eps)
        run([simclr, "embed", "--weights", bf_path, "--data", os.path.join(d, "imgs.npy"), "--out", feats])
        e3 = rel_err(np.load(feats).astype(np.float64), ref_bf)
        check(e3 <= TOL, arch + ": bf16 export: embed vs NumPy with the same bf16 weights, rel err %.2e" % e3)
    return ckpt


def main():
    simclr, export, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = np.random.default_rng(20240607)
    ckpt = one_model(simclr, export, work, "resnet18", 0.125, "cifar", 16, rng, also_bf16=True)
    one_model(simclr, export, work, "resnet50", 0.0625, "imagenet", 32, rng, also_bf16=False)

    # Errors: corrupt checkpoint, unwritable output, unknown format; no file left.
    bad = os.path.join(work, "bad")
    os.makedirs(bad)
    with open(ckpt, "rb") as f:
        b = bytearray(f.read())
    b[len(b) // 2] ^= 0xFF
    with open(os.path.join(bad, "corrupt.ckpt"), "wb") as f:
        f.write(b)
    r = run([export, os.path.join(bad, "corrupt.ckpt"), "--out", os.path.join(bad, "e.safetensors")], False)
    check(r.returncode != 0 and "error: checkpoint" in r.stderr and "checksum mismatch" in r.stderr,
          "corrupt checkpoint: " + r.stderr.strip())
    r = run([export, ckpt, "--out", os.path.join(bad, "missing", "e.safetensors")], False)
    check(r.returncode != 0 and "error: cannot write" in r.stderr, "unwritable output: " + r.stderr.strip())
    r = run([export, ckpt, "--out", os.path.join(bad, "e.safetensors"), "--format", "onnx"], False)
    check(r.returncode != 0 and "error: unknown format 'onnx'" in r.stderr, "unknown format: " + r.stderr.strip())
    check(sorted(os.listdir(bad)) == ["corrupt.ckpt"], "no partial file left behind")
    print("export_numpy_check: all checks passed")


if __name__ == "__main__":
    main()
