#!/usr/bin/env bash
# benchmarks/cpu_step_compare.sh - our CPU training step against PyTorch's, in
# one go: runs bench_train_step (ours) and train_step_torch.py (PyTorch,
# channels-last, oneDNN convolutions) back to back, interleaved, on the same
# model, width, batch and thread count, then prints views/s for both (median
# over the repeats), the ratio, CPU seconds per step, and the machine load
# before and after (other work on the machine skews both; the interleaving
# keeps the ratio fair, the load says how much to trust the absolute numbers).
#
#   benchmarks/cpu_step_compare.sh [--build DIR] [--repeats R] [--wait-policy P] [--markdown] [-- bench options]
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
#     bench options are passed to both sides: --depth --width --stem --channels
#                   --size --views --threads --steps --warmup
#                   (defaults: ResNet-18, width 0.25, CIFAR stem, 1x28x28,
#                   512 views, 2 threads, 10 steps)
# PyTorch comes from Debian's python3-torch for /usr/bin/python3; the script
# installs it with apt-get when it is missing (the README commands never need it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="$root/build"
repeats=3
markdown=0
policy="${OMP_WAIT_POLICY:-passive}"

args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --markdown) markdown=1; shift ;;
    --wait-policy) policy="$2"; shift 2 ;;
    --) shift; args+=("$@"); break ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
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
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

model="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
cores="$(nproc)"
commit="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
"$py" - "$out" "$load_before" "$load_after" "$model" "$cores" "$commit" "$markdown" "${args[*]:-}" "$policy" <<'EOF'
import json, statistics, sys, datetime
path, lb, la, model, cores, commit, md, args, policy = sys.argv[1:10]
runs = {"ours": [], "torch": []}
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
if md == "1":
    print("| %s | %s | %s | %s | %d | %s | %.1f | %.1f | **%.2fx** | %.3f | %.3f | %s / %s |"
          % (datetime.date.today().isoformat(), commit, model + ", " + cores + " cores", args or "(defaults)",
             o[0]["threads"], policy.split()[0], vo, vt, vo / vt, co, ct, lb.split()[0], la.split()[0]))
EOF
