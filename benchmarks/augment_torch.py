#!/usr/bin/env python3
"""benchmarks/augment_torch.py - torchvision v2's SimCLR pipeline, views/s, the
comparison of bench_augment (same sources, sizes and pipeline):

  RandomResizedCrop(S, antialias=False) -> RandomHorizontalFlip ->
  RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8) -> RandomGrayscale(0.2)
  -> RandomApply([GaussianBlur(k = 2 floor(floor(0.1 S) / 2) + 1, (0.1, 2))], p=0.5)
  -> ToDtype(float32, scale=True) -> Normalize(ImageNet mean/std)

on uint8 tensors already on the device. Two modes, both printed:
  batch     one call on the whole [B, 3, H, W] batch: torchvision draws ONE set
            of parameters per call (every view of the batch gets the same crop,
            flip, jitter, ...): its fastest form, not SimCLR's per-view draws;
  per-view  one call per view (per-view parameters, as bench_augment): what a
            per-sample DataLoader transform does on the GPU.

  /usr/bin/python3 benchmarks/augment_torch.py [--device cuda|cpu] [--sizes 32,96,224]
      [--views N] [--iters 5] [--warmup 1] [--json]

Without torchvision (>= 0.16, transforms.v2 with ToDtype) it prints a notice and exits 0.
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", default="32,96,224")
    ap.add_argument("--views", type=int, default=0)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        import torch
        from torchvision.transforms import v2
        v2.ToDtype  # noqa: B018 (torchvision >= 0.16)
    except Exception as e:  # noqa: BLE001
        print(f"notice: augment_torch.py: torchvision v2 unavailable ({e}): skipped")
        return 0
    dev = torch.device(a.device if (a.device != "cuda" or torch.cuda.is_available()) else "cpu")
    if dev.type != a.device:
        print(f"notice: augment_torch.py: no CUDA device, running on {dev}")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for S in [int(s) for s in a.sizes.split(",")]:
        views = a.views or (1024 if S <= 32 else 512 if S <= 96 else 128)
        if dev.type == "cpu":
            views = min(views, 64)
        H, W = (375, 500) if S == 224 else (S, S)
        k = 2 * ((int(0.1 * S)) // 2) + 1
        blur = [v2.RandomApply([v2.GaussianBlur(k, (0.1, 2.0))], p=0.5)] if k > 1 else []
        t = v2.Compose([
            v2.RandomResizedCrop(S, antialias=False),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
            v2.RandomGrayscale(0.2),
            *blur,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])
        g = torch.Generator().manual_seed(S)
        src = torch.randint(0, 256, ((views + 1) // 2, 3, H, W), dtype=torch.uint8, generator=g).to(dev)
        batch = src.repeat_interleave(2, dim=0)[:views]

        def run_batch():
            return t(batch)

        def run_views():
            return [t(batch[i]) for i in range(views)]

        for mode, fn in (("batch (one draw per batch)", run_batch), ("per-view", run_views)):
            ms = []
            for it in range(a.warmup + a.iters):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                if it >= a.warmup:
                    ms.append(1e3 * (time.perf_counter() - t0))
            ms.sort()
            m = ms[len(ms) // 2]
            vps = views / (m * 1e-3)
            if a.json:
                print(json.dumps({"bench": "augment", "impl": f"torchvision v2 {mode}", "device": dev.type,
                                  "size": S, "views": views, "ms": round(m, 4), "views_per_s": round(vps, 1)}))
            else:
                print(f"  {S:3d}x{S:<3d} torchvision v2 {mode:28s} {dev.type:4s} {views:6d} views  {m:10.3f} ms  "
                      f"{vps:12.0f} views/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
