#!/bin/sh
# t5_reference.sh GALVC MPIEXEC WORKDIR — t5-tiny against an independent
# reading of Hugging Face's T5ForConditionalGeneration (e2e/t5_reference.py,
# plain Python over the exported safetensors): trained 40 steps at lr 3e-3 on
# README.md under TP 2 x DP 2, exported, then the loss of step 0's records
# with those parameters (one step from --init-safetensors on one rank) must
# equal the reference's within 1e-5 relative.
set -eu
galvc=$1 mpiexec=$2 work=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
"$galvc" "$src/examples/t5-tiny.gv" -D ranks=4 --uniform tp=2,pp=1,dp=2 -o train-tp2dp2
"$galvc" "$src/examples/t5-tiny.gv" -D ranks=1 --uniform tp=1,pp=1,dp=1 -o train-1
"$mpiexec" --allow-run-as-root --oversubscribe -np 4 ./train-tp2dp2 --steps 40 --lr 3e-3 --data "$src/README.md" \
    --export-safetensors trained.safetensors > train.log
"$mpiexec" --allow-run-as-root --oversubscribe -np 1 ./train-1 --steps 1 --init-safetensors trained.safetensors \
    --data "$src/README.md" > step0.log
ours=$(awk '/^step +1 / { print $4 }' step0.log)
ref=$(python3 "$src/tests/e2e/t5_reference.py" trained.safetensors "$src/README.md" 32 16 8)
echo "step 0's loss with the trained parameters: $ours; the Python reference's: $ref"
awk -v a="$ours" -v b="$ref" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(b > 0 && b < 5.4 && d <= 1e-5) }' ||
    { echo "t5_reference.sh: the losses differ (or the model did not train below 5.4)" >&2; exit 1; }
