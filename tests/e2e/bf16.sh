#!/bin/sh
# bf16.sh GALVC COMPARE MPIEXEC WORKDIR — bf16 mixed precision on CPU ranks
# (galvrt_sizes.h: every linear's GEMM on bf16-rounded operands with fp32
# accumulation; fp32 weights, gradients, moments and activations).
#  1. gpt-tiny in bf16 follows its fp32 loss curve: 20 steps on one rank,
#     every loss within 2% relative (a NaN fails: compare refuses NaN).
#  2. llama-tiny (SwiGLU, RMSNorm, rotary), vit-tiny (patch projection,
#     classifier), bert-tiny-cls (pooler, classifier), swin-tiny (windows,
#     patch merging) and t5-tiny (cross-attention, the head's decoder rows) on TP 2 in bf16
#     against the same plan in fp32: 10 steps, losses within 2%, each rank's
#     peak memory within 2% of the plan; and checkpointed against not (a
#     checkpointed block keeps fp32 values rounded in place, the others bf16
#     bits: the same values), at step 3's tolerances.
#  3. bf16 plans train the model that one bf16 rank does: DP 2, TP 2, PP 2
#     (1F1B), TP 2 x DP 2 with checkpointing, ZeRO-1, ZeRO-2 and ZeRO-3 over
#     DP 2, Ulysses 2 (plain, checkpointed, x ZeRO-3 over DP 2), 10 steps,
#     each rank's measured peak memory within 2% of the plan.
#     Tolerance: losses 2e-4 relative, parameters 1e-2. The plans differ from
#     one rank only in fp32 summation order (TP's partial sums, DP's
#     reduction), as in fp32 (1e-5); but a sum landing next to a bf16
#     rounding boundary then rounds to the neighbouring bf16 value (2^-8
#     relative), so an operand differs by a bf16 step now and then. That
#     moves the loss by ~4e-5 (TP 2, measured) and, through Adam, whose step
#     is about lr whatever the gradient's size, the parameters whose
#     gradients are near zero by up to lr a step: 10 steps at lr 1e-3 bound
#     them by 1e-2 (2.2e-3 measured).
set -eu
galvc=$1 compare=$2 mpiexec=$3 work=$4
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
model="$src/examples/gpt-tiny.gv"

# train NAME PRECISION RANKS PLAN STEPS: build and run one program of $model, logging and
# dumping; a model with a patch embedding trains on its synthetic images, the others on README.md
train() {
    data="$src/README.md"
    if grep -q '^ *patch_embedding' "$model"; then data=""; fi
    "$galvc" "$model" -D ranks="$3" -D precision="$2" --uniform "$4" -o "train-$1"
    "$mpiexec" --allow-run-as-root --oversubscribe -np "$3" "./train-$1" --steps "$5" --seed 7 \
        ${data:+--data "$data"} --log "$1.jsonl" --dump "$1.dump"
}

# memory NAME: every rank's measured peak within 2% of its plan
memory() {
    grep '"rank"' "$1.jsonl" |
        sed 's/.*"rank": \([0-9]*\).*"peak_mem_bytes": \([0-9.eE+]*\).*"planned_mem_bytes": \([0-9.eE+]*\).*/\1 \2 \3/' |
        awk '{ e = ($2 - $3) / $3; printf "rank %d: peak %.0f, planned %.0f (%+.2f%%)\n", $1, $2, $3, 100 * e
               if (e > 0.02 || e < -0.02) bad = 1; n++ } END { exit bad || n == 0 }' ||
        { echo "bf16.sh: $1: measured peak memory off the plan by more than 2%" >&2; exit 1; }
}

one=tp=1,pp=1,dp=1
train fp32 fp32 1 $one 20
train bf16 bf16 1 $one 20
if ! "$galvc" "$model" -D ranks=1 -D precision=bf16 --uniform $one --emit=c | grep -q '\.gemm16 = 4'; then
    echo "bf16.sh: the bf16 program does not round its GEMMs' operands" >&2
    exit 1
fi
memory bf16
echo "bf16 against fp32, 20 steps:"
"$compare" fp32.jsonl bf16.jsonl 0.02
# the rounding happened: bf16's parameters are not fp32's to the bit
if cmp -s fp32.dump bf16.dump; then
    echo "bf16.sh: bf16 trained the same parameters as fp32, to the bit" >&2
    exit 1
fi

for other in llama-tiny vit-tiny bert-tiny-cls swin-tiny t5-tiny; do
    model="$src/examples/$other.gv"
    train "$other-fp32" fp32 2 tp=2,pp=1,dp=1 10
    train "$other-bf16" bf16 2 tp=2,pp=1,dp=1 10
    memory "$other-bf16"
    echo "$other bf16 against fp32, TP 2:"
    "$compare" "$other-fp32.jsonl" "$other-bf16.jsonl" 0.02
    train "$other-bf16-ckpt" bf16 2 tp=2,pp=1,dp=1,ckpt 10
    echo "$other bf16 checkpointed against not, TP 2:"
    "$compare" "$other-bf16.jsonl" "$other-bf16-ckpt.jsonl" "$other-bf16.dump" "$other-bf16-ckpt.dump" 2e-4 1e-2
done
model="$src/examples/gpt-tiny.gv"

train ref bf16 1 $one 10
for plan in dp2:2:tp=1,pp=1,dp=2 tp2:2:tp=2,pp=1,dp=1 pp2-1f1b:2:tp=1,pp=2,dp=1,schedule=1f1b,m=4 \
    tp2dp2-ckpt:4:tp=2,pp=1,dp=2,ckpt zero1-dp2:2:tp=1,pp=1,dp=2,zero=1 zero2-dp2:2:tp=1,pp=1,dp=2,zero=2 \
    sdp2:2:tp=1,pp=1,dp=2,sdp ulysses2:2:ulysses=2 ulysses2-ckpt:2:ulysses=2,ckpt ulysses2dp2-sdp:4:ulysses=2,dp=2,sdp; do
    name=${plan%%:*} rest=${plan#*:}
    ranks=${rest%%:*} uniform=${rest#*:}
    train "$name" bf16 "$ranks" "$uniform" 10
    memory "$name"
    echo "bf16 $name against one bf16 rank:"
    "$compare" ref.jsonl "$name.jsonl" ref.dump "$name.dump" 2e-4 1e-2
done
