#!/bin/sh
# emit_kernels.sh GALVC WORKDIR — `--emit=llvm`, `--emit=asm` and
# `--emit=ptx` for every example (run from the source tree): each prints one
# function per kernel the plan runs, named galvc_<kind>_c<cols>..., and the
# three agree on how many. GPT-3 is planned on 1,024 devices, where it fits.
set -u
galvc=$1
work=$2
mkdir -p "$work"
status=0
count() { grep -c "$1" "$2"; }
for ex in examples/*.gv; do
    name=$(basename "$ex" .gv)
    args=
    [ "$name" = gpt3-175b ] && args="--devices 1024"
    # shellcheck disable=SC2086
    if ! "$galvc" "$ex" $args --emit=llvm > "$work/ir.ll" 2> "$work/err.txt"; then
        echo "FAIL: $name --emit=llvm: $(head -c 200 "$work/err.txt")"
        status=1
        continue
    fi
    # shellcheck disable=SC2086
    "$galvc" "$ex" $args --emit=asm > "$work/host.s" && "$galvc" "$ex" $args --emit=ptx > "$work/dev.ptx" || {
        echo "FAIL: $name --emit=asm or --emit=ptx"
        status=1
        continue
    }
    ir=$(count '^define .*@galvc_' "$work/ir.ll")
    asm=$(grep '^galvc_[a-z_0-9]*:' "$work/host.s" | grep -vc '^galvc_kernel') # the table's two symbols aside
    ptx=$(count '^\.visible \.entry galvc_' "$work/dev.ptx")
    if [ "$ir" -lt 5 ] || [ "$ir" != "$asm" ] || [ "$ir" != "$ptx" ]; then
        echo "FAIL: $name: $ir kernels in the IR, $asm in the assembly, $ptx in the PTX"
        status=1
    else
        echo "ok: $name: $ir kernels in IR, host assembly and PTX"
    fi
done
exit $status
