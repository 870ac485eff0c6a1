#!/usr/bin/python3
"""Writes the small seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).
Pure Python (PIL only for the JPEG seed, skipped without it). Re-run to regenerate;
the outputs are committed (a few KB in all)."""
import gzip
import io
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx(dims, data, code=0x08):
    return bytes([0, 0, code, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims) + bytes(data)


def png(w, h, channels):
    color = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\0" + bytes((x * 37 + y * 11 + c) % 256 for x in range(w) for c in range(channels)) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bmp(w, h):
    row = bytes((x * 40) % 256 for x in range(w) for _ in range(3))
    row += b"\0" * ((-len(row)) % 4)
    pix = row * h
    return (b"BM" + struct.pack("<IHHI", 54 + len(pix), 0, 0, 54) +
            struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pix), 2835, 2835, 0, 0) + pix)


def npy(descr, shape, payload):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d, " % s for s in shape) if len(shape) != 1 else "%d," % shape[0])
    hdr += " " * ((-(10 + len(hdr) + 1)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + payload


def packed(images, channels, labels, classes, source, chunk=64):
    """A simclr packed file (data/packed.h, docs/data.md): images = [(h, w, bytes)]."""
    pix = b"".join(b for _, _, b in images)
    crcs = [zlib.crc32(pix[i:i + chunk]) & 0xFFFFFFFF for i in range(0, len(pix), chunk)]
    tables_offset = 128 + len(pix) + (-(128 + len(pix))) % 64
    index, off = b"", 0
    for h, w, b in images:
        index += struct.pack("<QII", off, h, w)
        off += len(b)
    t = index
    labels_offset = 0
    if labels is not None:
        labels_offset = tables_offset + len(t)
        t += struct.pack("<%di" % len(labels), *labels)
        t += b"\0" * ((-len(t)) % 8)
    strings_offset = tables_offset + len(t)
    strs = b"".join(struct.pack("<I", len(x.encode())) + x.encode() for x in [source, "seed"] + classes)
    t += strs + b"\0" * ((-len(strs)) % 8)
    checksums_offset = tables_offset + len(t)
    t += struct.pack("<%dI" % len(crcs), *crcs)
    fixed = len(set((h, w) for h, w, _ in images)) == 1
    flags = (1 if labels is not None else 0) | (2 if fixed else 0)
    hdr = b"SIMCLRPK" + struct.pack("<IIQIIIIII", 1, 128, len(images), channels, flags, chunk, len(classes), 0, 0)
    hdr += struct.pack("<QQQQQQQQQ", len(pix), tables_offset, tables_offset, labels_offset, strings_offset,
                       len(strs), checksums_offset, len(crcs), tables_offset + len(t))
    hdr += struct.pack("<I", zlib.crc32(t) & 0xFFFFFFFF)
    hdr += struct.pack("<I", zlib.crc32(hdr) & 0xFFFFFFFF)
    assert len(hdr) == 128
    return hdr + pix + b"\0" * (tables_offset - 128 - len(pix)) + t


def main():
    # config: a complete small run config and a minimal one
    out("config", "small.json", json.dumps({
        "data": {"dataset": "idx", "images": "/nonexistent/train-images-idx3-ubyte", "channels": 1, "image_size": 16,
                 "mean": [0.5], "std": [0.25], "augment": {"blur_p": 0.5}},
        "model": {"arch": "resnet18", "width": 0.0625, "stem": "cifar"},
        "head": {"depth": 2, "out": 16}, "optimizer": {"name": "lars", "lr": 0.5},
        "schedule": {"warmup_epochs": 1}, "train": {"epochs": 4, "batch": 16, "run_dir": "/nonexistent/run"},
        "eval": {"knn_every": 1, "knn_k": 5}}, indent=1).encode())
    out("config", "empty.json", b"{}")
    # idx: u16 labels length, labels, images (raw / gzip)
    imgs = idx([2, 4, 4], range(32))
    labs = idx([2], [3, 7], 0x08)
    out("idx", "raw", struct.pack("<H", len(labs)) + labs + imgs)
    out("idx", "gzip", struct.pack("<H", 0) + gzip.compress(imgs, mtime=0))
    gl = gzip.compress(labs, mtime=0)
    out("idx", "gzip-both", struct.pack("<H", len(gl)) + gl + gzip.compress(imgs, mtime=0))
    # cifar: selector byte, then one record (label + 3x32x32)
    rec10 = bytes([4]) + bytes((i * 7) % 256 for i in range(3072))
    out("cifar", "cifar10", b"\0" + rec10)
    out("cifar", "cifar100", b"\1" + bytes([1, 42]) + bytes((i * 5) % 256 for i in range(3072)))
    # images: selector byte (channels), then the file
    out("image", "grey.png", b"\0" + png(5, 3, 1))
    out("image", "rgba.png", b"\1" + png(4, 4, 4))
    out("image", "rgb.bmp", b"\1" + bmp(3, 2))
    try:
        from PIL import Image
        b = io.BytesIO()
        Image.new("RGB", (8, 8), (200, 30, 90)).save(b, "JPEG", quality=50)
        out("image", "rgb.jpg", b"\1" + b.getvalue())
    except ImportError:
        pass
    # packed: selector byte (0: CRCs recomputed by the target, 3: kept; channels), then the file
    grey = [(3, 4, bytes((i * 9) % 256 for i in range(12))), (3, 4, bytes(range(12))), (3, 4, bytes(12))]
    out("packed", "grey-labelled", b"\0" + packed(grey, 1, [0, 1, 1], ["a", "b"], "idx"))
    rgb = [(2, 3, bytes(range(18))), (5, 1, bytes(range(100, 115)))]
    out("packed", "rgb-unlabelled-raw-crc", b"\3" + packed(rgb, 3, None, [], "image-folder", chunk=16))
    # npy
    out("npy", "f32.npy", npy("<f4", (2, 3), struct.pack("<6f", *range(6))))
    out("npy", "u8.npy", npy("|u1", (2, 2, 2), bytes(range(8))))
    out("npy", "i64.npy", npy("<i8", (3,), struct.pack("<3q", 1, -1, 5)))
    # safetensors
    hdr = json.dumps({"__metadata__": {"format": "pt"},
                      "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                      "b": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]}}).encode()
    out("safetensors", "two.safetensors", struct.pack("<Q", len(hdr)) + hdr + struct.pack("<4f", 1, 2, 3, 4) +
        struct.pack("<q", 9))
    # checkpoint (without its CRC: fuzz_checkpoint appends it)
    header = json.dumps({"meta": {"format": "simclr-checkpoint", "state": {
        "step": 6, "epoch": 1, "batch_in_epoch": 2, "steps_per_epoch": 4, "total_steps": 16,
        "epoch_loss_sum": 7.5, "epoch_loss_steps": 2}, "config": {"train": {"batch": 8}}},
        "tensors": [
            {"name": "conv1.weight", "group": "model", "dtype": "f32", "shape": [2, 3, 3, 1], "offset": 0,
             "bytes": 72, "flags": ["trainable"]},
            {"name": "momentum", "group": "optimizer", "dtype": "f32", "shape": [4], "offset": 128, "bytes": 16,
             "flags": []}]}).encode()
    pre = b"SIMCLRCK" + struct.pack("<IIQ", 1, 0, len(header)) + header
    pre += b"\0" * ((-len(pre)) % 64)
    out("checkpoint", "small.ckpt-nocrc", pre + bytes(range(72)) + b"\0" * 56 + bytes(16))


if __name__ == "__main__":
    main()
