#!/bin/sh
# run.sh GALVC COMPARE MPIEXEC WORKDIR NAME RANKS UNIFORM — one end-to-end test:
# build examples/gpt-tiny.gv for RANKS ranks with `galvc --uniform UNIFORM`,
# train 10 steps under mpirun, and compare its losses and final parameters
# with the one-rank run (NAME "reference" makes that run instead).
# Losses must agree within 1e-5 relative; parameters within 2e-5 (Adam
# divides each gradient by its running RMS, so for weights whose gradient is
# near zero the last-bit differences of another summation order reach the
# update at full strength; 1e-5 is exceeded by ~1.2e-5 on DP=4 and TP x DP).
set -eu
galvc=$1 compare=$2 mpiexec=$3 work=$4 name=$5 ranks=$6 uniform=$7
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
"$galvc" "$src/examples/gpt-tiny.gv" -D ranks="$ranks" --uniform "$uniform" -o "train-$name"
"$mpiexec" --allow-run-as-root --oversubscribe -np "$ranks" "./train-$name" --steps 10 --seed 7 \
    --data "$src/README.md" --log "$name.jsonl" --dump "$name.dump"
[ "$name" = reference ] && exit 0
"$compare" reference.jsonl "$name.jsonl" reference.dump "$name.dump" 1e-5 2e-5
