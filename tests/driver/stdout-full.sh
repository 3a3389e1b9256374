#!/bin/sh
# stdout-full.sh GALVC — output that cannot be written (stdout on /dev/full)
# is an error: a message on stderr and a non-zero exit, for every kind of
# output galvc prints. Skipped (77) where there is no /dev/full.
set -u
galvc=$1
model=$(cd "$(dirname "$0")/../.." && pwd)/examples/gpt-tiny.gv
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -w /dev/full ] || { echo "skipped: no /dev/full"; exit 77; }
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for args in "--emit=ir" "--emit=ir-json" "--emit=plan" "--emit=strategies" "-M" "--help" "--version"; do
    # shellcheck disable=SC2086 # each case is several words
    "$galvc" "$model" $args >/dev/full 2>"$err"
    rc=$?
    [ $rc -ne 0 ] || fail "$args: exit 0 on a full stdout"
    [ $rc -lt 128 ] || fail "$args: killed by a signal ($rc)"
    grep -q "galvc: error: .*output.*No space left on device" "$err" || fail "$args: no message: $(cat "$err")"
done
echo ok
