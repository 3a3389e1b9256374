#!/bin/sh
# plan_quality.sh [MODEL.gv] [RANKS] [BUDGETS] — is galvc's plan the fastest
# on real runs? Measure this machine at the model's shape, calibrate the
# profile on the unconstrained plans, then for each memory budget per rank
# (MiB) build galvc's plan and every baseline that fits the budget, train
# each REPEATS times (the plans in turns), and print the median over the
# repeats of each run's median step time (after 5 warm-up steps): the
# table's spread is the range over the repeats.
#
#   bench/plan_quality.sh examples/gpt-tiny.gv 2 "16 9 6"
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
galvc=${GALVC:-$root/build/galvc}
model=${1:-$root/examples/gpt-tiny.gv}
ranks=${2:-2}
budgets=${3:-16 9 6}
steps=${STEPS:-30}
repeats=${REPEATS:-3}
data=${DATA:-$root/README.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
. "$root/bench/lib.sh"

# the profile, calibrated on the plans that fit without a budget
"$galvc" profile "$model" -np "$ranks" -o "$work/profile.json" 2>/dev/null
"$galvc" "$model" -D ranks="$ranks" --profile "$work/profile.json" --baselines 2>&1 | plans_of_baselines > "$work/plans"
while read -r name uniform; do
    run_plan "$galvc" "$model" "$ranks" "$work/profile.json" "$name" "$uniform" "$work/cal-$name" "$steps" "$data" || true
done < "$work/plans"
"$galvc" --calibrate "$work"/cal-*.jsonl --profile "$work/profile.json" -o "$work/calibrated.json" | tail -2 >&2

printf '| budget | plan | strategy (middle layer) | predicted ms | measured ms (median of %d runs) | spread | peak MiB |\n' "$repeats"
printf '|---|---|---|---|---|---|---|\n'
for mib in $budgets; do
    "$galvc" "$model" -D ranks="$ranks" -D rank_memory="$mib MiB" --profile "$work/calibrated.json" --baselines 2>&1 |
        plans_of_baselines > "$work/plans"
    # build each plan once, then run them in turns, so a drift in the
    # machine's speed over the minutes falls on every plan alike
    : > "$work/built"
    while read -r name uniform; do
        prog=$work/q-$mib-$name
        : > "$prog.medians"
        if run_plan "$galvc" "$model" "$ranks" "$work/calibrated.json" "$name" "$uniform" "$prog" 1 "$data" \
            -D rank_memory="$mib MiB"; then
            echo "$name $uniform" >> "$work/built"
        else
            echo "| $mib | $name | $uniform | (not built) |"
        fi
    done < "$work/plans"
    for k in $(seq "$repeats"); do
        while read -r name uniform; do
            prog=$work/q-$mib-$name
            mpirun --oversubscribe -np "$ranks" "$prog" --steps "$steps" --data "$data" --log "$prog.jsonl" \
                < /dev/null > "$prog.out" 2>&1
            grep '"step"' "$prog.jsonl" | tail -n +6 | field ms | median >> "$prog.medians"
        done < "$work/built"
    done
    while read -r name uniform; do
        prog=$work/q-$mib-$name
        pred=$(grep '"plan"' "$prog.jsonl" | field predicted_step_ms)
        peak=$(grep '"rank"' "$prog.jsonl" | field peak_mem_bytes | sort -g | tail -1)
        med=$(median < "$prog.medians")
        lo=$(sort -g "$prog.medians" | head -1) hi=$(sort -g "$prog.medians" | tail -1)
        awk -v b="$mib" -v n="$name" -v u="$uniform" -v p="$pred" -v m="$med" -v lo="$lo" -v hi="$hi" -v pk="$peak" \
            'BEGIN { printf "| %s | %s | %s | %.2f | %.2f | %.2f-%.2f | %.2f |\n", b, n, u, p, m, lo, hi, pk / 1048576 }'
    done < "$work/built"
done
