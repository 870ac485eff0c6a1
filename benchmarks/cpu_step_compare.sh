#!/usr/bin/env bash
# benchmarks/cpu_step_compare.sh - our CPU training step against PyTorch's, in
# one go: runs bench_train_step (ours) and train_step_torch.py (PyTorch,
# channels-last, oneDNN convolutions) back to back, interleaved, on the same
# model, width, batch and thread count, then prints views/s for both (median
# over the repeats), the ratio, CPU seconds per step, and the machine load
# before and after (other work on the machine skews both; the interleaving
# keeps the ratio fair, the load says how much to trust the absolute numbers).
#
#   benchmarks/cpu_step_compare.sh [--build DIR] [--repeats R] [--wait-policy P] [--bf16] [--markdown] [-- bench options]
#     --build DIR   build directory holding bench_train_step (default: build)
#     --repeats R   interleaved (ours, PyTorch) pairs (default 3)
#     --wait-policy passive|active|default
#                   OMP_WAIT_POLICY for both sides (default: passive, unless
#                   OMP_WAIT_POLICY is already set). Both use libgomp, whose
#                   default spin-waiting at every barrier burns the other
#                   core when the machine is shared: under a load of ~5 on 2
#                   cores both sides lose 2-3x with it (an idle machine was
#                   not available to measure passive's cost there: futex
#                   wake-ups instead of spinning). "default" leaves libgomp's.
#     --markdown    also print a table row for benchmarks/results/cpu_step.md
#     --bf16        also ours with --precision bf16 and PyTorch with bf16
#                   autocast (train_step_torch.py --amp), interleaved with the
#                   fp32 pair; prints ours bf16 against both PyTorch modes
#     bench options are passed to both sides: --depth --width --stem --channels
#                   --size --views --threads --steps --warmup
#                   (defaults: ResNet-18, width 0.25, CIFAR stem, 1x28x28,
#                   512 views, 2 threads, 10 steps)
# It also prints the step's convolution FLOP rate and its fraction of the CPU's
# peak: FLOPs counted from the model (forward 2·K·O per output pixel, backward
# data and weights the same again each; the stem has no data gradient), peak =
# cores x MHz (lscpu/cpuinfo) x FLOPs per cycle per core (32 for fp32 with
# AVX-512 or AVX2+FMA: two 256-bit FMA pipes or one 512-bit; twice that for
# bf16 dot products, AVX512-BF16), an estimate to set with PEAK_GFLOPS_FP32=.
# PyTorch comes from Debian's python3-torch for /usr/bin/python3; the script
# installs it with apt-get when it is missing (the README commands never need it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="$root/build"
repeats=3
markdown=0
bf16=0
policy="${OMP_WAIT_POLICY:-passive}"

args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --markdown) markdown=1; shift ;;
    --bf16) bf16=1; shift ;;
    --wait-policy) policy="$2"; shift 2 ;;
    --) shift; args+=("$@"); break ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$policy" in
  passive|PASSIVE|active|ACTIVE) export OMP_WAIT_POLICY="$policy" ;;
  default) unset OMP_WAIT_POLICY; policy="default (libgomp)" ;;
  *) echo "error: --wait-policy must be passive, active or default, got '$policy'" >&2; exit 1 ;;
esac
bench="$build/bench_train_step"
[[ -x "$bench" ]] || { echo "error: $bench not found (cmake --build $build --target bench_train_step)" >&2; exit 1; }
py=/usr/bin/python3
[[ -x "$py" ]] || { echo "error: /usr/bin/python3 not found (apt-get install python3)" >&2; exit 1; }
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "PyTorch missing for $py: installing Debian's python3-torch" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch >&2
fi

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= repeats; r++)); do
  "$bench" --json --no-profile "${args[@]}" | sed 's/^/ours /' >>"$out"
  "$py" "$here/train_step_torch.py" "${args[@]}" | sed 's/^/torch /' >>"$out"
  if [[ $bf16 == 1 ]]; then
    "$bench" --json --no-profile --precision bf16 "${args[@]}" | sed 's/^/ours_bf16 /' >>"$out"
    "$py" "$here/train_step_torch.py" --amp "${args[@]}" | sed 's/^/torch_amp /' >>"$out"
  fi
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

model="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
cores="$(nproc)"
commit="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
mhz="$(lscpu | sed -n 's/^CPU max MHz: *//p' | head -1)"
[[ -n "$mhz" ]] || mhz="$(sed -n 's/^cpu MHz[^:]*: *//p' /proc/cpuinfo | head -1)"
isa="$(grep -o -w -E 'avx512_bf16|avx512f|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
"$py" - "$out" "$load_before" "$load_after" "$model" "$cores" "$commit" "$markdown" "${args[*]:-}" "$policy" "${mhz:-0}" "$isa" "${PEAK_GFLOPS_FP32:-}" <<'EOF'
import json, statistics, sys, datetime
path, lb, la, model, cores, commit, md, args, policy, mhz, isa, peak_env = sys.argv[1:13]
runs = {"ours": [], "torch": [], "ours_bf16": [], "torch_amp": []}
for line in open(path):
    who, _, js = line.partition(" ")
    runs[who].append(json.loads(js))
o, t = runs["ours"], runs["torch"]
med = lambda rs, k: statistics.median(r[k] for r in rs)
print("machine: %s, %s cores; load average before %s, after %s" % (model, cores, lb, la))
print("model: ResNet-%d width %g, %dx%d, %d views/step, %d threads, %d steps x %d interleaved repeats; "
      "OMP_WAIT_POLICY %s" % (o[0]["depth"], o[0]["width"], o[0]["size"], o[0]["size"], o[0]["views"], o[0]["threads"],
                              o[0]["steps"], len(o), policy))
for name, rs in (("simclr ", o), ("pytorch", t)):
    print("  %s views/s: %s   CPU-s/step: %s   (%s)" % (name, "  ".join("%7.1f" % r["views_per_s"] for r in rs),
          "  ".join("%6.3f" % r["cpu_s_per_step"] for r in rs), rs[0]["impl"]))
vo, vt = med(o, "views_per_s"), med(t, "views_per_s")
co, ct = med(o, "cpu_s_per_step"), med(t, "cpu_s_per_step")
print("median views/s: simclr %.1f, pytorch %.1f -> ratio simclr/pytorch %.2fx" % (vo, vt, vo / vt))
print("median CPU-s/step: simclr %.3f, pytorch %.3f -> CPU-time ratio pytorch/simclr %.2fx" % (co, ct, ct / co))
ob, ta = runs["ours_bf16"], runs["torch_amp"]
if ob:
    for name, rs in (("simclr bf16 ", ob), ("pytorch amp ", ta)):
        print("  %s views/s: %s   (%s)" % (name, "  ".join("%7.1f" % r["views_per_s"] for r in rs), rs[0]["impl"]))
    vb, va = med(ob, "views_per_s"), med(ta, "views_per_s")
    print("median views/s: simclr bf16 %.1f, pytorch bf16 autocast %.1f -> ratio %.2fx; simclr bf16 / pytorch fp32 %.2fx; "
          "simclr bf16 / simclr fp32 %.2fx" % (vb, va, vb / va, vb / vt, vb / vo))

# The convolutions' FLOPs per step (ResNet basic blocks or bottlenecks as built by both sides).
def conv_flops(depth, width, stem, channels, size):
    layers = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[depth]
    W = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
    bott = depth >= 50
    total = 0.0
    def conv(cin, cout, k, s, h, first=False):
        nonlocal total
        ho = (h + 2 * (k // 2) - k) // s + 1
        f = 2.0 * k * k * cin * cout * ho * ho
        total += f * (2 if first else 3)  # forward, backward weights (+ backward data)
        return ho
    h = size
    if stem == "cifar":
        h = conv(channels, W[0], 3, 1, h, True)
    else:
        h = conv(channels, W[0], 7, 2, h, True)
        h = (h + 2 - 3) // 2 + 1
    cin = W[0]
    for i, (p, n) in enumerate(zip(W, layers)):
        for b in range(n):
            s = 2 if (i > 0 and b == 0) else 1
            if bott:
                h1 = conv(cin, p, 1, 1, h)
                h2 = conv(p, p, 3, s, h1)
                conv(p, 4 * p, 1, 1, h2)
                if s != 1 or cin != 4 * p:
                    conv(cin, 4 * p, 1, s, h)
                cin, h = 4 * p, h2
            else:
                h2 = conv(cin, p, 3, s, h)
                conv(p, p, 3, 1, h2)
                if s != 1 or cin != p:
                    conv(cin, p, 1, s, h)
                cin, h = p, h2
    return total
r0 = o[0]
stem = "cifar"
a_list = args.split()
if "--stem" in a_list: stem = a_list[a_list.index("--stem") + 1]
ch = int(a_list[a_list.index("--channels") + 1]) if "--channels" in a_list else 1
fl = conv_flops(r0["depth"], r0["width"], stem, ch, r0["size"]) * r0["views"]
threads = r0["threads"]
fpc = 32 if ("avx512f" in isa or "fma" in isa) else 16
peak32 = float(peak_env) if peak_env else threads * float(mhz) * 1e6 * fpc / 1e9
peak16 = peak32 * (2 if "avx512_bf16" in isa else 1)
print("convolution work: %.2f GFLOP per step; peak estimate for %d threads at %.0f MHz: %.0f GFLOP/s fp32, %.0f bf16%s"
      % (fl / 1e9, threads, float(mhz), peak32, peak16, " (PEAK_GFLOPS_FP32)" if peak_env else ""))
def rate(v):
    return fl * v / r0["views"] / 1e9
print("  simclr fp32 %.1f GFLOP/s = %.0f%% of fp32 peak; pytorch fp32 %.1f GFLOP/s = %.0f%%"
      % (rate(vo), 100 * rate(vo) / peak32, rate(vt), 100 * rate(vt) / peak32))
if ob:
    print("  simclr bf16 %.1f GFLOP/s = %.0f%% of bf16 peak; pytorch bf16 autocast %.1f GFLOP/s = %.0f%%"
          % (rate(vb), 100 * rate(vb) / peak16, rate(va), 100 * rate(va) / peak16))
if md == "1" and ob:
    print("| %s | %s | %s | %s | %d | %s | %.1f | %.1f | %.1f | %.1f | **%.2fx** | **%.2fx** | %s / %s |"
          % (datetime.date.today().isoformat(), commit, model + ", " + cores + " cores", args or "(defaults)",
             o[0]["threads"], policy.split()[0], vo, vb, vt, va, vb / vt, vb / va, lb.split()[0], la.split()[0]))
elif md == "1":
    print("| %s | %s | %s | %s | %d | %s | %.1f | %.1f | **%.2fx** | %.3f | %.3f | %s / %s |"
          % (datetime.date.today().isoformat(), commit, model + ", " + cores + " cores", args or "(defaults)",
             o[0]["threads"], policy.split()[0], vo, vt, vo / vt, co, ct, lb.split()[0], la.split()[0]))
EOF
