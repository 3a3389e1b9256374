#!/usr/bin/env bash
# bench/train_gpt2.sh — how fast the program galvc builds trains GPT-2 124M on
# this CPU box (batch 4, sequence 64, fp32, AdamW), measured in one run
# against OpenBLAS's own sgemm on the model's GEMM shapes and, when python3
# can import torch, against PyTorch's step on the same model and batch
# (bench/torch_gpt2.py), in two layouts of the machine's cores:
#   - one rank with every core (mpirun --bind-to none): the GEMMs on
#     OpenBLAS's threads, the other kernels on the runtime's pool;
#   - one rank per core (DP over the ranks), one thread each.
# The program runs twice in each layout: "before", the hand-written
# reference kernels on one thread (GALVRT_REFERENCE_KERNELS=1,
# GALVRT_THREADS=1), and "after", the kernels galvc generates, split over
# the pool. The runtime picks the OpenBLAS core and thread counts itself;
# sgemm and PyTorch (which do not) get the core the program reports.
# Prints the median ms/step after 2 warm-up steps; the effective GFLOP/s
# (3 x the forward FLOPs galvc's IR counts: 6 x parameters x tokens plus
# attention, for every run, PyTorch's included); that as a share of sgemm's
# GFLOP/s on the same cores; and PyTorch's ms/step over the run's (above 1:
# faster than PyTorch).
# Usage: bench/train_gpt2.sh [STEPS]   (GALVC, BUILD_DIR, PYTHON, TORCH_STEPS from the environment)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
galvc=${GALVC:-$build/galvc}
steps=${1:-12}
torch_steps=${TORCH_STEPS:-$steps} # PyTorch's steps (its median after 2 as well)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset OPENBLAS_NUM_THREADS OPENBLAS_CORETYPE GALVRT_THREADS GALVRT_REFERENCE_KERNELS
cores=$(nproc)

cc -O2 -o "$work/sgemm" "$root/bench/sgemm.c" $(pkg-config --cflags --libs openblas)
model=(--cluster "$root/examples/clusters/cpu-box.gv" -D seq=64 -D global_batch=4 -D precision=fp32)

median_ms() { # the median of the ms column after the first 2 steps
    awk '/^step/ { for (i = 1; i <= NF; i++) if ($i == "ms") print $(i-1) }' "$1" | tail -n +3 | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# A python3 that imports torch (pyenv's may not see Debian's python3-torch), or nothing.
python=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$p" -c 'import torch' 2> /dev/null; then python=$p; break; fi
done
[ -n "$python" ] || echo "(no python3 with torch here: PyTorch's step skipped; apt-get install python3-torch)"

flops=$("$galvc" "$root/examples/gpt2-small.gv" "${model[@]}" -D ranks=1 --emit=ir-json |
        sed -n 's/^  "total_fwd_flops": \([0-9]*\),/\1/p')
step_flops=$(awk -v f="$flops" 'BEGIN { print 3 * f * 4 }')
gflops() { awk -v f="$step_flops" -v ms="$1" 'BEGIN { printf "%.1f", f / (ms / 1e3) / 1e9 }'; }

# sgemm GFLOP/s on RANKS ranks of THREADS threads: one process per rank on
# its own cores, at the tokens a rank holds, summed.
sgemm() {
    local ranks=$1 threads=$2 r
    mkdir -p "$work/sgemm-out"
    for ((r = 0; r < ranks; r++)); do
        OPENBLAS_CORETYPE=$core OPENBLAS_NUM_THREADS=$threads taskset -c "$((r * threads))-$((r * threads + threads - 1))" \
            "$work/sgemm" $((256 / ranks)) > "$work/sgemm-out/$r" &
    done
    wait
    cat "$work/sgemm-out"/* | awk '{ s += $1 } END { printf "%.1f", s }'
    rm -rf "$work/sgemm-out"
}

row() { # name ms sgemm torch_ms
    local gf
    gf=$(gflops "$2")
    printf "%-34s %9.1f %9s %8.0f%% %11s\n" "$1" "$2" "$gf" "$(awk -v a="$gf" -v b="$3" 'BEGIN { print 100 * a / b }')" \
        "$([ -n "$4" ] && awk -v t="$4" -v ms="$2" 'BEGIN { printf "%.2f", t / ms }' || echo -)"
}

layouts=("1 $cores" "$cores 1")
for layout in "${layouts[@]}"; do
    set -- $layout
    ranks=$1 threads=$2
    "$galvc" "$root/examples/gpt2-small.gv" "${model[@]}" -D ranks="$ranks" \
        --uniform "tp=1,pp=1,dp=$ranks" -o "$work/train-$ranks"
done

table=$work/table
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every row)"
printf "%-34s %9s %9s %9s %11s\n" "run" "ms/step" "GFLOP/s" "of sgemm" "PyTorch/run" > "$table"
for layout in "${layouts[@]}"; do
    set -- $layout
    ranks=$1 threads=$2
    bind=--bind-to\ core
    [ "$ranks" = 1 ] && bind="--bind-to none" # one rank: all the cores
    for kind in before after; do
        env=()
        [ $kind = before ] && env=(-x GALVRT_REFERENCE_KERNELS=1 -x GALVRT_THREADS=1)
        mpirun --allow-run-as-root --oversubscribe $bind "${env[@]}" -np "$ranks" "$work/train-$ranks" \
            --steps "$steps" --data "$root/README.md" > "$work/log-$kind"
        grep '^BLAS:' "$work/log-$kind" | sed "s/^/[$ranks x $threads, $kind] /"
    done
    core=$(sed -n 's/^BLAS: OpenBLAS \([A-Za-z0-9]*\) kernels.*/\1/p' "$work/log-after")
    sg=$(sgemm "$ranks" "$threads")
    torch_ms=
    if [ -n "$python" ]; then
        torch_ms=$(OPENBLAS_CORETYPE=$core "$python" "$root/bench/torch_gpt2.py" --ranks "$ranks" --threads "$threads" \
                   --steps "$torch_steps" 2> "$work/torch.err" | tail -n 1) || { cat "$work/torch.err" >&2; torch_ms=; }
    fi
    name="$ranks rank(s) x $threads thread(s)"
    row "$name, before" "$(median_ms "$work/log-before")" "$sg" "$torch_ms" >> "$table"
    row "$name, after" "$(median_ms "$work/log-after")" "$sg" "$torch_ms" >> "$table"
    [ -n "$torch_ms" ] && row "$name, PyTorch $($python -c 'import torch; print(torch.__version__)')" "$torch_ms" "$sg" \
        "$torch_ms" >> "$table"
    printf "%-34s %9s %9s %9s %11s\n" "$name, sgemm" "-" "$sg" "100%" "-" >> "$table"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$table"
