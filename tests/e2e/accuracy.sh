#!/bin/sh
# accuracy.sh GALVC MPIEXEC WORKDIR — a short version of bench/accuracy.sh
# that a broken cost model cannot pass: measure this machine quickly at the
# tiny GPT's shape, plan it for 2 ranks with that profile, train 20 steps,
# and fail when the predicted step is off the median step (after 5 warm-up
# steps) by more than 25% of it, or any rank's peak memory is off its
# stage's prediction by more than 2%. (The benchmark carries the real aim,
# 10% and 2%, on a quiet machine: bench/accuracy.sh.) A busy machine only
# slows the run: the check tries up to three runs and passes when one is
# within bounds; a broken model fails all three.
set -eu
galvc=$1 mpiexec=$2 work=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
"$galvc" profile "$src/examples/gpt-tiny.gv" --quick -np 2 -o accuracy-profile.json
"$galvc" "$src/examples/gpt-tiny.gv" -D ranks=2 --profile accuracy-profile.json -o train-accuracy
field() { sed -n "s/.*\"$1\": \([-0-9.eE+]*\).*/\1/p"; }
for attempt in 1 2 3; do
    "$mpiexec" --allow-run-as-root --oversubscribe -np 2 ./train-accuracy --steps 20 --data "$src/README.md" \
        --log accuracy.jsonl > accuracy.out
    predicted=$(grep '"plan"' accuracy.jsonl | field predicted_step_ms)
    measured=$(grep '"step"' accuracy.jsonl | tail -n +6 | field ms | sort -g |
               awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    grep '"rank"' accuracy.jsonl | field peak_mem_bytes > measured-mem
    grep '"rank"' accuracy.jsonl | field planned_mem_bytes > planned-mem
    if paste measured-mem planned-mem | awk -v p="$predicted" -v m="$measured" -v k="$attempt" '
        { e = ($2 - $1) / $1; if (e < 0) e = -e
          printf "rank %d: peak %.0f bytes, planned %.0f (%.2f%% off)\n", NR - 1, $1, $2, 100 * e
          if (e > 0.02) bad = 1 }
        END { printf "run %d: step predicted %.3f ms, measured %.3f ms (median)\n", k, p, m
              e = (p - m) / m
              if (!(e <= 0.25 && e >= -0.25)) { printf "step time off by %+.1f%%, more than 25%%\n", 100 * e; bad = 1 }
              exit bad }'; then
        exit 0
    fi
done
echo "accuracy.sh: the cost model is off (see above)" >&2
exit 1
