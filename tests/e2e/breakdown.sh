#!/bin/sh
# breakdown.sh GALVC MPIEXEC WORKDIR — GALVRT_BREAKDOWN=1: gpt-tiny, DP 2 and
# PP 2, 12 steps; every rank prints one breakdown line after the last step;
# the lines name the layers' forward and backward, the collectives the plan makes
# (DP: allreduce; PP: p2p), the optimizer; its parts add up to its step,
# within 25% of the mean step the program printed (the same steps, after 5
# warm-up steps). Without the variable no rank prints one.
set -eu
galvc=$1 mpiexec=$2 work=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
fail() { echo "breakdown.sh: $*" >&2; exit 1; }
run() { # PLAN COLLECTIVE
    "$galvc" "$src/examples/gpt-tiny.gv" -D ranks=2 --uniform "$1" -o train
    GALVRT_BREAKDOWN=1 "$mpiexec" --allow-run-as-root --oversubscribe -x GALVRT_BREAKDOWN -np 2 ./train --steps 12 \
        --data "$src/README.md" > out.txt 2> err.txt || fail "$1: the run failed: $(cat err.txt)"
    cat err.txt
    [ "$(grep -c '^breakdown rank [01] ' err.txt)" = 2 ] || fail "$1: not one breakdown line a rank"
    for part in fwd-block bwd-block fwd-head optimizer "$2"; do
        grep '^breakdown rank ' err.txt | grep -q " $part [0-9]" || fail "$1: no rank's breakdown has $part"
    done
    mean=$(awk '/^step/ { for (i = 1; i <= NF; i++) if ($i == "ms") v[++n] = $(i - 1) }
                END { for (i = 6; i <= n; i++) s += v[i]; if (n > 5) print s / (n - 5) }' out.txt)
    sum=$(sed -n 's/^breakdown rank 0 .*; step \([0-9.]*\)$/\1/p' err.txt)
    awk -v a="$sum" -v b="$mean" 'BEGIN { exit !(a > 0 && b > 0 && a < 1.25 * b && a > 0.75 * b) }' ||
        fail "$1: the parts add up to $sum ms a step, the program printed $mean"
    echo "ok: $1: parts $sum ms, steps $mean ms"
}
run tp=1,pp=1,dp=2 allreduce
run tp=1,pp=2,dp=1 p2p
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 ./train --steps 3 --data "$src/README.md" > out.txt 2> err.txt
! grep -q '^breakdown' err.txt || fail "a breakdown without GALVRT_BREAKDOWN"
