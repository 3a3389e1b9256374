#!/bin/sh
# render.sh FILE.svg OUT.png WIDTH HEIGHT — draw an SVG (or any page) the way
# a browser does: headless Chromium's screenshot of FILE at WIDTH x HEIGHT
# CSS pixels, one device pixel each, no scrollbars, into OUT.png. Probe the
# result with probe_png.py. Exit 77 (skip) when no Chromium is installed
# (Debian: chromium), 1 when it is and fails.
set -u
[ $# = 4 ] || { echo "usage: render.sh FILE.svg OUT.png WIDTH HEIGHT" >&2; exit 2; }
file=$1 png=$2 width=$3 height=$4
browser=""
for b in ${CHROMIUM:-} chromium chromium-browser google-chrome; do
    command -v "$b" > /dev/null 2>&1 && { browser=$b; break; }
done
[ -n "$browser" ] || { echo "render.sh: no chromium installed: skipped"; exit 77; }
case $file in /*) ;; *) file=$(pwd)/$file ;; esac
case $png in /*) ;; *) png=$(pwd)/$png ;; esac
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$png"
# --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --user-data-dir="$profile" --no-first-run --window-size="$width,$height" --screenshot="$png" \
    "file://$file" > "$profile/log" 2>&1
status=$?
if [ $status != 0 ] || [ ! -s "$png" ]; then
    echo "render.sh: $browser failed (exit status $status):" >&2
    cat "$profile/log" >&2
    exit 1
fi
echo "render.sh: $png, $width x $height"
