#!/bin/sh
# t5_large.sh GALVC MPIEXEC WORKDIR — examples/t5-large.gv, the planner's
# T5-large, builds a program and trains at a reduced size (2 encoder and 2
# decoder blocks of hidden 64, 4 heads, FFN 256, 32 source and 32 target
# tokens, its own vocabulary of 32128 and dropout 0.1, batch 8) on 2 CPU
# ranks: 3 steps with finite losses, each rank's peak memory within 2% of
# the plan's.
set -eu
galvc=$1 mpiexec=$2 work=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
"$galvc" "$src/examples/t5-large.gv" -D layers=2 -D hidden=64 -D heads=4 -D ffn=256 -D seq_len=32 \
    -D global_batch=8 --cluster "$src/examples/clusters/cpu-box.gv" --devices 2 -o train-t5-large 2> build.log ||
    { cat build.log; exit 1; }
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 ./train-t5-large --steps 3 --data "$src/README.md" \
    --log t5-large.jsonl > run.log
cat run.log
# three steps, each loss a finite number near ln 32128 (awk's comparisons fail on nan)
awk '/^step / { n++; if (!($4 > 0 && $4 < 100)) bad = 1 } END { exit bad || n != 3 }' run.log ||
    { echo "t5_large.sh: expected 3 steps with finite losses" >&2; exit 1; }
sh "$src/tests/e2e/peak_within.sh" t5-large.jsonl 2 t5_large.sh
