#!/bin/bash
# check.sh — the GPU check, run on the lent GPU machine from the repository
# root, against the bundle tests/gpu/bundle.sh built (gpu-bundle/):
#
#   bash tests/gpu/check.sh [--bundle DIR]
#
# It prints what the machine has (the GPU, driver and CUDA versions, where
# the CUDA libraries were found, glibc, whether the bundle's mpirun starts),
# then runs the rows, each under its own timeout, all within 9 minutes:
#   (a) every generated kernel kind on the GPU against the CPU reference
#       kernels, random data, every element written (bin/kernels-cuda)
#   (b) gpt-tiny and llama-tiny: 1 GPU rank against 1 CPU rank, 10 steps,
#       losses within 1e-4 relative (a NaN fails); and gpt-tiny's checkpoint
#       written on the GPU at step 5 resumed on a CPU rank to step 10, its
#       losses against the GPU run's steps 6-10
#   (c) 2 ranks sharing the GPU (DP 2, TP 2, PP 2) against 1 GPU rank:
#       "not built" when the bundle lacks them (the host-staged collectives:
#       NCCL refuses two ranks on one GPU)
#   (d) the NCCL path at 1 rank: GALVRT_NCCL=1 (bundle.sh's nccl-force)
#   (e) gpt-tiny in bf16 mixed precision against gpt-tiny in fp32, both on 1
#       GPU rank, 20 steps: losses within 2% relative (a NaN fails)
#   (f) GPT-2 124M (batch 16 x 1024, bf16, one GPU) beside PyTorch's own
#       step (tests/gpu/torch_gpt2.py): ms/step, tokens/s, MFU, the ratio
#   (g) galvc profile --target cuda -np 2 on GPT-2's shape, under 2 minutes
#   (h) GPT-2 plans of tests/gpu/plans.sh (micro-batches, checkpointing,
#       GPipe and 1F1B with 2 ranks on the GPU): measured step time and
#       peak device memory against the plan's (memory within 2% here;
#       time against (g)'s profile: tests/gpu/predict.sh)
# and prints a table last: row, PASS/FAIL/SKIP, seconds, detail. Exit 1 on
# any FAIL, 0 otherwise; without a GPU it says "no GPU", prints the table
# and exits 77. Logs go to $OUT/gpu-check when $OUT is set, else a temporary folder.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
B=${GPU_BUNDLE:-$src/gpu-bundle}
[ "${1:-}" = --bundle ] && B=$(cd "$2" && pwd)
BUDGET=${GPU_CHECK_BUDGET:-540} # seconds for everything: the lent machine allows 9 minutes a call
T0=$SECONDS
if [ ! -f "$B/MANIFEST" ]; then
    echo "check.sh: no bundle at $B (build it with: bash tests/gpu/bundle.sh, and carry gpu-bundle)" >&2
    exit 2
fi
if [ -n "${OUT:-}" ] && mkdir -p "$OUT/gpu-check" 2>/dev/null; then logs=$OUT/gpu-check; else logs=$(mktemp -d); fi
data=$B/data/README.md

# ---- the table ------------------------------------------------------------------------

ROWS=() FAILED=0
row() { # NAME RESULT SECONDS DETAIL
    ROWS+=("$(printf '%-26s %-4s %5s  %s' "$1" "$2" "$3" "$4")")
    [ "$2" = FAIL ] && FAILED=1
    echo "check.sh: $1: $2 ($4)"
}
table() {
    echo
    printf '%-26s %-4s %5s  %s\n' row result sec detail
    printf '%s\n' "${ROWS[@]}"
    echo "total: $((SECONDS - T0)) s; logs in $logs"
}

# step NAME LIMIT CMD...: CMD under timeout (clipped to what is left of the
# budget), its output in $logs/NAME.log; sets RC (124: timed out or no time
# left) and SECS.
step() {
    local name=$1 limit=$2 left=$((BUDGET - (SECONDS - T0))) t=$SECONDS
    shift 2
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        echo "no time left in the ${BUDGET} s budget" >"$logs/$name.log"
        RC=124 SECS=0
        return
    fi
    timeout -k 5 "$limit" "$@" >"$logs/$name.log" 2>&1
    RC=$? SECS=$((SECONDS - t))
}
# the last line of a step's log that says something, for the table
last() { grep -v '^\s*$' "$logs/$1.log" 2>/dev/null | tail -n 1 | cut -c1-110; }

# ---- what the machine has -------------------------------------------------------------

echo "== the bundle"
sed -n '1,6p' "$B/MANIFEST"
echo "== the machine"
uname -srm
sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"'
echo "cores: $(nproc 2>/dev/null); memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }')
need=$(sed -n 's/.*newest glibc symbol needed: GLIBC_//p' "$B/MANIFEST")
RUN=() # every program's start: plain, or through the bundle's glibc
# (GPU_CHECK_BUNDLED_GLIBC=1 takes the bundle's glibc anyway: how to try that path on a machine with a new one)
if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" = "$need" ] &&
    [ "${GPU_CHECK_BUNDLED_GLIBC:-0}" != 1 ]; then
    echo "glibc: $have (the bundle needs $need or newer: the machine's is used)"
    glibc_old=0
else
    echo "glibc: ${have:-unknown}; the bundle needs $need or newer: every program starts through the bundle's glibc ($B/glibc)"
    glibc_old=1
fi
GPUS=0
if command -v nvidia-smi >/dev/null; then
    timeout 20 nvidia-smi 2>&1 | sed -n '1,12p'
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1
    GPUS=$(timeout 20 nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
else
    echo "nvidia-smi: not found"
fi
echo "GPUs nvidia-smi lists: $GPUS"
for nvcc in /usr/local/cuda/bin/nvcc "$(command -v nvcc 2>/dev/null)"; do
    [ -x "$nvcc" ] && { echo "CUDA toolkit: $nvcc: $("$nvcc" --version | tail -n 2 | head -n 1)"; break; }
done

# Where the CUDA libraries are: the toolkit's folders, the loader's cache, then
# the Python packages' (nvidia/*/lib, as PyTorch's pip wheels install them).
cuda_dirs() {
    local d
    for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64; do
        echo "$d"
    done
    ldconfig -p 2>/dev/null | awk '/libcu(da|blas|dart)|libnccl/ { print $NF }' | xargs -r -n1 dirname
    if command -v python3 >/dev/null; then
        timeout 30 python3 -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null |
            while read -r d; do ls -d "$d"/*/lib 2>/dev/null; done
    fi
    ls -d /usr/local/lib/python3*/*-packages/nvidia/*/lib /usr/lib/python3*/*-packages/nvidia/*/lib \
        /opt/conda/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null
}
mapfile -t DIRS < <(cuda_dirs | awk '!seen[$0]++')
# bundle.sh gzipped its largest libraries: unpacked into a folder of our own, first on the path
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
for z in "$B"/lib/*.gz; do
    [ -e "$z" ] || continue
    gzip -dc "$z" >"$unpacked/$(basename "$z" .gz)" 2>/dev/null ||
        python3 -c 'import gzip, shutil, sys; shutil.copyfileobj(gzip.open(sys.argv[1]), sys.stdout.buffer)' "$z" \
            >"$unpacked/$(basename "$z" .gz)" || echo "could not unpack $z"
done
LIBPATH=$unpacked:$B/lib MISSING=""
for soname in $(cat "$B/cuda-libs") libnccl.so.2; do
    found=""
    for d in "${DIRS[@]}"; do
        [ -e "$d/$soname" ] && { found=$d; break; }
    done
    if [ -z "$found" ] && [ -e "$B/cuda/$soname" ]; then found=$B/cuda; fi
    if [ -n "$found" ]; then
        echo "$soname: $found/$soname"
        case ":$LIBPATH:" in *":$found:"*) ;; *) LIBPATH=$LIBPATH:$found ;; esac
    else
        echo "$soname: not found"
        [ "$soname" = libnccl.so.2 ] || MISSING="$MISSING $soname"
    fi
done
echo "libcuda.so.1 (the driver): $(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 / { print $NF; exit }')"
export LD_LIBRARY_PATH=$LIBPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ "$glibc_old" = 1 ]; then
    for loader in "$B"/glibc/ld-linux*; do RUN=("$loader" --library-path "$B/glibc:$LIBPATH"); done
fi

# Open MPI from the bundle, relocated; shared memory between the ranks of this one machine
export OPAL_PREFIX=$B/ompi PMIX_INSTALL_PREFIX=$B/pmix PATH=$B/ompi/bin:$PATH
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_pml=ob1
export OMPI_MCA_plm=isolated OMPI_MCA_rmaps_base_oversubscribe=1 PMIX_MCA_gds=hash OPENBLAS_NUM_THREADS=1
MPIRUN=("${RUN[@]}" "$B/ompi/bin/mpirun" --allow-run-as-root --oversubscribe --bind-to none)
# train STEP LIMIT NAME RANKS LOG [ARGS...]: bin/NAME on RANKS ranks, 10 steps of the README, as step STEP
train() {
    local name=$3 ranks=$4 log=$5 s=$1 limit=$2
    shift 5
    step "$s" "$limit" "${MPIRUN[@]}" -np "$ranks" "${RUN[@]}" "$B/bin/$name" --steps 10 --seed 7 --data "$data" \
        --log "$log" "$@"
}

echo "== the bundle's mpirun"
step mpirun-true 30 "${MPIRUN[@]}" -np 2 true
if [ "$RC" = 0 ]; then
    row "mpirun starts (2 ranks)" PASS "$SECS" "$B/ompi/bin/mpirun -np 2 true"
else
    row "mpirun starts (2 ranks)" FAIL "$SECS" "exit $RC: $(last mpirun-true)"
fi
step mpirun-cpu 60 "${MPIRUN[@]}" -np 1 "${RUN[@]}" "$B/bin/gpt-tiny.cpu" --steps 1 --seed 7 --data "$data" \
    --log "$logs/probe.jsonl"
if [ "$RC" = 0 ] && grep -q '"loss"' "$logs/probe.jsonl"; then
    row "mpirun runs 1 CPU rank" PASS "$SECS" "gpt-tiny.cpu, 1 step: MPI_Init, OpenBLAS, jansson"
else
    row "mpirun runs 1 CPU rank" FAIL "$SECS" "exit $RC: $(last mpirun-cpu)"
fi

# ---- (a) the kernels; no GPU stops here ----------------------------------------------

echo "== (a) the generated kernels on the GPU"
step kernels 120 "${RUN[@]}" "$B/bin/kernels-cuda"
cat "$logs/kernels.log"
if [ "$RC" = 77 ] && [ "$GPUS" = 0 ]; then
    echo "check.sh: no GPU: $(grep -m1 'galvrt' "$logs/kernels.log")"
    row "(a) kernels" SKIP "$SECS" "no GPU"
    table
    echo "no GPU: nothing to check on this machine"
    exit 77
fi
if [ "$RC" = 0 ]; then
    row "(a) kernels" PASS "$SECS" "$(grep -c 'worst error' "$logs/kernels.log") kinds; $(last kernels)"
elif [ "$RC" = 77 ]; then
    row "(a) kernels" FAIL "$SECS" "the CUDA runtime sees no GPU, nvidia-smi lists $GPUS: $(grep -m1 galvrt "$logs/kernels.log")"
else
    row "(a) kernels" FAIL "$SECS" "exit $RC: $(grep -m1 -E 'failed|error' "$logs/kernels.log" | cut -c1-100)"
fi
[ -n "$MISSING" ] && row "CUDA libraries" FAIL 0 "not found:$MISSING"

# ---- (b) 1 GPU rank against 1 CPU rank ----------------------------------------------

# compare_row ROW REF RUN SECS [TOL]: the two logs' losses within TOL relative (default 1e-4)
compare_row() {
    local name=$1 ref=$2 run=$3 secs=$4 tol=${5:-1e-4}
    step "$name.compare" 20 "${RUN[@]}" "$B/bin/compare" "$ref" "$run" "$tol"
    if [ "$RC" = 0 ]; then row "$name" PASS "$secs" "$(last "$name.compare")"
    else row "$name" FAIL "$secs" "$(grep -m1 compare: "$logs/$name.compare.log" | cut -c1-100)"; fi
}
echo "== (b) 1 GPU rank against 1 CPU rank"
for model in gpt-tiny llama-tiny; do
    train "$model.cpu" 90 "$model.cpu" 1 "$logs/$model.cpu.jsonl"
    cpu_rc=$RC cpu_secs=$SECS
    train "$model.cuda" 90 "$model.cuda" 1 "$logs/$model.cuda.jsonl"
    if [ "$cpu_rc" != 0 ]; then
        row "(b) $model" FAIL "$cpu_secs" "the CPU rank: exit $cpu_rc: $(last "$model.cpu")"
    elif [ "$RC" != 0 ]; then
        row "(b) $model" FAIL "$SECS" "the GPU rank: exit $RC: $(grep -m1 galvrt "$logs/$model.cuda.log" | cut -c1-100)"
    else
        compare_row "(b) $model" "$logs/$model.cpu.jsonl" "$logs/$model.cuda.jsonl" "$SECS"
    fi
done

# a checkpoint written by the GPU rank at step 5 resumed on a CPU rank: its steps 6-10
# against the GPU run's own (the files are the CPU target's: host copies)
echo "== (b) gpt-tiny: a GPU checkpoint resumed on a CPU rank"
if [ -s "$logs/gpt-tiny.cuda.jsonl" ]; then
    rm -rf "$logs/ck-gpu"
    step ckpt-gpu 90 "${MPIRUN[@]}" -np 1 "${RUN[@]}" "$B/bin/gpt-tiny.cuda" --steps 5 --seed 7 --data "$data" \
        --ckpt-dir "$logs/ck-gpu" --ckpt-every 5
    gpu_rc=$RC
    step ckpt-cpu 90 "${MPIRUN[@]}" -np 1 "${RUN[@]}" "$B/bin/gpt-tiny.cpu" --steps 10 --seed 7 --data "$data" \
        --ckpt-dir "$logs/ck-gpu" --resume --log "$logs/gpt-tiny.resumed.jsonl"
    grep '"step"' "$logs/gpt-tiny.cuda.jsonl" | sed -n 6,10p >"$logs/gpt-tiny.cuda-6-10.jsonl"
    if [ "$gpu_rc" != 0 ]; then
        row "(b) checkpoint GPU->CPU" FAIL "$SECS" "the GPU run: exit $gpu_rc: $(last ckpt-gpu)"
    elif [ "$RC" != 0 ] || ! grep -q resumed "$logs/ckpt-cpu.log"; then
        row "(b) checkpoint GPU->CPU" FAIL "$SECS" "the CPU resume: exit $RC: $(last ckpt-cpu)"
    else
        compare_row "(b) checkpoint GPU->CPU" "$logs/gpt-tiny.cuda-6-10.jsonl" "$logs/gpt-tiny.resumed.jsonl" "$SECS"
    fi
else
    row "(b) checkpoint GPU->CPU" SKIP 0 "no GPU run of gpt-tiny to continue"
fi

# ---- (c) 2 ranks sharing the GPU against 1 GPU rank ------------------------------------

echo "== (c) 2 ranks sharing the GPU"
for model in gpt-tiny llama-tiny; do
    for plan in dp2 tp2 pp2; do
        name="(c) $model $plan"
        if [ ! -x "$B/bin/$model-$plan.cuda" ]; then
            row "$name" SKIP 0 "not built (galvc refused it when the bundle was made)"
            continue
        fi
        train "$model-$plan" 90 "$model-$plan.cuda" 2 "$logs/$model-$plan.jsonl"
        if [ "$RC" != 0 ]; then
            row "$name" FAIL "$SECS" "exit $RC: $(grep -m1 galvrt "$logs/$model-$plan.log" | cut -c1-100)"
        else
            compare_row "$name" "$logs/$model.cuda.jsonl" "$logs/$model-$plan.jsonl" "$SECS"
        fi
    done
done

# ---- (d) the NCCL path at 1 rank ---------------------------------------------------------

echo "== (d) the NCCL path at 1 rank"
if [ ! -s "$B/nccl-force" ]; then
    row "(d) NCCL, 1 rank" SKIP 0 "not built: the runtime has no option forcing NCCL at 1 rank yet"
else
    read -r force <"$B/nccl-force" # NAME=VALUE, exported for the run
    for model in gpt-tiny llama-tiny; do
        export "${force?}" # (train sets RC and SECS here, so no subshell)
        train "$model.nccl" 90 "$model.cuda" 1 "$logs/$model.nccl.jsonl"
        unset "${force%%=*}"
        if [ "$RC" != 0 ]; then
            row "(d) $model NCCL" FAIL "$SECS" "exit $RC: $(grep -m1 galvrt "$logs/$model.nccl.log" | cut -c1-100)"
        else
            compare_row "(d) $model NCCL" "$logs/$model.cpu.jsonl" "$logs/$model.nccl.jsonl" "$SECS"
        fi
    done
fi

# ---- (e) bf16 mixed precision against fp32 on the GPU ------------------------------------

echo "== (e) gpt-tiny bf16 against fp32 on 1 GPU rank, 20 steps"
if [ ! -x "$B/bin/gpt-tiny-bf16.cuda" ]; then
    row "(e) gpt-tiny bf16" SKIP 0 "not built (a bundle from before bf16)"
else
    train "gpt-tiny.fp32-20" 90 gpt-tiny.cuda 1 "$logs/gpt-tiny.fp32-20.jsonl" --steps 20
    fp32_rc=$RC
    train "gpt-tiny.bf16-20" 90 gpt-tiny-bf16.cuda 1 "$logs/gpt-tiny.bf16-20.jsonl" --steps 20
    if [ "$fp32_rc" != 0 ]; then
        row "(e) gpt-tiny bf16" FAIL "$SECS" "the fp32 run: exit $fp32_rc: $(last gpt-tiny.fp32-20)"
    elif [ "$RC" != 0 ]; then
        row "(e) gpt-tiny bf16" FAIL "$SECS" "exit $RC: $(grep -m1 galvrt "$logs/gpt-tiny.bf16-20.log" | cut -c1-100)"
    else
        compare_row "(e) gpt-tiny bf16" "$logs/gpt-tiny.fp32-20.jsonl" "$logs/gpt-tiny.bf16-20.jsonl" "$SECS" 0.02
    fi
fi

# ---- (f) GPT-2 124M beside PyTorch --------------------------------------------------------

# the programs of rows (f) and (h), and how galvc built them
source "$src/tests/gpu/plans.sh"
# summary LOG: runlog.py's line for a training log (predicted_ms P ms M peak B planned Q steps S), or
# nothing (why in LOG.err)
summary() { "$PY" "$src/tests/gpu/runlog.py" "$1" 3 2>"$1.err"; }
# why NAME's run gave no summary: the program's first galvrt line, else runlog.py's
why() { { grep -h -m1 -E 'galvrt|error' "$logs/$1.log"; cat "$2.err"; } 2>/dev/null | head -n 1 | cut -c1-100; }
field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' <<<"$2"; }
PY=$(command -v python3 || true)

echo "== (f) GPT-2 124M, batch 16 x 1024, bf16, one GPU: galvc beside PyTorch"
read -r fname franks _ <<<"$SPEED_PLAN"
if [ -z "$PY" ]; then
    row "(f) GPT-2 124M speed" FAIL 0 "no python3 on this machine (PyTorch's side and the logs need it)"
else
    train f-galvc 150 "$fname.cuda" "$franks" "$logs/$fname.jsonl"
    g_rc=$RC g_secs=$SECS
    step f-torch 150 "$PY" "$src/tests/gpu/torch_gpt2.py"
    t_rc=$RC
    cat "$logs/f-torch.log"
    sum=$(summary "$logs/$fname.jsonl")
    gms=$(field ms "$sum") tline=$(grep -m1 '^torch: ms/step' "$logs/f-torch.log")
    tms=$(field ms/step "$tline")
    if [ "$g_rc" != 0 ] || [ -z "$gms" ]; then
        row "(f) GPT-2 124M speed" FAIL "$g_secs" "galvc: exit $g_rc: $(why f-galvc "$logs/$fname.jsonl")"
    elif [ "$t_rc" != 0 ] || [ -z "$tms" ]; then
        row "(f) GPT-2 124M speed" FAIL "$SECS" "PyTorch: exit $t_rc: $(last f-torch)"
    else
        gline=$("$PY" "$src/tests/gpu/torch_gpt2.py" --mfu "$gms")
        echo "$gline"
        echo "$tline"
        # competitive: galvc's step at most 1.2 x PyTorch's (ratio = PyTorch's time over galvc's)
        ratio=$(awk -v g="$gms" -v t="$tms" 'BEGIN { printf "%.3f", t / g }')
        verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 1 / 1.2) ? "PASS" : "FAIL" }')
        row "(f) GPT-2 124M speed" "$verdict" "$((g_secs + SECS))" \
            "galvc $gms ms, mfu $(field mfu "$gline"); torch $tms ms, mfu $(field mfu "$tline"); speed ratio $ratio"
    fi
fi

# ---- (g) galvc profile --target cuda ------------------------------------------------------

# What `galvc profile examples/gpt2-small.gv --target cuda -np 2` runs (galvc
# itself needs LLVM, which this machine lacks: bundle.sh prepared the kernels):
# two ranks on the one GPU, so the compute figures are rank 0's alone and the
# collectives and p2p are the shared GPU's host-staged ones.
echo "== (g) galvc profile --target cuda -np 2"
profile=$logs/cuda-profile.json
rm -f "$profile"
step profile 150 "${MPIRUN[@]}" -np 2 "${RUN[@]}" "$B/bin/galvc-profiler-cuda" --shape "$(cat "$B/profile-shape")" \
    --kernels "$B/gpt2-kernels/kernels.so" -o "$profile"
cat "$logs/profile.log"
if [ "$RC" != 0 ] || ! grep -q '"gemm_rates"' "$profile" 2>/dev/null; then
    row "(g) profile --target cuda" FAIL "$SECS" "exit $RC: $(grep -m1 -E 'galvrt|galvc profile|error|failed' "$logs/profile.log" | cut -c1-100)"
    profile=""
else
    rates=$(sed -n 's/.*"gemm_rates": {"fp32": \([^,]*\), "tf32": \([^,]*\), "bf16": \([^}]*\)}.*/\1 \2 \3/p' "$profile")
    detail=$(awk -v r="$rates" 'BEGIN { split(r, x, " "); printf "GEMMs fp32 %.1f, tf32 %.1f, bf16 %.1f TFLOP/s", x[1] / 1e12, x[2] / 1e12, x[3] / 1e12 }')
    row "(g) profile --target cuda" "$([ "$SECS" -lt 120 ] && echo PASS || echo FAIL)" "$SECS" \
        "$SECS s (under 120 s); $detail; $profile"
fi

# ---- (h) predicted against measured ---------------------------------------------------

# Each plan's run: its measured step time (median after 3 steps) and peak
# device memory (the end-of-run report) against the plan's. Memory does not
# depend on the profile: within 2% passes here. The step time the programs
# carry was predicted here from the datasheet; tests/gpu/predict.sh prices
# the same plans with (g)'s profile (it comes back in $OUT/gpu-check) and
# gives the 10% verdict where galvc runs.
echo "== (h) GPT-2 124M plans: predicted against measured"
for entry in "${PREDICT_PLANS[@]}"; do
    read -r name ranks args <<<"$entry"
    [ -n "$PY" ] || { row "(h) $name" FAIL 0 "no python3"; continue; }
    train "h-$name" 120 "$name.cuda" "$ranks" "$logs/$name.jsonl"
    sum=$(summary "$logs/$name.jsonl")
    if [ "$RC" != 0 ] || [ -z "$sum" ]; then
        row "(h) $name" FAIL "$SECS" "exit $RC: $(why "h-$name" "$logs/$name.jsonl")"
        continue
    fi
    read -r verdict detail < <(awk -v s="$sum" 'BEGIN {
        n = split(s, x, " "); for (i = 1; i < n; i += 2) v[x[i]] = x[i + 1]
        dm = v["peak"] / v["planned"] - 1
        printf "%s memory %.2f GiB, plan %.2f (%+.1f%%); %.0f ms/step, datasheet plan %.0f ms\n",
            (dm <= 0.02 && dm >= -0.02) ? "PASS" : "FAIL", v["peak"] / 2^30, v["planned"] / 2^30, 100 * dm,
            v["ms"], v["predicted_ms"] }')
    row "(h) $name" "$verdict" "$SECS" "$detail"
done
# where galvc runs here too (a build/ carried with LLVM beside it), the time verdict at once
if [ -n "$profile" ] && [ -n "$PY" ] && "$src/build/galvc" --version >/dev/null 2>&1; then
    step predict 60 bash "$src/tests/gpu/predict.sh" "$logs" "$src/build/galvc"
    cat "$logs/predict.log"
    if [ "$RC" = 0 ]; then row "(h) time, (g)'s profile" PASS "$SECS" "every plan within 10% time, 2% memory"
    else row "(h) time, (g)'s profile" FAIL "$SECS" "$(grep -c FAIL "$logs/predict.log") plans off: $logs/predict.log"; fi
elif [ -n "$profile" ]; then
    echo "time against (g)'s profile: bash tests/gpu/predict.sh DIR where galvc runs, DIR holding $profile and the logs"
fi

table
exit $FAILED
