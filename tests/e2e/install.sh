#!/bin/sh
# install.sh BUILD MPIEXEC — galvc installed like a compiler: `cmake --install`
# into a fresh prefix outside the source tree, then the installed galvc, from
# a folder of its own, builds the tiny GPT against the installed runtime, the
# program trains 3 steps on 2 ranks, the installed profiler measures, a
# program of our own links through galvrt.pc, and galvc(1) renders.
# `galvc --version` names the runtime it uses: it must be the prefix's, so an
# installed galvc that fell back to the build tree fails here; the prefix
# copied elsewhere must then use the copy.
set -eu
build=$1 mpiexec=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/galvc-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

fail() {
    echo "install: $*" >&2
    exit 1
}

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/galvc libexec/galvc/galvc-profiler lib/libgalvrt.a lib/pkgconfig/galvrt.pc \
         include/galvrt/galvrt.h include/galvrt/galvrt_sizes.h include/galvrt/galvrt_log.h \
         share/galvc/examples/gpt-tiny.gv share/galvc/examples/clusters/cpu-box.gv share/man/man1/galvc.1; do
    [ -f "$prefix/$f" ] || fail "missing $f"
done

# expect_runtime PREFIX: PREFIX/bin/galvc --version names PREFIX's runtime, headers and profiler
expect_runtime() {
    version=$("$1/bin/galvc" --version) || fail "$1/bin/galvc --version failed"
    for want in "runtime: $1/lib/libgalvrt.a (installed under $1)" "headers: $1/include/galvrt" \
                "profiler: $1/libexec/galvc/galvc-profiler" "LLVM: 16."; do
        case $version in
        *"$want"*) ;;
        *) fail "expected '$want' in galvc --version:
$version" ;;
        esac
    done
}
expect_runtime "$prefix"
cp -a "$prefix" "$work/moved"
expect_runtime "$work/moved"

mkdir "$work/run"
cd "$work/run"
"$prefix/bin/galvc" "$prefix/share/galvc/examples/gpt-tiny.gv" -D ranks=2 -o train
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 ./train --steps 3 >train.out ||
    fail "./train --steps 3 failed: $(cat train.out)"
grep -q '^step    3  loss' train.out || fail "no third step in: $(cat train.out)"
"$prefix/bin/galvc" profile --quick -np 2 -o profile.json >/dev/null 2>profile.err ||
    fail "galvc profile failed: $(cat profile.err)"
[ -s profile.json ] || fail "galvc profile wrote no profile"
# where galvc was built with the CUDA toolkit, the installed one builds for it too
if "$prefix/bin/galvc" --version | grep -q -- '--target cuda links'; then
    "$prefix/bin/galvc" "$prefix/share/galvc/examples/gpt-tiny.gv" --devices 1 --target cuda -o train-gpu ||
        fail "the installed galvc could not build for --target cuda"
    [ -x train-gpu ] || fail "no CUDA program"
fi

# a program of our own, compiled and linked with galvrt.pc's flags only
cat >own.c <<'EOF'
#include <galvrt.h>
int main(void) {
    float out[2], inp[2] = {1, 2}, w[4] = {1, 0, 0, 1};
    grt_matmul_forward(out, inp, w, NULL, 1, 2, 2); /* (1,2) @ I */
    return out[0] == 1 && out[1] == 2 ? 0 : 1;
}
EOF
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046 # the flags are words
cc $(pkg-config --cflags galvrt) own.c $(pkg-config --libs galvrt) -o own || fail "cannot link through galvrt.pc"
./own || fail "the program linked through galvrt.pc computed a wrong product"

# the manual page renders without warnings, and describes every option and
# --emit kind of galvc --help and galvc profile --help (read unbroken: wide, ASCII)
page=$prefix/share/man/man1/galvc.1
if command -v man >/dev/null; then
    MANWIDTH=80 man --warnings -l "$page" >man.txt 2>man.err
    LC_ALL=C MANWIDTH=1000 man -l "$page" >wide.txt
else
    groff -mandoc -Tutf8 -ww "$page" >man.txt 2>man.err
    groff -mandoc -Tascii -rLL=1000n "$page" >wide.txt
fi
[ ! -s man.err ] || fail "galvc(1) renders with warnings: $(cat man.err)"
grep -q 'compiler for distributed Transformer training' man.txt || fail "galvc(1) did not render"
usage=$("$prefix/bin/galvc" --help; "$prefix/bin/galvc" profile --help)
options=$(printf '%s\n' "$usage" | grep -oE -- '(^|[[:space:](])--?[A-Za-z][A-Za-z-]*(=[a-z-]+)?' | tr -d ' (' | sort -u)
for o in $options --steps --seed --data --lr --log --dump --ckpt-dir --ckpt-every --ckpt-keep --resume \
         --export-safetensors --init-safetensors --comm-timeout 'EXIT STATUS'; do
    grep -q -- "$o" wide.txt || fail "galvc(1) does not describe $o"
done
echo "installed galvc: built, trained, profiled, linked through galvrt.pc, manual page rendered"
