#!/bin/sh
# calibrate.sh GALVC — galvc --calibrate on fixture logs: the fitted factors
# and errors are the ones the logs imply (15 = 10a + 2b and 10.5 = 5a + 5b:
# a = 1.35, b = 0.75, exact after the refit), the refitted profile is one
# galvc plans with, and unusable logs are refused with their reasons.
set -u
galvc=$1
src=$(cd "$(dirname "$0")/.." && pwd)
data=$src/tests/data/calibrate
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "calibrate.sh: $*" >&2; exit 1; }

"$galvc" --calibrate "$data/compute-bound.jsonl" "$data/comm-bound.jsonl" \
    --profile "$src/tests/data/profiles/good.json" -o "$out/new.json" > "$out/report" || fail "galvc --calibrate failed"
cat "$out/report"
grep -q "compute 1.350x, communication 0.750x" "$out/report" || fail "wrong factors"
grep -q "mean absolute error: 12.4% before, 0.0% after" "$out/report" || fail "wrong errors"
"$galvc" "$src/examples/llama2-7b.gv" --profile "$out/new.json" --emit=plan > /dev/null || fail "the refitted profile does not plan"

# three runs with collective counts separate the meeting cost: a = 1.2,
# b = 0.8 (of the transfer, after the profile's 25 us a call) and 50 us a call
"$galvc" --calibrate "$data"/sync-*.jsonl --profile "$src/tests/data/profiles/good.json" -o "$out/sync.json" \
    > "$out/report" || fail "galvc --calibrate failed on the sync logs"
cat "$out/report"
grep -q "compute 1.200x, communication 0.800x what the profile said; 50.0 us per blocking collective" "$out/report" ||
    fail "wrong factors for the sync logs"
grep -q '"sync_overhead": 5e-0*5,' "$out/sync.json" || fail "sync_overhead not written"

"$galvc" --calibrate "$data/too-short.jsonl" "$data/no-plan.jsonl" --profile "$src/tests/data/profiles/good.json" \
    -o "$out/bad.json" 2> "$out/err" && fail "unusable logs were accepted"
cat "$out/err"
grep -q "has 2 steps; it needs more than 5" "$out/err" || fail "no message for a short log"
grep -q "has no plan line" "$out/err" || fail "no message for a log without a plan"
[ ! -e "$out/bad.json" ] || fail "a profile was written from unusable logs"
"$galvc" --calibrate "$data/comm-bound.jsonl" -o "$out/x.json" 2> /dev/null
[ $? = 2 ] || fail "no --profile: want exit 2"
echo "calibrate.sh: ok"
