#!/usr/bin/env bash
# benchmarks/ntxent_compare.sh - one table on one GPU: our fused NT-Xent, the
# unfused cuBLAS baseline (both from bench_ntxent, same process), PyTorch eager
# and torch.compile (benchmarks/ntxent_torch.py), and the ratios.
#
# usage: benchmarks/ntxent_compare.sh [BUILD_DIR]        (default: build)
# env:   SIZES="8192 32768 131072"  D=128  DTYPE=bf16  TAU=0.1  WARMUP=10  ITERS=50
#        PYTHON=python3 (needs torch with CUDA)   OUT=<dir> (also write table + raw JSON there)
#        COMMIT=<id> (recorded when the binaries were built without .git)
# Ratios are "times faster than": unfused/ours, eager/ours, compile/ours (median ms).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build}"
bench="$build/bench_ntxent"
SIZES="${SIZES:-8192 32768 131072}"
D="${D:-128}"; DTYPE="${DTYPE:-bf16}"; TAU="${TAU:-0.1}"; WARMUP="${WARMUP:-10}"; ITERS="${ITERS:-50}"
PYTHON="${PYTHON:-python3}"
[ -x "$bench" ] || { echo "error: $bench not found (build the bench_ntxent target first)" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for n in $SIZES; do
  echo "== 2N=$n d=$D $DTYPE: bench_ntxent" >&2
  "$bench" --n "$n" --d "$D" --dtype "$DTYPE" --tau "$TAU" --warmup "$WARMUP" --iters "$ITERS" --json \
    > "$tmp/ours_$n.txt" 2>&1 || echo "   (bench_ntxent exited $?)" >&2
  grep '^{' "$tmp/ours_$n.txt" >> "$tmp/all.jsonl"
  grep -v '^{' "$tmp/ours_$n.txt" >&2
  echo "== 2N=$n d=$D $DTYPE: PyTorch ($PYTHON)" >&2
  "$PYTHON" "$here/ntxent_torch.py" --n "$n" --d "$D" --dtype "$DTYPE" --tau "$TAU" --warmup "$WARMUP" \
    --iters "$ITERS" --json > "$tmp/torch_$n.txt" 2>"$tmp/torch_$n.err" || echo "   (ntxent_torch.py exited $?)" >&2
  cat "$tmp/torch_$n.err" >&2
  grep '^{' "$tmp/torch_$n.txt" >> "$tmp/all.jsonl"
done

# merge: stdlib python only
"$PYTHON" - "$tmp/all.jsonl" "${COMMIT:-}" > "$tmp/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
dev = next((r.get("device") for r in rows if r.get("impl") == "fused"), "?")
commit = next((r.get("commit") for r in rows if r.get("commit") not in (None, "", "unknown")), None) or sys.argv[2] or "?"
torch_v = next((r.get("torch") for r in rows if r.get("torch")), "?")
key = lambda r: (r["n"], r["d"], r["dtype"], r["pass"])
by = {}
for r in rows:
    by.setdefault(key(r), {})[r["impl"]] = r
def ms(r):
    return None if r is None or r.get("median_ms") is None else r["median_ms"]
def fmt(x, f="{:.3f}"):
    return "-" if x is None else f.format(x)
print(f"NT-Xent on {dev}, commit {commit}, torch {torch_v} (median ms; ratio = times faster than, ours = fused)\n")
print("| 2N | d | dtype | pass | ours ms | unfused ms | eager ms | compile ms | unfused/ours | eager/ours | compile/ours | ours MiB | unfused MiB | eager MiB | compile MiB |")
print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for k in sorted(by):
    if k[3] not in ("fwd", "fwd+bwd"):
        continue
    g = by[k]
    o, u, e, c = (ms(g.get(i)) for i in ("fused", "unfused", "torch-eager", "torch-compile"))
    ratio = lambda x: None if x is None or o is None else x / o
    mib = lambda i: None if g.get(i) is None or g[i].get("extra_bytes") in (None, -1) else g[i]["extra_bytes"] / 2**20
    note = lambda i: (g.get(i) or {}).get("note") or ""
    ecell = fmt(e) if e is not None else (note("torch-eager") or "-")
    ccell = fmt(c) if c is not None else (note("torch-compile") or "-")
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {fmt(o)} | {fmt(u)} | {ecell} | {ccell} | {fmt(ratio(u), '{:.2f}x')} | "
          f"{fmt(ratio(e), '{:.2f}x')} | {fmt(ratio(c), '{:.2f}x')} | {fmt(mib('fused'), '{:.1f}')} | "
          f"{fmt(mib('unfused'), '{:.1f}')} | {fmt(mib('torch-eager'), '{:.1f}')} | {fmt(mib('torch-compile'), '{:.1f}')} |")
PY
cat "$tmp/table.md"
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  cp "$tmp/table.md" "$OUT/ntxent_compare_${DTYPE}_d${D}.md"
  cp "$tmp/all.jsonl" "$OUT/ntxent_compare_${DTYPE}_d${D}.jsonl"
fi
