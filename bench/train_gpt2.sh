#!/usr/bin/env bash
# bench/train_gpt2.sh — how fast the program galvc builds trains GPT-2 124M on
# this CPU box (batch 4, sequence 64, fp32, AdamW), against OpenBLAS's own
# sgemm on the same GEMM shapes, measured in the same run:
#   - one rank with 2 BLAS threads;
#   - two ranks (DP 2) with one BLAS thread each.
# Prints the median ms/step after warm-up, the effective GFLOP/s (3 x the
# forward FLOPs galvc's IR counts: 6 x parameters x tokens plus attention)
# and the ratio to sgemm.
# Usage: bench/train_gpt2.sh [STEPS]   (GALVC, BUILD_DIR from the environment)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
galvc=${GALVC:-$build/galvc}
steps=${1:-12}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

cc -O2 -o "$work/sgemm" "$root/bench/sgemm.c" $(pkg-config --cflags --libs openblas)
model=(--cluster "$root/examples/clusters/cpu-box.gv" -D seq=64 -D global_batch=4 -D precision=fp32)

median_ms() { # the median of the ms column after the first 2 steps
    awk '/^step/ { for (i = 1; i <= NF; i++) if ($i == "ms") print $(i-1) }' "$1" | tail -n +3 | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

flops=$("$galvc" "$root/examples/gpt2-small.gv" "${model[@]}" -D ranks=1 --emit=ir-json |
        sed -n 's/^  "total_fwd_flops": \([0-9]*\),/\1/p')
step_flops=$(awk -v f="$flops" 'BEGIN { print 3 * f * 4 }')

printf "%-28s %10s %10s %12s %12s\n" "run" "ms/step" "GFLOP/s" "sgemm GF/s" "of sgemm"
for run in "1 2" "2 1"; do
    set -- $run
    ranks=$1 threads=$2
    "$galvc" "$root/examples/gpt2-small.gv" "${model[@]}" -D ranks="$ranks" \
        --uniform "tp=1,pp=1,dp=$ranks" -o "$work/train"
    OPENBLAS_NUM_THREADS=$threads mpirun --allow-run-as-root --oversubscribe -np "$ranks" \
        "$work/train" --steps "$steps" --data "$root/README.md" > "$work/log"
    ms=$(median_ms "$work/log")
    sg=$(OPENBLAS_NUM_THREADS=$((ranks * threads)) "$work/sgemm")
    gf=$(awk -v f="$step_flops" -v ms="$ms" 'BEGIN { printf "%.1f", f / (ms / 1e3) / 1e9 }')
    printf "%-28s %10.1f %10s %12s %11.0f%%\n" "$ranks rank(s) x $threads thread(s)" "$ms" "$gf" "$sg" \
        "$(awk -v a="$gf" -v b="$sg" 'BEGIN { print 100 * a / b }')"
done
