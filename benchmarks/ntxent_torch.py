#!/usr/bin/env python3
"""PyTorch NT-Xent at the sizes bench_ntxent measures (issue 6; CPU: issue 18).

Two implementations of the textbook SimCLR loss, timed forward and
forward+backward with CUDA events (median and p90 after warm-up; with
--device cpu: wall clock, torch.set_num_threads(--threads), eager only by
default):
  torch-eager    F.normalize -> matmul -> masked_fill(diagonal, -inf) -> F.cross_entropy
  torch-compile  the same function under torch.compile (default mode)
The diagonal mask and the targets are built once, outside the timed region.
Peak extra memory = max_memory_allocated() above what the inputs hold (CPU:
the growth of the process's peak RSS during the pass, so only the first pass
that raises the peak shows; 0 after it).
Output: a human table, and with --json one line per measurement in the
format of `bench_ntxent --json` (impl torch-eager / torch-compile).

usage: ntxent_torch.py [--n 8192] [--d 128] [--dtype bf16|fp32] [--tau 0.1]
                       [--warmup 10] [--iters 50] [--sweep] [--json] [--modes eager,compile]
                       [--device cuda|cpu] [--threads T]
(bench_ntxent --device cpu runs this with --device cpu --dtype fp32 --json.)
"""
import argparse
import json
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print(f"error: PyTorch is not importable by {sys.executable}: {e}", file=sys.stderr)
    sys.exit(2)


def ntxent(z, tau, mask, targets):
    zn = F.normalize(z, dim=1)
    logits = (zn @ zn.t()) / tau
    logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, targets)


def stats(ms):
    ms = sorted(ms)
    return ms[len(ms) // 2], ms[min(len(ms) - 1, int(-(-0.9 * len(ms) // 1)) - 1)]


def time_fn(fn, warmup, iters, dev):
    for _ in range(warmup):
        fn()
    if dev.type == "cpu":
        ms = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t0) * 1e3)
        return stats(ms)
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for a, b in ev:
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    return stats([a.elapsed_time(b) for a, b in ev])


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def measure(impl, f, V, D, dtype, tau, warmup, iters, dev):
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gen = torch.Generator(device="cpu").manual_seed(1)
    z0 = torch.randn(V, D, generator=gen)
    z0[V // 2:] = z0[: V // 2] + 0.5 * torch.randn(V // 2, D, generator=gen)
    z = z0.to(dev, dtype).requires_grad_(True)
    mask = torch.eye(V, dtype=torch.bool, device=dev)
    targets = (torch.arange(V, device=dev) + V // 2) % V
    out = []
    for pas in ("fwd", "fwd+bwd"):
        def step():
            z.grad = None
            loss = f(z, tau, mask, targets)
            if pas == "fwd+bwd":
                loss.backward()
            return loss
        sync()
        try:
            if cuda:
                step()  # compile / allocate outside the memory measurement's baseline
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            else:  # the first call's peak is the one to see
                base = peak_rss_bytes()
            med, p90 = time_fn(step, warmup, iters, dev)
            extra = (torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()) - base
            out.append(dict(impl=impl, pass_=pas, median_ms=med, p90_ms=p90, extra_bytes=extra, note=""))
        except torch.cuda.OutOfMemoryError:
            out.append(dict(impl=impl, pass_=pas, median_ms=None, p90_ms=None, extra_bytes=None, note="out of memory"))
        except Exception as e:  # torch.compile without a working toolchain, ...
            out.append(dict(impl=impl, pass_=pas, median_ms=None, p90_ms=None, extra_bytes=None,
                            note=f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"))
        z.grad = None
        if cuda:
            torch.cuda.empty_cache()
    del z, mask, targets
    if cuda:
        torch.cuda.empty_cache()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8192, help="views 2N")
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=None, help="default 10 (cpu: 1)")
    ap.add_argument("--iters", type=int, default=None, help="default 50 (cpu: 3)")
    ap.add_argument("--sweep", action="store_true", help="2N = 512 ... 131072")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--modes", default=None, help="default eager,compile (cpu: eager)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="cpu: torch.set_num_threads (0: torch's default)")
    a = ap.parse_args()
    cpu = a.device == "cpu"
    if a.warmup is None:
        a.warmup = 1 if cpu else 10
    if a.iters is None:
        a.iters = 3 if cpu else 50
    if a.modes is None:
        a.modes = "eager" if cpu else "eager,compile"
    if not cpu and not torch.cuda.is_available():
        print("SKIPPED: torch.cuda.is_available() is False", file=sys.stderr)
        return 0
    if cpu and a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.n < 2 or a.n % 2:
        print(f"error: --n must be even and >= 2, got {a.n}", file=sys.stderr)
        return 2
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    dev = torch.device(a.device)
    name = f"cpu ({torch.get_num_threads()} threads)" if cpu else torch.cuda.get_device_name()
    sizes = [512 * 2 ** k for k in range(9)] if a.sweep else [a.n]
    impls = []
    modes = a.modes.split(",")
    if "eager" in modes:
        impls.append(("torch-eager", ntxent))
    if "compile" in modes:
        torch._dynamo.config.cache_size_limit = 64
        impls.append(("torch-compile", torch.compile(ntxent, dynamic=False)))
    try:
        tf32 = "-" if cpu else torch.backends.cuda.matmul.allow_tf32
    except Exception:  # newer precision API
        tf32 = "?"
    print(f"ntxent_torch: torch {torch.__version__} on {name}, {a.dtype}, d={a.d}, tau={a.tau}, "
          f"matmul tf32 {tf32}", file=sys.stderr if a.json else sys.stdout)
    for V in sizes:
        for impl, f in impls:
            for m in measure(impl, f, V, a.d, dtype, a.tau, a.warmup, a.iters, dev):
                if a.json:
                    print(json.dumps(dict(bench="ntxent", impl=m["impl"], **{"pass": m["pass_"]}, n=V, d=a.d,
                                          dtype=a.dtype, tau=a.tau, device=name, median_ms=m["median_ms"],
                                          p90_ms=m["p90_ms"], extra_bytes=m["extra_bytes"], note=m["note"],
                                          torch=torch.__version__)))
                else:
                    if m["median_ms"] is None:
                        print(f"  2N={V:7d} {impl:14s} {m['pass_']:8s} {m['note']}")
                    else:
                        print(f"  2N={V:7d} {impl:14s} {m['pass_']:8s} median {m['median_ms']:9.4f} ms  "
                              f"p90 {m['p90_ms']:9.4f} ms  extra {m['extra_bytes'] / 2**20:9.1f} MiB")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
