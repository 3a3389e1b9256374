#!/bin/sh
# dropout.sh GALVC COMPARE MPIEXEC WORKDIR — dropout 0 trains exactly as a
# model without dropout (gpt-tiny-dropout at -D dropout=0 against
# gpt-tiny's reference run, to the bit), and dropout 0.1 does change the
# training (its reference run must not match gpt-tiny's). Needs both
# models' reference runs (run.sh) in WORKDIR.
set -eu
galvc=$1 compare=$2 mpiexec=$3 work=$4
src=$(cd "$(dirname "$0")/../.." && pwd)
cd "$work"
export OPENBLAS_NUM_THREADS=1
"$galvc" "$src/examples/gpt-tiny-dropout.gv" -D ranks=1 -D dropout=0 --uniform tp=1,pp=1,dp=1 -o train-dropout0
"$mpiexec" --allow-run-as-root --oversubscribe -np 1 ./train-dropout0 --steps 10 --seed 7 \
    --data "$src/README.md" --log dropout0.jsonl --dump dropout0.dump
"$compare" gpt-tiny-reference.jsonl dropout0.jsonl gpt-tiny-reference.dump dropout0.dump 0 0
if "$compare" gpt-tiny-reference.jsonl gpt-tiny-dropout-reference.jsonl gpt-tiny-reference.dump \
    gpt-tiny-dropout-reference.dump 1e-5 1e-5 > /dev/null 2>&1; then
    echo "dropout.sh: dropout 0.1 trained exactly as no dropout" >&2
    exit 1
fi
echo "dropout.sh: dropout 0 is bit-identical to no dropout; dropout 0.1 differs"
