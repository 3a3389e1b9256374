#!/bin/sh
# report.sh GALVC golden — galvc report on the fixture logs in
#   tests/data/report (two real 30-step runs of gpt-tiny on 2 ranks, data
#   parallel and pipelined, and small hand-written ones): the SVG and the HTML
#   are well-formed (xmllint), hold the four panels, one line per run and
#   panel, the plans' predictions and a legend naming each plan; bad logs and
#   bad usage are refused with their reasons and the right exit status.
# report.sh GALVC e2e MPIEXEC WORK — a log written by a program galvc builds
#   (gpt-tiny, 2 ranks, 6 steps) and reported: the writer and the reader agree.
set -u
galvc=$1
mode=$2
src=$(cd "$(dirname "$0")/.." && pwd)
data=$src/tests/data/report
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "report.sh: $*" >&2; exit 1; }
# count PATTERN FILE: how many times PATTERN occurs in FILE
count() { grep -o "$1" "$2" | wc -l | tr -d ' '; }
# expect N PATTERN FILE
expect() { [ "$(count "$2" "$3")" = "$1" ] || fail "$3: want $1 of '$2', found $(count "$2" "$3")"; }
# refused STATUS MESSAGE ARGS...: galvc report ARGS exits STATUS and says MESSAGE
refused() {
    want=$1 message=$2
    shift 2
    "$galvc" report "$@" > "$out/stdout" 2> "$out/err"
    got=$?
    cat "$out/err"
    [ "$got" = "$want" ] || fail "report $*: exit $got, want $want"
    grep -qF -- "$message" "$out/err" || fail "report $*: no '$message' in the error"
    [ ! -s "$out/stdout" ] || fail "report $*: printed a picture anyway"
}

if [ "$mode" = e2e ]; then
    mpiexec=$3 work=$4
    mkdir -p "$work"
    "$galvc" "$src/examples/gpt-tiny.gv" -D ranks=2 -o "$work/train" || fail "cannot build gpt-tiny"
    OPENBLAS_NUM_THREADS=1 "$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$work/train" --steps 6 \
        --data "$src/README.md" --log "$work/run.jsonl" > /dev/null || fail "the training run failed"
    "$galvc" report "$work/run.jsonl" -o "$work/report.svg" || fail "galvc report failed on a fresh log"
    xmllint --noout "$work/report.svg" || fail "the SVG is not well-formed"
    expect 4 'class="run"' "$work/report.svg"
    expect 2 'class="rank-peak"' "$work/report.svg"
    grep -q 'gpt_tiny, 2 ranks, pp=1, 1 micro-batch ' "$work/report.svg" || fail "no legend for the run"
    echo "report.sh: e2e ok"
    exit 0
fi

# two runs overlaid: 4 panels x 2 runs; predicted step time and tokens/s per
# run, planned memory per stage (1 for data parallel, 2 for the pipeline)
"$galvc" report "$data/dp2.jsonl" "$data/pp2.jsonl" -o "$out/two.svg" || fail "report of two runs failed"
svg=$out/two.svg
xmllint --noout "$svg" || fail "$svg is not well-formed XML"
head -c 5 "$svg" | grep -q '<svg ' || fail "the SVG does not open with <svg"
for id in loss step-time tokens memory legend; do expect 1 "<g id=\"$id\"" "$svg"; done
expect 8 '<path class="run"' "$svg"
expect 4 '<path class="run" data-run="1"' "$svg"
expect 4 '<path class="run" data-run="2"' "$svg"
expect 7 '<line class="predicted"' "$svg"
expect 4 '<line class="predicted" data-run="2"' "$svg"
expect 4 'class="rank-peak"' "$svg"
expect 2 'class="legend-run"' "$svg"
expect 4 '>step</text>' "$svg"
for label in '>loss</text>' '>step time (ms)</text>' '>throughput (tokens/s)</text>' '>peak memory (MiB)</text>' \
    '1: gpt_tiny, 2 ranks, pp=1, 1 micro-batch (' '2: gpt_tiny, 2 ranks, pp=2, 4 micro-batches (' \
    'plan 1: 6.334 ms' 'plan 2: 7.915 ms'; do
    grep -qF -- "$label" "$svg" || fail "no '$label' in the SVG"
done
[ "$(count 'class="tick-label"' "$svg")" -ge 20 ] || fail "too few tick labels"
if grep -qiE '<script|href=|@import|url\(' "$svg"; then fail "the SVG refers to something outside it"; fi

# standard output is the same picture; .html wraps it in a page
"$galvc" report "$data/dp2.jsonl" "$data/pp2.jsonl" > "$out/stdout.svg" || fail "report to stdout failed"
cmp -s "$svg" "$out/stdout.svg" || fail "stdout differs from -o FILE.svg"
"$galvc" report "$data/dp2.jsonl" "$data/pp2.jsonl" -o "$out/two.html" || fail "report -o FILE.html failed"
head -1 "$out/two.html" | grep -q '<!DOCTYPE html>' || fail "the HTML has no doctype"
xmllint --noout "$out/two.html" || fail "the HTML is not well-formed"
# libxml2's HTML parser knows HTML 4, not inline SVG: it may only complain about SVG's tags
xmllint --html --noout "$out/two.html" 2>&1 | grep 'parser error' | grep -v 'Tag [a-z]* invalid' &&
    fail "the HTML parser found more than SVG tags"
expect 8 '<path class="run"' "$out/two.html"

# one run; markup in the model's name is text; a step without a loss leaves a gap
"$galvc" report "$data/markup.jsonl" -o "$out/markup.svg" || fail "report of markup.jsonl failed"
xmllint --noout "$out/markup.svg" || fail "markup.svg is not well-formed XML"
grep -qF '1: a&lt;b&gt;&amp;&quot;c&#39;?, 1 rank, pp=1, 2 micro-batches' "$out/markup.svg" || fail "model not escaped"
expect 4 '<path class="run"' "$out/markup.svg"
grep 'id="loss"' -A 30 "$out/markup.svg" | grep -q '<path class="run" data-run="1" d="M[0-9. ]*l0 0 M[0-9. ]*l0 0 L' ||
    fail "no gap in the loss line where a step has no loss"

# bad input: named with its line, exit 1, nothing drawn
refused 1 "missing.jsonl': No such file" "$data/missing.jsonl"
refused 1 "bad-json.jsonl:4: error: not a JSON object" "$data/bad-json.jsonl"
refused 1 "bad-number.jsonl:3: error: 'loss' is not a number" "$data/bad-number.jsonl"
refused 1 "no-steps.jsonl' has no steps" "$data/no-steps.jsonl"
refused 1 "has no plan line" /dev/null
refused 1 "cannot read '$data'" "$data"
refused 1 "bad-number.jsonl:3" "$data/dp2.jsonl" "$data/bad-number.jsonl" "$data/no-steps.jsonl"
grep -q "no-steps.jsonl' has no steps" "$out/err" || fail "only the first bad log was reported"
# -o naming an input (by another path, or a hard link) is refused and leaves it alone
cp "$data/dp2.jsonl" "$out/run.svg" && ln "$out/run.svg" "$out/link.svg"
refused 1 "is one of the logs" "$out/run.svg" -o "$out/./run.svg"
refused 1 "is one of the logs" "$out/run.svg" -o "$out/link.svg"
cmp -s "$data/dp2.jsonl" "$out/run.svg" || fail "an input was overwritten"
refused 1 "cannot write" "$data/dp2.jsonl" -o "$out/no/such/dir/r.svg"

# bad usage: exit 2
refused 2 "no logs given"
refused 2 "unknown option '--bogus'" --bogus "$data/dp2.jsonl"
refused 2 "name a .svg or .html file" "$data/dp2.jsonl" -o "$out/r.png"
refused 2 "-o needs a file name" "$data/dp2.jsonl" -o
"$galvc" report --help | grep -q "usage: galvc report" || fail "no usage from galvc report --help"
"$galvc" --help | grep -q "galvc report RUN.jsonl" || fail "galvc --help does not list galvc report"
echo "report.sh: ok"
