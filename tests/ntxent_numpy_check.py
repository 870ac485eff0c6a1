#!/usr/bin/python3
"""bench_ntxent --z in.npy --grad-out g.npy against an independent NumPy float64
NT-Xent (issue 6). Usage: ntxent_numpy_check.py <bench_ntxent> <scratch dir>

The NumPy side is written from the definition, not from our C++: the full
masked logit matrix, a row-wise log-sum-exp, and the gradient through
P + P^T and the normalisation.
"""
import os
import subprocess
import sys

import numpy as np


def numpy_ntxent(z, tau):
    z = z.astype(np.float64)
    V = z.shape[0]
    N = V // 2
    norm = np.linalg.norm(z, axis=1)
    zn = z / np.maximum(norm, 1e-12)[:, None]
    logits = (zn @ zn.T) / tau
    np.fill_diagonal(logits, -np.inf)
    m = logits.max(axis=1)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=1))
    pos = (np.arange(V) + N) % V
    loss = np.mean(lse - logits[np.arange(V), pos])
    P = np.exp(logits - lse[:, None])
    dzn = ((P + P.T) @ zn - 2.0 * zn[pos]) / (V * tau)
    dz = (dzn - zn * np.sum(zn * dzn, axis=1, keepdims=True)) / norm[:, None]
    return loss, dz


def run(bench, args):
    return subprocess.run([bench] + args, capture_output=True, text=True)


def main():
    bench, scratch = sys.argv[1], sys.argv[2]
    os.makedirs(scratch, exist_ok=True)
    rng = np.random.default_rng(6)
    failures = 0
    cases = [  # V, D, tau, dtype, loss tol (rel), grad tol (normwise rel)
        (2, 5, 0.1, np.float64, 1e-12, None),  # one pair: loss 0, gradient 0
        (8, 3, 0.5, np.float64, 1e-12, 1e-10),
        (64, 16, 0.07, np.float64, 1e-12, 1e-10),
        (130, 33, 0.1, np.float32, 1e-5, 1e-4),  # f32 in, f32 out: float32 rounding
    ]
    for V, D, tau, dt, ltol, gtol in cases:
        z = rng.standard_normal((V, D))
        z[V // 2:] = z[: V // 2] + 0.4 * rng.standard_normal((V // 2, D))  # peaked softmax
        z = z.astype(dt)
        zin = os.path.join(scratch, f"z_{V}_{D}.npy")
        gout = os.path.join(scratch, f"g_{V}_{D}.npy")
        np.save(zin, z)
        if os.path.exists(gout):
            os.remove(gout)
        r = run(bench, ["--z", zin, "--grad-out", gout, "--tau", str(tau), "--device", "cpu"])
        if r.returncode != 0:
            print(f"FAIL V={V} D={D}: bench_ntxent exited {r.returncode}\n{r.stdout}{r.stderr}")
            failures += 1
            continue
        line = [l for l in r.stdout.splitlines() if l.startswith("loss ")]
        ours = float(line[0].split()[1])
        g = np.load(gout)
        want_loss, want_g = numpy_ntxent(z, tau)
        lerr = abs(ours - want_loss) / max(abs(want_loss), 1e-300)
        if gtol is None:  # the true values are 0
            ok = abs(ours) < 1e-12 and np.abs(g).max() < 1e-12 and g.dtype == dt
            gerr = np.abs(g).max()
        else:
            gerr = np.abs(g.astype(np.float64) - want_g).max() / np.abs(want_g).max()
            ok = lerr <= ltol and gerr <= gtol and g.dtype == dt and g.shape == z.shape
        print(f"{'ok  ' if ok else 'FAIL'} V={V} D={D} tau={tau} {np.dtype(dt).name}: loss {ours:.12g} "
              f"(numpy {want_loss:.12g}, rel err {lerr:.2e}), gradient err {gerr:.2e}")
        failures += not ok

    # bad input: clear errors, non-zero exit, no crash
    bad3d = os.path.join(scratch, "bad3d.npy")
    np.save(bad3d, np.zeros((2, 3, 4)))
    odd = os.path.join(scratch, "odd.npy")
    np.save(odd, np.ones((5, 3)))
    for path, want in [(bad3d, "2-D"), (odd, "even"), (os.path.join(scratch, "missing.npy"), "missing.npy")]:
        r = run(bench, ["--z", path, "--device", "cpu"])
        ok = r.returncode != 0 and "error:" in r.stderr and want in r.stderr
        print(f"{'ok  ' if ok else 'FAIL'} bad input {os.path.basename(path)}: exit {r.returncode}, {r.stderr.strip()}")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
