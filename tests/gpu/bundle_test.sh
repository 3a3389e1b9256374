#!/bin/bash
# bundle_test.sh BUILD WORKDIR — the GPU check tried without a GPU: bundle.sh
# builds the bundle from BUILD into WORKDIR/gpu-bundle, then check.sh runs
# against it with this machine's own Open MPI, PMIx, OpenBLAS, jansson and
# their libraries hidden (a private mount namespace: empty folders and
# /dev/null mounted over them), so only the bundle's can be used. It must
# print what it found, pass its mpirun rows (2 ranks started, 1 CPU rank
# trained), say "no GPU" and exit 77. Skipped (77) without the CUDA target.
set -u
build=$1 work=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -x "$build/tests/gpu_kernels" ]; then
    echo "skipped: no CUDA target in $build (CMake found no CUDA toolkit)"
    exit 77
fi
rm -rf "$work" && mkdir -p "$work"
bash "$src/tests/gpu/bundle.sh" --build "$build" --no-build "$work/gpu-bundle" || { echo "FAIL: bundle.sh"; exit 1; }

# What to hide: the folders and each library the bundle carries, where this machine has them.
hide=$work/hide.sh
{
    echo 'set -e'
    # the files first: the folders' mounts below cover some of them
    {
        for f in /usr/bin/mpirun /usr/bin/mpiexec /usr/bin/orterun /usr/bin/orted; do
            [ -e "$f" ] && echo "mount --bind /dev/null '$(readlink -f "$f")'"
        done
        for lib in "$work"/gpu-bundle/lib/*; do
            for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu; do
                real=$(readlink -f "$d/$(basename "$lib" .gz)" 2>/dev/null)
                [ -f "$real" ] && echo "mount --bind /dev/null '$real'"
            done
        done
    } | sort -u
    for d in /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 /usr/share/openmpi /etc/openmpi \
        /usr/lib/x86_64-linux-gnu/openblas-pthread; do
        [ -d "$d" ] && echo "mount -t tmpfs none '$d'"
    done
    echo 'exec "$@"'
} >"$hide"
check=(env GPU_CHECK_BUDGET=120 OUT= bash "$src/tests/gpu/check.sh" --bundle "$work/gpu-bundle")
if unshare -m --propagation private true 2>/dev/null; then
    echo "check.sh with this machine's Open MPI, PMIx, OpenBLAS and jansson hidden:"
    unshare -m --propagation private sh "$hide" "${check[@]}" >"$work/check.txt" 2>&1
    rc=$?
    # hidden indeed: the system's mpirun cannot start
    unshare -m --propagation private sh "$hide" sh -c '/usr/bin/mpirun --version' >/dev/null 2>&1 &&
        { echo "FAIL: the system's mpirun still runs with it hidden"; exit 1; }
else
    echo "note: no private mount namespace here (unshare -m): check.sh runs with this machine's libraries visible"
    "${check[@]}" >"$work/check.txt" 2>&1
    rc=$?
fi
cat "$work/check.txt"
status=0
[ "$rc" = 77 ] || { echo "FAIL: check.sh exited $rc, not 77"; status=1; }
grep -q '^no GPU' "$work/check.txt" || { echo "FAIL: no 'no GPU' line"; status=1; }
for r in 'mpirun starts (2 ranks) *PASS' 'mpirun runs 1 CPU rank *PASS' '(a) kernels *SKIP'; do
    grep -q "^$r" "$work/check.txt" || { echo "FAIL: no row '$r'"; status=1; }
done
grep -q '^glibc: ' "$work/check.txt" || { echo "FAIL: check.sh did not say which glibc"; status=1; }
[ "$status" = 0 ] && echo "ok: the bundle ($(du -sh "$work/gpu-bundle" | cut -f1)) starts its own mpirun and stops at 'no GPU' with 77"
exit $status
