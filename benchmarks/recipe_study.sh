#!/usr/bin/env bash
# benchmarks/recipe_study.sh - the recipe study of issue 18: `simclr quickstart`
# with one factor changed at a time around the quickstart recipe
# (train/run_config.cpp quickstart_config: tau 0.5, LARS base lr 9.6, crop
# scale min 0.2, batch 256, width 0.25), each scored by linear probes on a
# held-out part of the training split (eval.holdout; the test split is never
# opened), then a markdown table (benchmarks/recipe_study.py) on stdout and in
# OUT/study.md. docs/results.md "Recipe study (held-out split)" has the results.
#
# usage: benchmarks/recipe_study.sh [--epochs E | --budget S] [--out DIR] [--only F[=V]]
#                                   [--holdout F] [--simclr PATH] [--set KEY=VALUE ...] [--dry-run]
#   --epochs E     a fixed epoch count per variant (default 3, unless --budget)
#   --budget S     instead: a wall budget per variant in seconds (the quickstart's calibration
#                  chooses the epochs; variants then differ in epochs too)
#   --out DIR      results directory (default runs/recipe_study): DIR/<variant>/ run dirs,
#                  DIR/<variant>.log outputs, DIR/variants.tsv, DIR/study.md
#   --only F       only factor F (tau | lr | crop | batch | width) and the base recipe;
#                  F=V: only that one variant (e.g. tau=0.2; a base value gives "base");
#                  a comma-separated list of these runs their union, in the order given
#                  (e.g. base,tau=0.2,lr=2.4), each variant once
#   --baselines-once  the random-init and raw-pixel probes in the base run only (they do
#                  not depend on the recipe's factors; the other variants skip them)
#   --holdout F    eval.holdout (default 0.1)
#   --simclr PATH  the simclr binary (default $SIMCLR or build/simclr)
#   --set KEY=V    an extra override for every variant (repeatable; e.g. train.threads=2)
#   --dry-run      print the commands, run nothing
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
epochs="" budget="" out="runs/recipe_study" only="" holdout="0.1" dry=0 once=0
simclr="${SIMCLR:-$root/build/simclr}"
extra=()
die() { echo "recipe_study.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) [ $# -ge 2 ] || die "--epochs needs a value"; epochs="$2"; shift 2 ;;
    --budget) [ $# -ge 2 ] || die "--budget needs a value"; budget="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out="$2"; shift 2 ;;
    --only) [ $# -ge 2 ] || die "--only needs a value"; only="$2"; shift 2 ;;
    --holdout) [ $# -ge 2 ] || die "--holdout needs a value"; holdout="$2"; shift 2 ;;
    --simclr) [ $# -ge 2 ] || die "--simclr needs a value"; simclr="$2"; shift 2 ;;
    --set) [ $# -ge 2 ] || die "--set needs KEY=VALUE"; extra+=("$2"); shift 2 ;;
    --baselines-once) once=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$epochs" ] && [ -n "$budget" ] && die "give --epochs or --budget, not both"
[ -z "$epochs" ] && [ -z "$budget" ] && epochs=3
if [ -n "$epochs" ]; then
  [[ "$epochs" =~ ^[1-9][0-9]*$ ]] || die "--epochs must be a positive integer, got '$epochs'"
  length=(--epochs "$epochs")
else
  [[ "$budget" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--budget must be a number of seconds, got '$budget'"
  length=(--budget "$budget")
fi

# factor, config key, values (the base recipe's value first); crop's key is a range
factors="tau lr crop batch width"
key_of() { case "$1" in tau) echo loss.temperature ;; lr) echo optimizer.lr ;; crop) echo data.augment.crop_scale ;;
                        batch) echo train.batch ;; width) echo model.width ;; esac; }
base_of() { case "$1" in tau) echo 0.5 ;; lr) echo 9.6 ;; crop) echo 0.2 ;; batch) echo 256 ;; width) echo 0.25 ;; esac; }
values_of() { case "$1" in tau) echo 0.1 0.2 0.5 1.0 ;; lr) echo 0.6 1.2 2.4 4.8 9.6 19.2 ;; crop) echo 0.08 0.2 0.4 ;;
                           batch) echo 128 256 512 ;; width) echo 0.125 0.25 0.5 ;; esac; }
setting_of() {  # factor value -> KEY=VALUE
  if [ "$1" = crop ]; then echo "$(key_of crop)=[$2,1.0]"; else echo "$(key_of "$1")=$2"; fi
}

# the variants: name<TAB>setting ("base" has none)
variants=()
add_variant() {  # name<TAB>setting, once
  local v
  for v in ${variants[@]+"${variants[@]}"}; do [ "${v%%	*}" = "${1%%	*}" ] && return 0; done
  variants+=("$1")
}
add_factor() {
  local f="$1" v
  for v in $(values_of "$f"); do
    [ "$v" = "$(base_of "$f")" ] && continue
    add_variant "$f=$v	$(setting_of "$f" "$v")"
  done
}
if [ -z "$only" ]; then
  add_variant "base	"
  for f in $factors; do add_factor "$f"; done
else
  IFS=, read -r -a picks <<< "$only"
  for p in "${picks[@]}"; do
    if [ "$p" = base ]; then
      add_variant "base	"
    elif [[ "$p" == *=* ]]; then
      f="${p%%=*}" v="${p#*=}"
      [ -n "$(key_of "$f")" ] || die "--only: unknown factor '$f' (tau, lr, crop, batch, width)"
      if [ "$v" = "$(base_of "$f")" ]; then add_variant "base	"; else add_variant "$f=$v	$(setting_of "$f" "$v")"; fi
    else
      [ -n "$(key_of "$p")" ] || die "--only: unknown factor '$p' (tau, lr, crop, batch, width)"
      add_variant "base	"
      add_factor "$p"
    fi
  done
fi

[ $dry -eq 1 ] || { [ -x "$simclr" ] || die "no simclr binary at '$simclr' (build it, or --simclr PATH)"; mkdir -p "$out"; : > "$out/variants.tsv"; }
failed=0
for entry in "${variants[@]}"; do
  name="${entry%%	*}" setting="${entry#*	}"
  cmd=("$simclr" quickstart "${length[@]}" --run-dir "$out/$name" --set "eval.holdout=$holdout")
  [ -n "$setting" ] && cmd+=(--set "$setting")
  [ $once -eq 1 ] && [ "$name" != base ] && cmd+=(--set eval.random_init=false --set eval.raw_pixels=false)
  for e in ${extra[@]+"${extra[@]}"}; do cmd+=(--set "$e"); done
  if [ $dry -eq 1 ]; then
    printf '%q ' "${cmd[@]}"; echo
    continue
  fi
  printf '%s\t%s\n' "$name" "$setting" >> "$out/variants.tsv"
  echo "recipe study: $name ($(printf '%q ' "${cmd[@]}"))" >&2
  rm -rf "$out/$name" "$out/$name.prev"
  if ! "${cmd[@]}" > "$out/$name.log" 2>&1; then
    echo "recipe study: $name failed (see $out/$name.log)" >&2
    failed=$((failed + 1))
  fi
done
[ $dry -eq 1 ] && exit 0
/usr/bin/python3 "$here/recipe_study.py" "$out" | tee "$out/study.md"
[ $failed -eq 0 ] || { echo "recipe study: $failed variant(s) failed" >&2; exit 1; }
