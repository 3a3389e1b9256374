#!/bin/sh
# svg.sh GALVC structure|xmllint — the plan's picture (galvc --emit=svg) for
# three gpt-tiny plans: DP 2, PP 2 with 1F1B over 4 micro-batches, and the
# plan searched for 8 ranks of 10 MiB (mixed strategies).
#   structure: its parts are there and count right (a row per stage, a
#     forward and a backward per micro-batch per stage in the schedule's
#     order, p2p and ZeRO-3 traffic, bubbles, a cell per layer, a memory row
#     per stage, the labels), and --plot writes the same picture beside an
#     unchanged stdout, but never over the model file.
#   xmllint: every picture is well-formed XML (exit 77, skipped, without xmllint).
set -u
galvc=$1 mode=$2
src=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "svg.sh: $*" >&2; exit 1; }
model=$src/examples/gpt-tiny.gv

"$galvc" "$model" -D ranks=2 --uniform tp=1,pp=1,dp=2 --emit=svg > "$out/dp2.svg" || fail "dp2: galvc failed"
"$galvc" "$model" -D ranks=2 --uniform tp=1,pp=2,dp=1,schedule=1f1b,m=4 --emit=svg > "$out/pp2.svg" ||
    fail "pp2: galvc failed"
"$galvc" "$model" -D ranks=8 -D rank_memory="10 MiB" --emit=svg > "$out/mixed.svg" || fail "mixed: galvc failed"

if [ "$mode" = xmllint ]; then
    command -v xmllint > /dev/null || { echo "svg.sh: xmllint not installed (libxml2-utils): skipped"; exit 77; }
    for f in "$out"/*.svg; do xmllint --noout "$f" || fail "$(basename "$f") is not well-formed"; done
    echo "svg.sh: 3 pictures well-formed"
    exit 0
fi

# count FILE PATTERN: the lines matching (each element is on a line of its own)
count() { grep -c -- "$2" "$1"; }
# expect FILE PATTERN N
expect() {
    n=$(count "$1" "$2")
    [ "$n" = "$3" ] || fail "$(basename "$1"): $3 lines with '$2' expected, $n found"
}
# the passes of stage K in document order: "F0 F1 B0 ..."
passes() {
    sed -n "/<g class=\"stage\" data-stage=\"$2\"/,/<\/g>/p" "$1" |
        sed -n 's/^<rect class="\(fwd\|bwd\)".*data-mb="\([0-9]*\)".*/\1\2/p' | sed 's/^fwd/F/; s/^bwd/B/' | tr '\n' ' '
}

for f in "$out"/*.svg; do
    for label in '<g id="timeline">' '<g id="memory">' '<g id="strategies">' 'Pipeline timeline of one step' \
        'Memory per device, by stage, against the budget' 'Strategy of each layer (7 layers' '>stage 0</text>' \
        '>forward</text>' '>backward</text>' '>communication</text>' '>bubble</text>' '>parameters</text>' \
        '>optimizer states</text>' '>activations in flight</text>' 'font-family="sans-serif"'; do
        grep -q -- "$label" "$f" || fail "$(basename "$f"): no '$label'"
    done
    grep -q -i '<script\|href=\|@import\|url(http' "$f" && fail "$(basename "$f"): not standalone"
    expect "$f" '<rect class="layer ' 7
done

# DP 2: one stage; a forward and a backward per micro-batch, then the gradient all-reduce
m=$(sed -n 's/.*pp 1, \([0-9]*\) micro-batches.*/\1/p' "$out/dp2.svg")
[ -n "$m" ] || fail "dp2: no micro-batch count in the title"
expect "$out/dp2.svg" '<g class="stage" ' 1
expect "$out/dp2.svg" '<g class="stage-memory" ' 1
expect "$out/dp2.svg" '^<rect class="fwd"' "$m"
expect "$out/dp2.svg" '^<rect class="bwd"' "$m"
expect "$out/dp2.svg" '(DP all-reduce)' 1
expect "$out/dp2.svg" 'data-strategy="A"' 7

# PP 2, 1F1B, m = 4: stage 0 warms up with one forward; stage 1 alternates
f=$out/pp2.svg
expect "$f" '<g class="stage" ' 2
expect "$f" '<g class="stage-memory" ' 2
expect "$f" '^<rect class="fwd"' 8
expect "$f" '^<rect class="bwd"' 8
expect "$f" '(p2p activation)' 4
expect "$f" '(p2p gradient)' 4
[ "$(passes "$f" 0)" = "F0 F1 B0 F2 B1 F3 B2 B3 " ] || fail "pp2: stage 0 runs $(passes "$f" 0)"
[ "$(passes "$f" 1)" = "F0 B0 F1 B1 F2 B2 F3 B3 " ] || fail "pp2: stage 1 runs $(passes "$f" 1)"
[ "$(count "$f" '^<rect class="bubble"')" -ge 2 ] || fail "pp2: no bubble in the rows"
grep -q 'pp 2, 4 micro-batches, 1F1B' "$f" || fail "pp2: no title"
grep -q '>F3</text>' "$f" && grep -q '>B3</text>' "$f" || fail "pp2: passes not labelled"
grep -q '>stage 1</text>' "$f" || fail "pp2: no stage 1 label"

# the searched plan: two strategies, each labelled in the key
f=$out/mixed.svg
"$galvc" "$model" -D ranks=8 -D rank_memory="10 MiB" --emit=plan > "$out/mixed.plan" || fail "mixed: no plan"
strategies=$(sed -n 's/^ *[0-9]*  [^ ]* *\(pp=.*\)/\1/p' "$out/mixed.plan" | sort -u | wc -l)
[ "$strategies" -ge 2 ] || fail "mixed: the plan no longer mixes strategies"
expect "$f" '<rect class="s[0-9]* key"' 0
[ "$(count "$f" '^<rect class="s[0-9]*" x=')" = "$strategies" ] || fail "mixed: not one key entry per strategy"
# ZeRO-3's gathers and reduce-scatters, drawn (gpt-tiny's searched plans prefer ZeRO-2 now)
"$galvc" "$model" -D ranks=4 --uniform tp=1,pp=1,dp=4,sdp --emit=svg > "$out/sdp4.svg" || fail "sdp4: no picture"
grep -q "(ZeRO-3\|, ZeRO-3" "$out/sdp4.svg" || fail "sdp4: no ZeRO-3 traffic"
grep -q ">A</text>" "$f" && grep -q ">B</text>" "$f" || fail "mixed: strategies not lettered"
expect "$f" 'data-budget-line\|class="budget"' 1

# --plot: the same picture in the file, stdout as without it
"$galvc" "$model" -D ranks=2 --uniform tp=1,pp=2,dp=1,schedule=1f1b,m=4 --emit=plan > "$out/plain" || fail "no plan"
"$galvc" "$model" -D ranks=2 --uniform tp=1,pp=2,dp=1,schedule=1f1b,m=4 --emit=plan --plot "$out/plot.svg" \
    > "$out/with-plot" || fail "--plot failed"
sed 's/search took [0-9.]* ms//' "$out/plain" > "$out/a"
sed 's/search took [0-9.]* ms//' "$out/with-plot" > "$out/b"
cmp -s "$out/a" "$out/b" || fail "--plot changed stdout"
cmp -s "$out/plot.svg" "$out/pp2.svg" || fail "--plot wrote another picture than --emit=svg"
# never over an input, by whatever name
cp "$model" "$out/model.gv"
cp -r "$src/examples/clusters" "$out/clusters"
ln -s model.gv "$out/link.gv"
cp "$out/model.gv" "$out/model.orig"
"$galvc" "$out/model.gv" -D ranks=2 --emit=plan --plot "$out/link.gv" > /dev/null 2> "$out/err"
[ $? = 2 ] || fail "--plot over the model file (by a link) was not refused"
grep -q "is an input of this compilation" "$out/err" || fail "--plot: no reason given"
"$galvc" "$out/model.gv" -D ranks=2 --emit=plan --plot "$out/clusters/cpu-box.gv" > /dev/null 2>&1
[ $? = 2 ] || fail "--plot over an included file was not refused"
cmp -s "$out/model.gv" "$out/model.orig" || fail "--plot wrote over the model file"
echo "svg.sh: 3 pictures and --plot as expected"
