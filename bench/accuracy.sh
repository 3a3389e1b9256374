#!/bin/sh
# accuracy.sh [MODEL.gv] [STEPS] [RANKS...] — the cost model held to
# measurement. For each rank count: measure this machine at the model's shape
# (galvc profile MODEL -np R), then for galvc's plan and every baseline that
# fits, build the program with that profile, train STEPS steps, and print
# the predicted step time and peak memory per rank beside the measured ones
# (median step after 5 warm-up steps; the largest peak over the ranks).
# Aim: time within 5%, memory within 2%.
#
#   bench/accuracy.sh examples/gpt-tiny.gv 30 2 4
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
galvc=${GALVC:-$root/build/galvc}
model=${1:-$root/examples/gpt-tiny.gv}
steps=${2:-30}
shift 2 2>/dev/null || shift $#
ranks_list=${*:-2 4}
data=${DATA:-$root/README.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

. "$root/bench/lib.sh"

printf '| ranks | plan | strategy | predicted ms | measured ms | error | predicted MiB | measured MiB | error |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for ranks in $ranks_list; do
    "$galvc" profile "$model" -np "$ranks" -o "$work/profile-$ranks.json" 2>"$work/profile-$ranks.log"
    # galvc's plan, then each fitting baseline as a --uniform plan
    "$galvc" "$model" -D ranks="$ranks" --profile "$work/profile-$ranks.json" --baselines > "$work/baselines" 2>&1 || true
    plans_of_baselines < "$work/baselines" > "$work/plans"
    for pass in measured calibrated; do
        prof=$work/profile-$ranks.json
        if [ $pass = calibrated ]; then
            "$galvc" --calibrate "$work"/train-"$ranks"-*.jsonl --profile "$prof" -o "$work/cal-$ranks.json" \
                > "$work/calibrate-$ranks.txt"
            sed 's/^/    /' "$work/calibrate-$ranks.txt" >&2
            prof=$work/cal-$ranks.json
        fi
        while read -r name uniform; do
            prog=$work/train-$ranks-$name
            if ! run_plan "$galvc" "$model" "$ranks" "$prof" "$name" "$uniform" "$prog" "$steps" "$data"; then
                echo "| $ranks | $name | $uniform | (not built: $(head -1 "$prog.err")) |"
                continue
            fi
            pred=$(grep '"plan"' "$prog.jsonl" | field predicted_step_ms)
            meas=$(grep '"step"' "$prog.jsonl" | tail -n +6 | field ms | median)
            pmem=$(grep '"rank"' "$prog.jsonl" | field planned_mem_bytes | sort -g | tail -1)
            mmem=$(grep '"rank"' "$prog.jsonl" | field peak_mem_bytes | sort -g | tail -1)
            awk -v r="$ranks" -v n="$name" -v u="$uniform" -v p="$pred" -v m="$meas" -v pm="$pmem" -v mm="$mmem" \
                -v k="$pass" 'BEGIN {
                printf "| %s | %s (%s) | %s | %.2f | %.2f | %+.1f%% | %.2f | %.2f | %+.1f%% |\n", r, n, k, u, p, m,
                       100 * (p - m) / m, pm / 1048576, mm / 1048576, 100 * (pm - mm) / mm }'
        done < "$work/plans"
    done
done
