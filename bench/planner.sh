#!/usr/bin/env bash
# bench/planner.sh — how long the planner's search takes, and what it finds,
# as the device count grows.
#
# For each model (examples/gpt2-xl.gv, llama2-7b.gv, gpt3-175b.gv) and each
# device count (8, 64, 1024, 16384) it runs
#     galvc MODEL.gv --emit=plan-json --devices N [-D NAME=N]
# and prints one table row: model, devices, global batch, the search time the
# planner reports (search_ms), the whole galvc process's wall time and CPU time
# (user + system) measured here, the pipeline degree, the micro-batch count,
# and the predicted samples/s and step time. Runs over 5 s are flagged SLOW.
#
# The planner needs a whole number of samples per device (global batch >=
# devices / pp), so where a model's global batch is smaller than the device
# count the run raises it to the device count with -D, and the table says so.
#
# Each run has a time limit (BENCH_TIMEOUT seconds, default 600); a run that
# times out, crashes or finds no plan is reported in its row ("timeout", or
# galvc's error message) and the benchmark goes on to the next run.
#
# Usage: bench/planner.sh            (from anywhere; `make bench` builds first)
# Environment:
#   GALVC          the compiler to run            (default: build/galvc in the repository)
#   BENCH_MODELS   models, as FILE:BATCH_NAME     (default: the three below)
#   BENCH_DEVICES  device counts                  (default: 8 64 1024 16384)
#   BENCH_TIMEOUT  seconds allowed per run        (default: 600)
#   BENCH_SLOW_MS  wall time above which a run is flagged slow (default: 5000)
# BATCH_NAME is the binding -D overrides to raise the global batch:
# gpt3-175b.gv binds a top-level constant `batch`, the others the train
# block's field `global_batch`.
#
# Uses jq to read the JSON when it is installed, sed otherwise.
# Exit status: 0 when every run either found a plan or galvc rejected the
# input (status 1, e.g. "no plan fits"); 1 when some run timed out, crashed
# or failed otherwise; 2 when galvc is missing.

set -u

# A GALVC given relative to the caller's directory, made absolute before the cd.
case ${GALVC:-} in
    "" | /*) ;;
    *) [ -e "$GALVC" ] && GALVC=$PWD/$GALVC ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

GALVC=${GALVC:-build/galvc}
MODELS=${BENCH_MODELS:-"gpt2-xl:global_batch llama2-7b:global_batch gpt3-175b:batch"}
DEVICES=${BENCH_DEVICES:-"8 64 1024 16384"}
TIMEOUT=${BENCH_TIMEOUT:-600}
SLOW_MS=${BENCH_SLOW_MS:-5000}

if [ ! -x "$GALVC" ]; then
    echo "planner.sh: $GALVC not found; build it first (make build, or make bench)" >&2
    exit 2
fi

if command -v jq >/dev/null 2>&1; then have_jq=1; else have_jq=0; fi

# json_num FILE KEY: the number after the first "KEY": in FILE (galvc prints
# each key on its own line; search_ms, pp, micro_batches, global_batch,
# step_ms and samples_per_s each occur once).
json_num() {
    if [ "$have_jq" = 1 ]; then
        jq -r --arg k "$2" 'first(.. | objects | select(has($k)) | .[$k]) // empty' "$1" 2>/dev/null
    else
        sed -n "s/^[[:space:]]*\"$2\":[[:space:]]*\\([-0-9.eE+]*\\).*/\\1/p" "$1" | head -n 1
    fi
}

# Milliseconds since the epoch, as a decimal.
now_ms() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        echo "${EPOCHREALTIME/[.,]/}" | awk '{ printf "%.3f", $1 / 1000 }'
    else
        date +%s%N | awk '{ printf "%.3f", $1 / 1e6 }'
    fi
}

# The user + system time of this shell's children, in ms, from the second
# line of bash's `times` ("0m1.234s 0m0.056s"). `times` runs in this shell
# (its output redirected to a file, never in a pipe or $(...), which would
# fork a subshell whose children's times start at zero).
# shellcheck disable=SC2016
cpu_awk='NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
                   printf "%.3f\n", t * 1000 }'

tmp=$(mktemp -d "${TMPDIR:-/tmp}/galvc-bench.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

echo "galvc planner benchmark: $("$GALVC" --version 2>&1 | head -n 1)"
echo "host: $(uname -n), $(nproc 2>/dev/null || echo '?') CPUs$(sed -n 's/^model name[[:space:]]*: */, /p' /proc/cpuinfo 2>/dev/null | head -n 1)"
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); per-run limit ${TIMEOUT} s; JSON read with $([ "$have_jq" = 1 ] && echo jq || echo sed)"
echo

row() { printf '%-10s %7s %7s %10s %10s %10s %4s %6s %11s %9s  %s\n' "$@"; }
row model devices batch search_ms wall_ms cpu_ms pp micro samples/s step_s note
row ---------- ------- ------- ---------- ---------- ---------- ---- ------ ----------- --------- ----

failed=0 bad=0 slow=0
for entry in $MODELS; do
    model=${entry%%:*}
    bname=${entry#*:}
    [ "$bname" = "$entry" ] && bname=global_batch
    file=examples/$model.gv
    if [ ! -f "$file" ]; then
        row "$model" - - - - - - - - - "error: $file not found"
        failed=$((failed + 1)) bad=$((bad + 1))
        continue
    fi
    # The model's own global batch, from its IR.
    "$GALVC" "$file" --emit=ir-json >"$tmp/ir.json" 2>"$tmp/ir.err"
    base=$(json_num "$tmp/ir.json" global_batch)
    if [ -z "$base" ]; then
        row "$model" - - - - - - - - - "error: $(head -n 1 "$tmp/ir.err")"
        failed=$((failed + 1)) bad=$((bad + 1))
        continue
    fi
    for n in $DEVICES; do
        batch=$base
        set -- "$file" --emit=plan-json --devices "$n"
        note=""
        if [ "$base" -lt "$n" ]; then
            batch=$n
            set -- "$@" -D "$bname=$n"
            note="batch raised from $base (-D $bname=$n)"
        fi
        t0=$(now_ms)
        times >"$tmp/times0"
        timeout -k 10 "$TIMEOUT" "$GALVC" "$@" >"$tmp/out.json" 2>"$tmp/err"
        rc=$?
        times >"$tmp/times1"
        t1=$(now_ms)
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
        cpu=$(awk "$cpu_awk" "$tmp/times1" | awk -v a="$(awk "$cpu_awk" "$tmp/times0")" '{ printf "%.0f", $1 - a }')
        if awk -v w="$wall" -v s="$SLOW_MS" 'BEGIN { exit !(w > s) }'; then
            slow=$((slow + 1))
            note="SLOW (> $((SLOW_MS / 1000)) s)${note:+; $note}"
        fi
        if [ "$rc" -ne 0 ]; then
            if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "${wall%.*}" -ge $((TIMEOUT * 1000)) ]; }; then
                why="timeout (${TIMEOUT} s)"
            elif [ "$rc" -gt 128 ]; then
                why="killed by signal $((rc - 128))"
            else
                why="exit $rc: $(grep -m 1 . "$tmp/err" | cut -c 1-300)"
            fi
            [ "$rc" -ne 1 ] && bad=$((bad + 1))
            failed=$((failed + 1))
            row "$model" "$n" "$batch" - "$wall" "$cpu" - - - - "FAILED $why${note:+; $note}"
            continue
        fi
        search=$(json_num "$tmp/out.json" search_ms)
        pp=$(json_num "$tmp/out.json" pp)
        m=$(json_num "$tmp/out.json" micro_batches)
        gb=$(json_num "$tmp/out.json" global_batch)
        sps=$(json_num "$tmp/out.json" samples_per_s)
        step=$(json_num "$tmp/out.json" step_ms)
        row "$model" "$n" "${gb:-$batch}" \
            "$(awk -v x="${search:-0}" 'BEGIN { printf "%.1f", x }')" "$wall" "$cpu" "${pp:--}" "${m:--}" \
            "$(awk -v x="${sps:-0}" 'BEGIN { printf "%.2f", x }')" \
            "$(awk -v x="${step:-0}" 'BEGIN { printf "%.3f", x / 1000 }')" "$note"
    done
done

echo
echo "search_ms: the planner's own timing of its search; wall_ms: the whole galvc process, timed here;"
echo "cpu_ms: its user + system CPU time (wall_ms well above cpu_ms means other work shared the CPUs)."
echo "samples/s and step_s: the plan's predicted throughput and step time (the cost model, not a measurement)."
echo "$failed run(s) failed, $slow run(s) over $((SLOW_MS / 1000)) s."
[ "$bad" -eq 0 ]
