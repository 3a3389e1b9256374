#!/bin/sh
# run.sh GALVC COMPARE MPIEXEC WORKDIR MODEL NAME RANKS PLAN — one end-to-end
# test: build examples/MODEL.gv for RANKS ranks with `galvc --uniform PLAN`
# (or, for PLAN budget=MEM, with the plan galvc finds for MEM per rank, which
# must mix strategies: that is what the test is for; for PLAN plan=FILE, with
# the Galvatron config FILE, a path in the repository), train 10 steps under
# mpirun, and compare its losses and final parameters with the model's
# one-rank run (NAME "reference" makes that run instead).
# Losses must agree within 1e-5 relative and parameters within 1e-5 (the
# largest differences seen are 4e-9 and 3e-6: summation orders differ).
# A ninth argument `memory` also checks every rank's measured peak memory
# against the plan's, within 2%.
# A model that starts with a patch_embedding trains on its synthetic images
# (README.md is its text data for every other model).
# MODEL@B trains examples/MODEL.gv at global batch B (-D global_batch=B), so
# that it splits over 3 or 6 ranks; MODEL@B's runs compare with its own
# one-rank run.
set -eu
galvc=$1 compare=$2 mpiexec=$3 work=$4 model=$5 name=$6 ranks=$7 plan=$8 check=${9:-}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
run=$model-$name
file=${model%@*}
case $model in
*@*) batch="-D global_batch=${model#*@}" ;;
*) batch="" ;;
esac
data="$src/README.md"
if grep -q '^ *patch_embedding' "$src/examples/$file.gv"; then data=""; fi
case $plan in
budget=*)
    mem=${plan#budget=}
    set -- -D rank_memory="${mem%MiB} MiB"
    # shellcheck disable=SC2086 # $batch is empty or two words
    "$galvc" "$src/examples/$file.gv" -D ranks="$ranks" $batch "$@" --emit=plan > "$run.plan"
    cat "$run.plan"
    # the strategy column of the layer rows: at least two different ones
    kinds=$(awk '/^ +[0-9]+  / { $1 = ""; $2 = ""; print }' "$run.plan" | sort -u | wc -l)
    if [ "$kinds" -lt 2 ]; then
        echo "run.sh: the plan for $mem per rank does not mix strategies" >&2
        exit 1
    fi ;;
plan=*) set -- --plan "$src/${plan#plan=}" ;; # a Galvatron config, relative to the repository
*) set -- --uniform "$plan" ;;
esac
# shellcheck disable=SC2086
"$galvc" "$src/examples/$file.gv" -D ranks="$ranks" $batch "$@" -o "train-$run"
"$mpiexec" --allow-run-as-root --oversubscribe -np "$ranks" "./train-$run" --steps 10 --seed 7 \
    ${data:+--data "$data"} --log "$run.jsonl" --dump "$run.dump"
if [ "$check" = memory ]; then
    grep '"rank"' "$run.jsonl" | sed 's/.*"rank": \([0-9]*\).*"peak_mem_bytes": \([0-9.eE+]*\).*"planned_mem_bytes": \([0-9.eE+]*\).*/\1 \2 \3/' |
        awk '{ e = ($2 - $3) / $3; printf "rank %d: peak %.0f, planned %.0f (%+.2f%%)\n", $1, $2, $3, 100 * e
               if (e > 0.02 || e < -0.02) bad = 1; n++ } END { exit bad || n == 0 }' ||
        { echo "run.sh: measured peak memory off the plan by more than 2%" >&2; exit 1; }
fi
[ "$name" = reference ] && exit 0
"$compare" "$model-reference.jsonl" "$run.jsonl" "$model-reference.dump" "$run.dump" 1e-5 1e-5
