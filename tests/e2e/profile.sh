#!/bin/sh
# profile.sh GALVC usage | profile.sh GALVC run WORKDIR | profile.sh GALVC cuda WORKDIR — `galvc profile`.
#   usage: bad options exit 2 with a message, before anything is launched.
#   cuda:  --target cuda without a GPU stops with exit 1 and says why; with
#          one, a quick profile of gpt-tiny is written and galvc plans with it.
#   run:   a quick profile on 2 ranks is written, has sane figures (every
#          number galvc reads is range-checked by galvc itself; here the
#          magnitudes are checked too), and galvc plans with it.
set -eu
galvc=$1 mode=$2
src=$(cd "$(dirname "$0")/../.." && pwd)

# expect_usage MESSAGE ARGS...: galvc profile ARGS exits 2 and says MESSAGE
expect_usage() {
    want=$1
    shift
    set +e
    out=$("$galvc" profile "$@" 2>&1)
    rc=$?
    set -e
    if [ "$rc" != 2 ]; then
        echo "galvc profile $*: exit $rc, expected 2" >&2
        exit 1
    fi
    case $out in
    *"$want"*) ;;
    *) echo "galvc profile $*: expected '$want' in: $out" >&2; exit 1 ;;
    esac
}

if [ "$mode" = usage ]; then
    expect_usage "unknown option '--bogus'" --bogus -o p.json
    expect_usage "no output file" -np 2
    expect_usage "-np needs a power of two" -np 3 -o p.json
    expect_usage "-np needs a power of two" -np two -o p.json
    expect_usage "-np needs a power of two" --target cuda -np 3 -o p.json
    expect_usage "unknown target 'tpu'" --target tpu -o p.json
    expect_usage "--prepare builds MODEL.gv's kernels" --target cuda --prepare . -o p.json
    expect_usage "unexpected argument 'extra'" -o p.json extra
    "$galvc" profile --help | grep -q "usage: galvc profile"
    echo "usage checks passed"
    exit 0
fi

work=$3
mkdir -p "$work"
cd "$work"
if [ "$mode" = cuda ]; then
    rm -rf c.json prep && mkdir prep
    # --prepare: the kernels' library (its stubs left to the profiler) and the command, nothing run
    cmd=$("$galvc" profile "$src/examples/gpt-tiny.gv" --target cuda --prepare prep -o c.json)
    case $cmd in *"galvc-profiler-cuda --shape "*" --kernels prep/kernels.so -o c.json") ;;
    *) echo "--prepare printed: $cmd" >&2; exit 1 ;; esac
    nm -D prep/kernels.so | grep -q ' U grt_cuda_launch' || { echo "prep/kernels.so has no launch stubs" >&2; exit 1; }
    [ ! -e c.json ] || { echo "--prepare measured" >&2; exit 1; }
    set +e
    "$galvc" profile "$src/examples/gpt-tiny.gv" --target cuda --quick -o c.json >out.txt 2>&1
    rc=$?
    set -e
    if grep -q "finds no CUDA device" out.txt; then # no GPU here: a clear refusal, not a profile
        [ "$rc" = 1 ] && [ ! -s c.json ] || { echo "no GPU: exit $rc, expected 1 and no profile" >&2; cat out.txt; exit 1; }
        grep -q "^galvc profile: error: --target cuda: rank 0 finds no CUDA device (cudaGetDeviceCount: " out.txt ||
            { echo "no GPU: no located refusal:" >&2; cat out.txt; exit 1; }
        echo "no GPU: refused as expected: $(grep -m1 'finds no CUDA device' out.txt)"
        exit 0
    fi
    [ "$rc" = 0 ] || { echo "galvc profile --target cuda: exit $rc" >&2; cat out.txt; exit 1; }
    grep -q '"gemm_rates"' c.json || { echo "no gemm_rates in the GPU profile" >&2; exit 1; }
    dev=$(sed -n 's/.*"device": "\([a-z0-9_]*\)".*/\1/p' c.json)
    printf 'cluster gpu { nodes = 1; devices_per_node = 1; device = %s; memory = 16 GiB }\n' "$dev" >gpu.gv
    "$galvc" "$src/examples/gpt-tiny.gv" --cluster gpu.gv --profile c.json --emit=plan
    exit 0
fi
rm -f p.json
"$galvc" profile --quick -np 2 -o p.json 2>progress.txt || { cat progress.txt; exit 1; }
grep -q '^\[16/16\] overlap' progress.txt || { echo "no progress lines:" >&2; cat progress.txt; exit 1; }
# sane magnitudes: peak 0.1 GFLOP/s .. 100 TFLOP/s, memory 0.1 GB/s .. 10 TB/s,
# 8 layer fits (4 kinds x tp 1, 2) and 4 collectives (3 ops + p2p)
awk '
    /"fp32"/ { v = $0; sub(/.*"fp32": */, "", v); sub(/,.*/, "", v); if (v + 0 < 1e8 || v + 0 > 1e14) bad = bad " peak=" v }
    /"mem_bandwidth"/ { v = $2; sub(/,/, "", v); if (v + 0 < 1e8 || v + 0 > 1e13) bad = bad " mem=" v }
    /"overlap_slowdown"/ { v = $2; sub(/,/, "", v); if (v + 0 < 1) bad = bad " overlap=" v }
    /"sync_overhead"/ { v = $2; sub(/,/, "", v); sync = 1; if (v + 0 < 0 || v + 0 > 0.1) bad = bad " sync=" v }
    /"kind":/ { layers++ }
    /"op":/ { colls++ }
    END {
        if (layers != 8) bad = bad " layers=" layers
        if (colls != 4) bad = bad " collectives=" colls
        if (!sync) bad = bad " no sync_overhead"
        if (bad) { print "insane profile:" bad; exit 1 }
    }' p.json
"$galvc" "$src/examples/gpt-tiny.gv" -D ranks=2 --profile p.json --emit=plan
