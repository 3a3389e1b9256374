#!/bin/sh
# render_report.sh GALVC WORKDIR — galvc report's picture as a browser draws
# it: two real runs (DP 2 and PP 2, tests/data/report/) drawn by headless
# Chromium (render.sh), then probed (probe_png.py): each of the four panels
# (loss, step time, tokens/s, memory) holds ink inside its plot area, where
# report/svg.c puts panel k: y from 56 + 250 k + 36 to 56 + 250 k + 200, x
# from 90 to 930; the gaps between panels and the page below the legend are
# blank. Exit 77 (skip) only
# when Chromium is not installed.
set -u
galvc=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
mkdir -p "$work"
svg=$work/report.svg png=$work/report.png
fail() { echo "render_report.sh: $*" >&2; exit 1; }
"$galvc" report "$src/tests/data/report/dp2.jsonl" "$src/tests/data/report/pp2.jsonl" > "$svg" || fail "galvc report failed"
size=$(sed -n 's/^<svg [^>]*width="\([0-9]*\)" height="\([0-9]*\)".*/\1 \2/p' "$svg")
[ -n "$size" ] || fail "no width and height on the <svg> element"
set -- $size
width=$1 height=$2
sh "$here/render.sh" "$svg" "$png" "$width" "$height"
status=$?
[ $status = 0 ] || exit $status
probes=
for k in 0 1 2 3; do
    band=$((56 + 250 * k))
    probes="$probes --ink $((band + 38)):$((band + 198))"
    # between a panel's tick labels and the next panel's title: nothing
    [ $k -lt 3 ] && probes="$probes --blank $((band + 238)):$((band + 258))"
done
# lines are thin: a panel's plot area is at least 1% ink
# shellcheck disable=SC2086 # the probes are words
python3 "$here/probe_png.py" "$png" --x 92:928 --min 0.01 $probes --blank $((height - 6)):$((height - 2)) ||
    fail "the panels are not where the report puts them"
echo "render_report.sh: four panels drawn where report/svg.c puts them"
