#!/bin/sh
# keep-exdev.sh GALVC WORK — --keep with TMPDIR on another file system than
# the output: the source must still be kept as FILE.c (copied, since rename
# cannot cross file systems) and no temporary file left behind; a source
# that cannot be kept is an error. Skipped (77) without a second file
# system (/dev/shm) or a galvc that can build programs.
set -u
galvc=$1
work=$2
model=$(cd "$(dirname "$0")/../.." && pwd)/examples/gpt-tiny.gv
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
tmp=/dev/shm/galvc-keep-test.$$
mkdir -p "$tmp" 2>/dev/null || { echo "skipped: no /dev/shm"; exit 77; }
trap 'rm -rf "$tmp"' EXIT
[ "$(stat -c %d "$tmp")" != "$(stat -c %d "$work")" ] || { echo "skipped: /dev/shm is on the work folder's file system"; exit 77; }

TMPDIR=$tmp "$galvc" "$model" -o "$work/train" --keep >"$work/out.txt" 2>&1
rc=$?
grep -q "built without the runtime" "$work/out.txt" && { echo "skipped: galvc cannot build programs"; exit 77; }
[ $rc -eq 0 ] || fail "exit $rc: $(cat "$work/out.txt")"
[ -x "$work/train" ] || fail "no program"
grep -q 'int main' "$work/train.c" 2>/dev/null || fail "the source was not kept: $(cat "$work/out.txt")"
[ -z "$(ls -A "$tmp")" ] || fail "left behind in TMPDIR: $(ls -A "$tmp")"

# a FILE.c that cannot be written: an error, and still nothing left behind
mkdir "$work/train2.c"
TMPDIR=$tmp "$galvc" "$model" -o "$work/train2" --keep >"$work/out2.txt" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "an unkeepable source: exit $rc: $(cat "$work/out2.txt")"
grep -q "galvc: error: cannot keep" "$work/out2.txt" || fail "no message: $(cat "$work/out2.txt")"
[ -z "$(ls -A "$tmp")" ] || fail "left behind in TMPDIR: $(ls -A "$tmp")"
echo ok
