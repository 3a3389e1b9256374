#!/bin/sh
# render_plan.sh GALVC WORKDIR — the plan's picture as a browser draws it:
# galvc --emit=svg for gpt-tiny on 4 stages (1F1B, 8 micro-batches), drawn
# by headless Chromium (render.sh), then probed (probe_png.py): the page is
# not blank, each stage's row holds ink where the SVG says the row is
# (data-y, data-height), and the gaps between rows hold none. Exit 77 (skip)
# only when Chromium is not installed.
set -u
galvc=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
mkdir -p "$work"
svg=$work/pp4-1f1b.svg png=$work/pp4-1f1b.png
fail() { echo "render_plan.sh: $*" >&2; exit 1; }
"$galvc" "$src/examples/gpt-tiny.gv" -D ranks=4 --uniform tp=1,pp=4,dp=1,schedule=1f1b,m=8 --emit=svg > "$svg" ||
    fail "galvc failed"
size=$(sed -n 's/^<svg [^>]*width="\([0-9]*\)" height="\([0-9]*\)".*/\1 \2/p' "$svg")
[ -n "$size" ] || fail "no width and height on the <svg> element"
set -- $size
width=$1 height=$2
sh "$here/render.sh" "$svg" "$png" "$width" "$height"
status=$?
[ $status = 0 ] || exit $status
# the stages' bands from the SVG, inside the plot's columns (right of the labels)
bands=$(sed -n 's/^<g class="stage" data-stage="[0-9]*" data-y="\([0-9.]*\)" data-height="\([0-9.]*\)".*/\1 \2/p' "$svg" |
    awk '{ y = int($1 + 0.999); h = int($2); printf "--ink %d:%d --blank %d:%d ", y + 1, y + h - 1, y + h + 2, y + h + 4 }')
[ "$(echo "$bands" | grep -o -- '--ink' | wc -l)" = 4 ] || fail "not 4 stage rows in the SVG"
# shellcheck disable=SC2086 # the bands are words
python3 "$here/probe_png.py" "$png" --x 84:$((width - 24)) $bands || fail "the rows are not where the SVG puts them"
