#!/bin/sh
# bench/accuracy.sh [STEPS] — the cost model held to measurement with a fresh
# profile and no calibration. Each model is profiled on this machine at its
# own shape (galvc profile MODEL -np RANKS), each plan costed with that
# profile, built and trained STEPS steps (default 200, about a second of the
# tiny GPT's few-millisecond steps, so that a moment's slowdown of the
# machine does not move the median; GPT-2 runs 12). Prints
# the predicted step time and peak memory per rank beside the measured ones:
# the median step after 5 warm-up steps, the largest peak over the ranks.
# Aim: time within 10%, memory within 2%. The plans:
#   - the tiny GPT on 2 ranks: galvc's plan, DP 2, TP 2, PP 2 (1F1B);
#   - GPT-2 124M at batch 4 x 64 in fp32 (examples/clusters/cpu-box.gv):
#     one rank; on 2 ranks galvc's plan and DP 2.
# Run it on a quiet machine: another job's load is time the profile did not see.
#   bench/accuracy.sh        # about 4 minutes on 2 cores
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
galvc=${GALVC:-$root/build/galvc}
steps=${1:-200}
data=${DATA:-$root/README.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

. "$root/bench/lib.sh"

tiny=$root/examples/gpt-tiny.gv
gpt2=$root/examples/gpt2-small.gv
gpt2_shape="-D seq=64 -D global_batch=4 -D precision=fp32"
cpu_box=$root/examples/clusters/cpu-box.gv

# profile NAME MODEL RANKS [-D ...]: a fresh profile at the model's shape
# (variables: sh has no locals, and lib.sh's run_plan uses _-names)
profile() {
    p_name=$1 p_model=$2 p_ranks=$3
    shift 3
    "$galvc" profile "$p_model" "$@" -np "$p_ranks" -o "$work/$p_name.json" 2> "$work/$p_name.log"
}

# row LABEL RANKS PROFILE NAME UNIFORM STEPS MODEL [galvc args...]: build, train, print a row
row() {
    r_label=$1 r_ranks=$2 r_prof=$3 r_plan=$4 r_uniform=$5 r_steps=$6 r_model=$7
    shift 7
    prog=$work/train-$r_label-$r_ranks-$r_plan
    if ! run_plan "$galvc" "$r_model" "$r_ranks" "$work/$r_prof.json" "$r_plan" "$r_uniform" "$prog" "$r_steps" "$data" "$@"
    then
        echo "| $r_label | $r_ranks | $r_plan | (not built: $(head -1 "$prog.err")) |"
        return
    fi
    pred=$(grep '"plan"' "$prog.jsonl" | field predicted_step_ms)
    meas=$(grep '"step"' "$prog.jsonl" | tail -n +6 | field ms | median)
    pmem=$(grep '"rank"' "$prog.jsonl" | field planned_mem_bytes | sort -g | tail -1)
    mmem=$(grep '"rank"' "$prog.jsonl" | field peak_mem_bytes | sort -g | tail -1)
    [ "$r_plan" = galvc ] && r_uniform=$("$galvc" "$r_model" -D ranks="$r_ranks" --profile "$work/$r_prof.json" "$@" \
        --baselines | sed -n 's/^galvc .* \(pp=.*\)$/(middle layer \1)/p')
    awk -v l="$r_label" -v r="$r_ranks" -v n="$r_plan" -v u="$r_uniform" -v p="$pred" -v m="$meas" -v pm="$pmem" \
        -v mm="$mmem" 'BEGIN {
        printf "| %s | %s | %s %s | %.2f | %.2f | %+.1f%% | %.1f | %.1f | %+.2f%% |\n", l, r, n, u, p, m,
               100 * (p - m) / m, pm / 1048576, mm / 1048576, 100 * (pm - mm) / mm }'
}

printf '| model | ranks | plan | predicted ms | measured ms | error | predicted MiB | measured MiB | error |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
profile tiny-2 "$tiny" 2
row gpt-tiny 2 tiny-2 galvc "" "$steps" "$tiny"
row gpt-tiny 2 tiny-2 DP tp=1,pp=1,dp=2 "$steps" "$tiny"
row gpt-tiny 2 tiny-2 TP tp=2,pp=1,dp=1 "$steps" "$tiny"
row gpt-tiny 2 tiny-2 PP tp=1,pp=2,dp=1 "$steps" "$tiny"
# shellcheck disable=SC2086 # the shape is several words
profile gpt2-1 "$gpt2" 1 $gpt2_shape
# shellcheck disable=SC2086
row "GPT-2 124M" 1 gpt2-1 galvc "" 12 "$gpt2" $gpt2_shape --cluster "$cpu_box"
# shellcheck disable=SC2086
profile gpt2-2 "$gpt2" 2 $gpt2_shape
# shellcheck disable=SC2086
row "GPT-2 124M" 2 gpt2-2 galvc "" 12 "$gpt2" $gpt2_shape --cluster "$cpu_box"
# shellcheck disable=SC2086
row "GPT-2 124M" 2 gpt2-2 DP tp=1,pp=1,dp=2 12 "$gpt2" $gpt2_shape --cluster "$cpu_box"
