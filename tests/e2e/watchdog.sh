#!/bin/sh
# watchdog.sh GALVC MPIEXEC WORKDIR CASE — no silent hang: a collective that
# does not complete within --comm-timeout stops every rank, naming the call,
# its group and the step. One case per ctest:
#   hang2    gpt-tiny on DP 2; rank 1 stops calling collectives at step 3
#            (GALVRT_FAULT_SKIP_COLLECTIVE, the test-only fault switch):
#            rank 0's all-reduce over group {0, 1} is named
#   hang4    gpt-tiny on TP 2 x PP 2 (4 ranks, no SP: TP all-reduces); rank 2 stops at step 2: its
#            TP partner's all-reduce over group {2, 3} and stage 0's
#            receives from rank 2 are named
#   normal   a run with a small --comm-timeout trains as the run without it
#            (the same losses, bit for bit, and the same parameters)
#   options  --comm-timeout 0, negative, not a number, too large: refused on
#            every rank with the reason; --help lists --comm-timeout
# A hang fails: every run is under `timeout`, and a stopped run must end
# within 30 s of its start with --comm-timeout 3. (3 ranks cannot be tested:
# galvc plans for powers of two.)
set -eu
galvc=$1 mpiexec=$2 work=$3 case=$4
src=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$work"
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1

fail() { echo "watchdog.sh ($case): $*" >&2; exit 1; }

# run RANKS ARGS...: ./train on RANKS ranks, killed after 30 s (a hang: status 124)
run() {
    ranks=$1
    shift
    timeout -k 5 30 "$mpiexec" --allow-run-as-root --oversubscribe -np "$ranks" ./train --seed 7 \
        --data "$src/README.md" "$@"
}

# expect_stop RANKS FAULT PATTERN...: with the fault RANK:STEP and --comm-timeout 3,
# the run exits non-zero within 30 s (mpirun returns once every rank has
# exited), and stderr has every PATTERN
expect_stop() {
    ranks=$1 fault=$2
    shift 2
    start=$(date +%s)
    status=0
    GALVRT_FAULT_SKIP_COLLECTIVE=$fault run "$ranks" --steps 6 --comm-timeout 3 > out.txt 2> err.txt || status=$?
    took=$(($(date +%s) - start))
    cat err.txt >&2
    [ "$status" -ne 124 ] && [ "$status" -ne 137 ] || fail "fault $fault: still running after 30 s (a silent hang)"
    [ "$status" -ne 0 ] || fail "fault $fault: exited 0"
    [ "$took" -lt 30 ] || fail "fault $fault: took $took s to stop (limit 3 s)"
    for pattern in "GALVRT_FAULT_SKIP_COLLECTIVE: no more collectives from this rank" "$@"; do
        grep -q -- "$pattern" err.txt || fail "fault $fault: no message matching '$pattern'"
    done
    echo "ok: fault $fault stopped all $ranks ranks in $took s (status $status)"
}

case $case in
hang2)
    "$galvc" "$src/examples/gpt-tiny.gv" -D ranks=2 --uniform tp=1,pp=1,dp=2 -o train
    expect_stop 2 1:3 "rank 0: watchdog: allreduce in group {0, 1} at step 3 has not completed after 3" \
        "(--comm-timeout 3): stopping every rank"
    grep -q '^step    2 ' out.txt && ! grep -q '^step    3 ' out.txt || fail "the steps before the fault did not run"
    ;;
hang4)
    "$galvc" "$src/examples/gpt-tiny.gv" -D ranks=4 --uniform tp=2,pp=2,dp=1,m=2,nosp -o train
    expect_stop 4 2:2 "rank 3: watchdog: allreduce in group {2, 3} at step 2 has not completed" \
        "rank [01]: watchdog: recv from rank [23] in the world (4 ranks) at step 2 has not completed"
    ;;
normal)
    "$galvc" "$src/examples/gpt-tiny.gv" -D ranks=2 --uniform tp=1,pp=1,dp=2 -o train
    run 2 --steps 10 --dump plain.dump > plain.txt
    run 2 --steps 10 --dump watched.dump --comm-timeout 5 > watched.txt
    grep '^step' plain.txt | awk '{ print $2, $4 }' > plain.loss
    grep '^step' watched.txt | awk '{ print $2, $4 }' > watched.loss
    [ "$(wc -l < plain.loss)" -eq 10 ] || fail "the plain run did not train 10 steps"
    cmp plain.loss watched.loss || fail "--comm-timeout 5 changed the losses"
    cmp plain.dump watched.dump || fail "--comm-timeout 5 changed the parameters"
    echo "ok: 10 steps under --comm-timeout 5 equal the run without it"
    ;;
options)
    "$galvc" "$src/examples/gpt-tiny.gv" -D ranks=2 --uniform tp=1,pp=1,dp=2 -o train
    for v in 0 -1 -0.5 abc 3s nan inf 1e10 ''; do
        if run 2 --steps 1 --comm-timeout "$v" > out.txt 2> err.txt; then fail "--comm-timeout '$v': exited 0"; fi
        grep -q -- "bad value '$v' for --comm-timeout (a number of seconds" err.txt ||
            { cat err.txt >&2; fail "--comm-timeout '$v': no reason given"; }
        if grep -q '^step ' out.txt; then fail "--comm-timeout '$v': refused only after training"; fi
        echo "ok: --comm-timeout '$v' -> $(grep -m1 -- --comm-timeout err.txt)"
    done
    if run 2 --comm-timeout > out.txt 2> err.txt; then fail "--comm-timeout without a value: exited 0"; fi
    grep -q -- "unknown or incomplete option '--comm-timeout'.*--comm-timeout SECONDS" err.txt ||
        fail "--comm-timeout without a value: no usage"
    run 2 --help > help.txt 2> err.txt || fail "--help exited non-zero"
    grep -q -- '--comm-timeout SECONDS' help.txt || fail "--help does not list --comm-timeout"
    [ "$(grep -c -- '--comm-timeout' help.txt)" -eq 1 ] || fail "--help printed by more than one rank"
    ;;
*) fail "unknown case" ;;
esac
