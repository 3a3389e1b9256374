#!/bin/sh
# io.sh GALVC MPIEXEC WORKDIR CASE — the program's command line and files,
# one case per ctest, every refusal on 2 ranks: mpirun non-zero, the reason on
# stderr, before the first step, within the timeout (never a hang):
#   options   out-of-range numbers (--steps 10^20, --seed -1), a learning rate
#             that is NaN, infinite, zero or negative, --ckpt-every and
#             --ckpt-keep outside their ranges
#   same      an output (--log, --dump, --export-safetensors) that is an input
#             (--data, --init-safetensors) under its name, a hard link or a
#             symbolic link, or another output: refused, the input intact
#   fifo      a FIFO as --data or --init-safetensors: refused, not waited on
#   outputs   --dump and --export-safetensors that cannot be written are found
#             at start-up, leaving no file behind and an existing one as it
#             was; --log says why it cannot be written
#   nonfinite an --init-safetensors file holding NaN or infinity: refused,
#             naming the tensor
set -eu
galvc=$1 mpiexec=$2 work=$3 case=$4
src=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$work"
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
cp "$src/README.md" data.txt # the runs may damage their data: never the source tree's
cp data.txt data.orig

fail() { echo "io.sh ($case): $*" >&2; exit 1; }

"$galvc" "$src/examples/gpt-tiny.gv" -D ranks=2 --uniform tp=1,pp=1,dp=2 -o train

# run ARGS...: the 2-rank program on data.txt, ended after 60 s (a hang fails)
run() { timeout 60 "$mpiexec" --allow-run-as-root --oversubscribe -np 2 ./train --seed 7 --data data.txt "$@"; }

# expect_fail WHAT PATTERN ARGS...: the run must exit non-zero before its first
# step and say PATTERN on stderr
expect_fail() {
    what=$1 pattern=$2
    shift 2
    if run "$@" > out.txt 2> err.txt; then fail "$what: exited 0"; fi
    grep -q -- "$pattern" err.txt || { cat err.txt >&2; fail "$what: no message matching '$pattern'"; }
    if grep -q '^step ' out.txt; then fail "$what: refused only after training"; fi
    echo "ok: $what -> $(grep -m1 -- "$pattern" err.txt)"
}

# intact: data.txt is still what it was
intact() { cmp -s data.txt data.orig || fail "$1: the data file was damaged"; }

case $case in
options)
    expect_fail "--steps 10^20" "bad value '99999999999999999999' for --steps" --steps 99999999999999999999
    expect_fail "--steps 2^31" "bad value '2147483648' for --steps" --steps 2147483648
    expect_fail "--steps -1" "bad value '-1' for --steps" --steps -1
    expect_fail "--seed -1" "bad value '-1' for --seed" --seed -1
    expect_fail "--seed 2^64" "bad value '18446744073709551616' for --seed" --seed 18446744073709551616
    for lr in nan inf -inf -1 0 1e-50 1e40 0x; do
        expect_fail "--lr $lr" "bad value '$lr' for --lr" --lr "$lr"
    done
    expect_fail "--ckpt-every -1" "bad value '-1' for --ckpt-every" --ckpt-every -1 --ckpt-dir ck
    expect_fail "--ckpt-every 10^20" "bad value '99999999999999999999' for --ckpt-every" \
        --ckpt-every 99999999999999999999 --ckpt-dir ck
    expect_fail "--ckpt-keep 0" "bad value '0' for --ckpt-keep" --ckpt-keep 0
    expect_fail "--ckpt-keep 2^63" "bad value '9223372036854775808' for --ckpt-keep" --ckpt-keep 9223372036854775808
    run --steps 1 --seed 18446744073709551615 --lr 1e-3 --ckpt-every 1 --ckpt-keep 1 --ckpt-dir ck | grep -q '^step' ||
        fail "the largest seed and a plain learning rate were not taken"
    ;;
same)
    run --steps 1 --export-safetensors init.safetensors > /dev/null
    cp init.safetensors init.orig
    expect_fail "--log is --data" "--log names the file --data reads" --steps 1 --log data.txt
    intact "--log is --data"
    ln data.txt hard.txt
    expect_fail "--dump is a hard link to --data" "--dump names the file --data reads" --steps 1 --dump hard.txt
    intact "--dump is a hard link to --data"
    ln -s data.txt soft.txt
    expect_fail "--export-safetensors is a symbolic link to --data" \
        "--export-safetensors names the file --data reads" --steps 1 --export-safetensors soft.txt
    intact "--export-safetensors is a symbolic link to --data"
    expect_fail "--log is --init-safetensors" "--log names the file --init-safetensors reads" \
        --steps 1 --init-safetensors init.safetensors --log init.safetensors
    cmp -s init.safetensors init.orig || fail "--log is --init-safetensors: the file was damaged"
    expect_fail "--dump is --log" "--dump names the file --log writes" --steps 1 --log out.jsonl --dump ./out.jsonl
    # a different file of the same contents is not the same file
    cp data.txt copy.txt
    run --steps 1 --log copy.txt > /dev/null || fail "a copy of the data refused as the data"
    ;;
fifo)
    mkfifo pipe
    expect_fail "--data FIFO" "pipe: not a regular file" --steps 1 --data pipe
    expect_fail "--init-safetensors FIFO" "pipe: not a regular file" --steps 1 --init-safetensors pipe
    ;;
outputs)
    expect_fail "--export-safetensors in no folder" "--export-safetensors: cannot write nodir/m.safetensors" \
        --steps 1 --export-safetensors nodir/m.safetensors
    expect_fail "--dump in no folder" "--dump: cannot write nodir/m.dump: No such file or directory" \
        --steps 1 --dump nodir/m.dump
    mkdir adir
    expect_fail "--dump a folder" "--dump: cannot write adir: Is a directory" --steps 1 --dump adir
    expect_fail "--export-safetensors a folder" "--export-safetensors: cannot write adir: Is a directory" \
        --steps 1 --export-safetensors adir
    : > afile
    expect_fail "--dump under a file" "--dump: cannot write afile/m.dump: Not a directory" --steps 1 --dump afile/m.dump
    echo keep > old.dump
    before=$(ls -a | grep -v -e '^out.txt$' -e '^err.txt$')
    expect_fail "an existing --dump and a bad --export-safetensors" "--export-safetensors: cannot write nodir" \
        --steps 1 --dump old.dump --export-safetensors nodir/m.safetensors --log new.jsonl
    [ "$(cat old.dump)" = keep ] || fail "the existing --dump file was truncated before training"
    after=$(ls -a | grep -v -e '^out.txt$' -e '^err.txt$')
    [ "$before" = "$after" ] || fail "the start-up check left files behind: $after"
    expect_fail "--log in no folder" "--log: cannot write nodir/l.jsonl: No such file or directory" \
        --steps 1 --log nodir/l.jsonl
    expect_fail "--log a folder" "--log: cannot write adir: Is a directory" --steps 1 --log adir
    # a log that fills the disk: found when it is closed, after training, with the reason
    if [ -w /dev/full ]; then
        if run --steps 1 --log /dev/full > out.txt 2> err.txt; then fail "--log /dev/full: exited 0"; fi
        grep -q -- "--log: cannot write /dev/full: No space left on device" err.txt || fail "--log /dev/full: no reason"
        echo "ok: --log /dev/full -> $(grep -m1 -- --log err.txt)"
    fi
    # writable outputs still work, over existing files too
    run --steps 1 --dump old.dump --export-safetensors m.safetensors --log l.jsonl > /dev/null
    [ -s m.safetensors ] && [ -s l.jsonl ] && [ "$(cat old.dump)" != keep ] || fail "the outputs were not written"
    ;;
nonfinite)
    run --steps 1 --export-safetensors good.safetensors > /dev/null
    python3 - <<'EOF'
import json, struct
src = open('good.safetensors', 'rb').read()
n = struct.unpack('<Q', src[:8])[0]
h = json.loads(src[8:8 + n])
for name, value, path in (('ln_f.bias', float('nan'), 'nan.safetensors'), ('wpe.weight', float('-inf'), 'inf.safetensors')):
    b = h[name]['data_offsets'][0] + 8 + n + 4 * 5  # element 5
    open(path, 'wb').write(src[:b] + struct.pack('<f', value) + src[b + 4:])
EOF
    expect_fail "NaN in --init-safetensors" "tensor 'ln_f.bias' holds NaN at element 5" \
        --steps 1 --init-safetensors nan.safetensors
    expect_fail "-inf in --init-safetensors" "tensor 'wpe.weight' holds -inf at element 5" \
        --steps 1 --init-safetensors inf.safetensors
    ;;
*) fail "unknown case" ;;
esac
