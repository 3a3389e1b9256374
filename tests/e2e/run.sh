#!/bin/sh
# run.sh GALVC COMPARE MPIEXEC WORKDIR MODEL NAME RANKS PLAN — one end-to-end
# test: build examples/MODEL.gv for RANKS ranks with `galvc --uniform PLAN`
# (or, for PLAN budget=MEM, with the plan galvc finds for MEM per rank, which
# must mix strategies: that is what the test is for), train 10 steps under
# mpirun, and compare its losses and final parameters with the model's
# one-rank run (NAME "reference" makes that run instead).
# Losses must agree within 1e-5 relative and parameters within 1e-5 (the
# largest differences seen are 4e-9 and 3e-6: summation orders differ).
set -eu
galvc=$1 compare=$2 mpiexec=$3 work=$4 model=$5 name=$6 ranks=$7 plan=$8
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
run=$model-$name
case $plan in
budget=*)
    mem=${plan#budget=}
    set -- -D rank_memory="${mem%MiB} MiB"
    "$galvc" "$src/examples/$model.gv" -D ranks="$ranks" "$@" --emit=plan > "$run.plan"
    cat "$run.plan"
    # the strategy column of the layer rows: at least two different ones
    kinds=$(awk '/^ +[0-9]+  / { $1 = ""; $2 = ""; print }' "$run.plan" | sort -u | wc -l)
    if [ "$kinds" -lt 2 ]; then
        echo "run.sh: the plan for $mem per rank does not mix strategies" >&2
        exit 1
    fi ;;
*) set -- --uniform "$plan" ;;
esac
"$galvc" "$src/examples/$model.gv" -D ranks="$ranks" "$@" -o "train-$run"
"$mpiexec" --allow-run-as-root --oversubscribe -np "$ranks" "./train-$run" --steps 10 --seed 7 \
    --data "$src/README.md" --log "$run.jsonl" --dump "$run.dump"
[ "$name" = reference ] && exit 0
"$compare" "$model-reference.jsonl" "$run.jsonl" "$model-reference.dump" "$run.dump" 1e-5 1e-5
