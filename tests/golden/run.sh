#!/bin/sh
# run.sh GALVC NAME.gv — one golden test: runs galvc on NAME.gv (from this
# folder, so messages name files as the test wrote them) with the arguments on
# a first line of the form "# args: ...", and compares everything it printed,
# and its exit status, with NAME.expected. With GOLDEN_UPDATE=1 it rewrites
# NAME.expected instead; review the result with `git diff`. The planner's
# own wall time is the one figure that changes between runs: it is masked.
set -u
galvc=$1
input=$2
expected=${input%.gv}.expected
args=$(sed -n '1s/^# args: //p' "$input")
actual=$(mktemp)
status=$(mktemp)
trap 'rm -f "$actual" "$status"' EXIT
# shellcheck disable=SC2086 # the args line is split like a shell command line
{ "$galvc" "$input" $args 2>&1; echo $? >"$status"; } | sed -E 's/search took [0-9.]+ ms/search took N ms/; s/"search_ms": [0-9.e+-]+/"search_ms": N/' >"$actual"
echo "exit: $(cat "$status")" >>"$actual"
if [ "${GOLDEN_UPDATE:-0}" = 1 ]; then
    cp "$actual" "$expected"
    echo "updated $expected"
    exit 0
fi
if [ ! -f "$expected" ]; then
    echo "$expected is missing; run with GOLDEN_UPDATE=1 to create it" >&2
    cat "$actual"
    exit 1
fi
diff -u "$expected" "$actual"
