#!/bin/sh
# output-is-input.sh GALVC WORK — an output (-o, -o's FILE.c with --keep,
# -MF, -MD's FILE.d) that is one of the inputs (the model, an included file,
# the --cluster file), by name or by another path to the same file (./, a
# hard link, a symbolic link), is refused with exit status 2 and the input
# is left as it was.
set -u
galvc=$1
work=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work/sub"
cd "$work" || exit 1
printf 'cluster c { devices_per_node = 2; device = cpu; memory = 1 GiB }\n' >sub/cluster.gv
printf 'include "sub/cluster.gv"\nmodel m { embedding(256, 64); layernorm(64); lm_head(tied) }\ntrain { global_batch = 8; seq = 16 }\n' >model.gv
cp model.gv model.orig
cp sub/cluster.gv cluster.orig
ln model.gv hard.gv
ln -s model.gv soft.gv

# refused ARGS...: galvc model.gv ARGS exits 2, says so, and changes no input
refused() {
    "$galvc" model.gv "$@" >out.txt 2>err.txt
    rc=$?
    [ $rc -eq 2 ] || fail "$*: exit $rc: $(cat err.txt)"
    grep -q "is also an input" err.txt || fail "$*: $(cat err.txt)"
    cmp -s model.gv model.orig || fail "$*: the model was overwritten"
    cmp -s sub/cluster.gv cluster.orig || fail "$*: the included file was overwritten"
}
refused -M -MF model.gv
refused -MD -MF ./model.gv
refused -MD -MF hard.gv
refused -MD -MF soft.gv
refused -MD -MF sub/cluster.gv
refused -MD -MF sub/../model.gv --cluster sub/cluster.gv
refused -o model.gv
refused -o sub/cluster.gv
refused -o model --keep -MD -MF model.gv
refused -o hard.gv --emit=plan
# -MD's default name: FILE.d for -o FILE
echo 'x = 1' >out.d
printf 'include "out.d"\n' >>model.gv
cp model.gv model.orig
refused -o out -MD
# an output that is not an input is fine
"$galvc" model.gv -M -MF deps.d >/dev/null 2>err.txt || fail "-MF deps.d: $(cat err.txt)"
echo ok
