#!/bin/sh
# vit_huge.sh GALVC MPIEXEC WORKDIR — examples/vit-huge.gv, the planner's
# ViT-H/14, builds a program and trains at a reduced size (2 layers of
# hidden 64, 32 x 32 images in 8 x 8 patches, 10 classes, batch 8) on 2 CPU
# ranks: 3 steps with finite losses and accuracies, each rank's peak memory
# within 2% of the plan's.
set -eu
galvc=$1 mpiexec=$2 work=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
"$galvc" "$src/examples/vit-huge.gv" -D layers=2 -D hidden=64 -D heads=4 -D image=32 -D patch=8 -D classes=10 \
    -D global_batch=8 --cluster "$src/examples/clusters/cpu-box.gv" --devices 2 -o train-vit-huge 2> build.log ||
    { cat build.log; exit 1; }
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 ./train-vit-huge --steps 3 --log vit-huge.jsonl > run.log
cat run.log
# three steps, each loss and accuracy a finite number (awk's comparisons fail on nan)
awk '/^step / { n++; if (!($4 > 0 && $4 < 100) || !($6 >= 0 && $6 <= 1)) bad = 1 } END { exit bad || n != 3 }' run.log ||
    { echo "vit_huge.sh: expected 3 steps with finite losses and accuracies" >&2; exit 1; }
sh "$src/tests/e2e/peak_within.sh" vit-huge.jsonl 2 vit_huge.sh
