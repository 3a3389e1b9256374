#!/bin/bash
# bundle.sh — build here everything the lent GPU machine needs for the GPU
# check (tests/gpu/check.sh), into one folder, under 64 MiB. That machine has
# the CUDA 13 toolkit, PyTorch and NCCL/cuBLAS as Python packages, and none
# of our Debian dependencies (Open MPI, OpenBLAS, jansson, LLVM), so:
#
#   bin/      the programs: gpt-tiny and llama-tiny for one GPU rank
#             (--target cuda) and for one CPU rank (the reference); their
#             2-rank CUDA variants (DP 2, TP 2, PP 2) where galvc builds them;
#             gpt-tiny in bf16 for one GPU rank (gpt-tiny-bf16.cuda);
#             kernels-cuda (every generated kernel kind on the GPU against the
#             CPU reference kernels: tests/gpu/kernels_cuda.c); compare
#             (tests/e2e/compare.c); GPT-2 124M for one GPU and the plans of
#             tests/gpu/plans.sh; galvc-profiler-cuda; and in gpt2-kernels/
#             (the model's kernels, galvc profile --prepare), with
#             profile-shape the layer shape it measures
#   lib/      every shared library those and Open MPI load, glibc and CUDA's
#             aside, copied from this machine (ldd): libmpi, OpenBLAS,
#             libgfortran, jansson, hwloc, libevent, PMIx, ...
#   ompi/     Open MPI's runtime, relocated with OPAL_PREFIX: mpirun, orted,
#             its components (shared memory and TCP; the network transports
#             UCX, OFI, verbs and PSM and OpenSHMEM left out) and help texts
#   pmix/     PMIx's plugins and help texts (PMIX_INSTALL_PREFIX)
#   cuda/     libcudart (0.7 MB), used only when the machine has none; cuBLAS
#             (hundreds of MB) and NCCL are the machine's own
#   glibc/    this machine's glibc (loader, libc, libm, ...), used only when
#             the machine's is older than the newest symbol version anything
#             here needs: check.sh then starts every program through it
#   data/     the repository's README.md, the training data
#   cuda-libs the CUDA libraries the programs need (sonames), for check.sh
#   MANIFEST  what was built, from which commit, the newest glibc symbol
#             version anything in the bundle needs, the size
#
#   bash tests/gpu/bundle.sh [--build DIR] [--no-build] [OUT]
# DIR: the CMake build folder (default build; configured and built here,
# Release, unless --no-build); OUT: the bundle (default gpu-bundle, ignored
# by git). It stops with "bundle.sh: error: ..." when anything is missing.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=$src/build out=$src/gpu-bundle do_build=1
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$(realpath -m "$2"); shift 2 ;;
    --no-build) do_build=0; shift ;;
    -*) echo "usage: bash tests/gpu/bundle.sh [--build DIR] [--no-build] [OUT]" >&2; exit 2 ;;
    *) out=$(realpath -m "$1"); shift ;;
    esac
done
LIMIT=$((64 << 20))
die() { echo "bundle.sh: error: $*" >&2; exit 1; }
say() { echo "bundle.sh: $*"; }

# ---- the build --------------------------------------------------------------------

for tool in ldd objdump readelf strip du cmake; do
    command -v "$tool" >/dev/null || die "$tool is missing on this machine"
done
if [ "$do_build" = 1 ]; then
    [ -f "$build/CMakeCache.txt" ] || cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null ||
        die "cmake could not configure $build"
    cmake --build "$build" -j2 --target galvc gpu_kernels e2e_compare galvc-profiler-cuda >/dev/null ||
        die "the build of galvc, gpu_kernels and e2e_compare failed (cmake --build $build; no target gpu_kernels means CMake found no CUDA toolkit)"
fi
[ -f "$build/CMakeCache.txt" ] || die "$build is not a CMake build folder"
grep -q '^GALVC_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" &&
    die "$build is a sanitizer build (GALVC_SANITIZE): its programs need the sanitizers' runtime; use a plain build"
galvc=$build/galvc kernels=$build/tests/gpu_kernels compare=$build/tests/e2e_compare
[ -x "$galvc" ] || die "no galvc in $build (build it: cmake --build $build)"
[ -x "$kernels" ] || die "no gpu_kernels in $build: CMake did not find the CUDA toolkit (cudart, cuBLAS, NCCL), so there is no CUDA target"
[ -x "$compare" ] || die "no e2e_compare in $build"
[ -x "$build/galvc-profiler-cuda" ] || die "no galvc-profiler-cuda in $build"
mpiexec=$(sed -n 's/^MPIEXEC_EXECUTABLE:FILEPATH=//p' "$build/CMakeCache.txt")
[ -x "$mpiexec" ] || die "the build's mpiexec ($mpiexec) is missing"

# Build into OUT.partial, then move it into place: a bundle that failed half-way is never taken for one.
tmp=$out.partial
rm -rf "$tmp" && mkdir -p "$tmp"/{bin,lib,ompi,pmix,cuda,glibc,data}
log=$tmp/galvc.log
: >"$log"

# ---- the programs -------------------------------------------------------------------

# program NAME MODEL ARGS...: examples/MODEL.gv built with ARGS into bin/NAME; 1 when galvc refuses
program() {
    local name=$1 model=$2
    shift 2
    if "$galvc" "$src/examples/$model.gv" "$@" -o "$tmp/bin/$name" >>"$log" 2>&1; then
        say "built bin/$name (galvc $model.gv $*)"
    else
        say "galvc refused bin/$name (galvc $model.gv $*): $(tail -n 1 "$log")"
        return 1
    fi
}
for model in gpt-tiny llama-tiny; do
    program "$model.cuda" "$model" --devices 1 --target cuda || die "galvc could not build $model for the CUDA target (see $log)"
    program "$model.cpu" "$model" --devices 1 --target cpu || die "galvc could not build $model for one CPU rank (see $log)"
    # 2 ranks sharing the GPU: built when galvc accepts them, else check.sh says "not built"
    program "$model-dp2.cuda" "$model" --devices 2 --uniform tp=1,pp=1,dp=2 --target cuda || true
    program "$model-tp2.cuda" "$model" --devices 2 --uniform tp=2,pp=1,dp=1 --target cuda || true
    program "$model-pp2.cuda" "$model" --devices 2 --uniform tp=1,pp=2,dp=1,schedule=1f1b,m=4 --target cuda || true
done
# gpt-tiny in bf16 mixed precision for 1 GPU rank (row (e): against gpt-tiny.cuda's fp32)
program gpt-tiny-bf16.cuda gpt-tiny --devices 1 -D precision=bf16 --target cuda ||
    die "galvc could not build gpt-tiny in bf16 for the CUDA target (see $log)"
# GPT-2 124M for one GPU (row (f), beside PyTorch) and the plans of row (h)
# (tests/gpu/plans.sh), and what `galvc profile --target cuda -np 2` runs for
# row (g): galvc-profiler-cuda and the model's kernels (--prepare), with the
# layer shape the profiler takes (the machine has no galvc to build them)
source "$src/tests/gpu/plans.sh"
for entry in "$SPEED_PLAN" "${PREDICT_PLANS[@]}"; do
    read -r name _ args <<<"$entry"
    # shellcheck disable=SC2086 # the entry's arguments are split as written
    program "$name.cuda" gpt2-small "${GPT2_ARGS[@]}" $args --target cuda ||
        die "galvc could not build $name (see $log)"
done
cp "$build/galvc-profiler-cuda" "$tmp/bin/galvc-profiler-cuda"
mkdir -p "$tmp/gpt2-kernels"
profile_cmd=$("$galvc" profile "$src/examples/gpt2-small.gv" "${GPT2_ARGS[@]:2}" --target cuda -np 2 \
    --prepare "$tmp/gpt2-kernels" -o cuda-profile.json 2>>"$log") ||
    die "galvc profile --prepare failed (see $log)"
sed -n 's/.* --shape \([0-9,]*\) .*/\1/p' <<<"$profile_cmd" >"$tmp/profile-shape"
[ -s "$tmp/profile-shape" ] && [ -f "$tmp/gpt2-kernels/kernels.so" ] ||
    die "galvc profile --prepare gave no shape or no kernels: $profile_cmd"
rm -f "$tmp/gpt2-kernels/kernels.c"
say "prepared galvc profile --target cuda -np 2: $profile_cmd"
cp "$kernels" "$tmp/bin/kernels-cuda"
cp "$compare" "$tmp/bin/compare"
strip --strip-debug "$tmp"/bin/* "$tmp"/gpt2-kernels/kernels.so

# What forces the NCCL collectives at 1 rank (row (d)): GALVRT_NCCL=1 gives
# every group an NCCL communicator, a group of one rank too; check.sh runs the
# 1-rank GPU programs with it in the environment.
echo "GALVRT_NCCL=1" >"$tmp/nccl-force"

# ---- Open MPI's runtime and PMIx --------------------------------------------------

prefix=$("$mpiexec" --version >/dev/null 2>&1 && command -v ompi_info >/dev/null && ompi_info --path prefix --parsable |
    sed -n 's/^path:prefix://p')
[ -n "$prefix" ] || die "Open MPI's ompi_info is missing or says no prefix"
pkglibdir=$(ompi_info --path pkglibdir --parsable | sed -n 's/^path:pkglibdir://p')
pkgdatadir=$(ompi_info --path pkgdatadir --parsable | sed -n 's/^path:pkgdatadir://p')
bindir=$(ompi_info --path bindir --parsable | sed -n 's/^path:bindir://p')
[ -d "$pkglibdir" ] && [ -d "$pkgdatadir" ] || die "Open MPI's components ($pkglibdir) or help texts ($pkgdatadir) are missing"
case $pkglibdir in "$prefix"/*) ;; *) die "Open MPI's components ($pkglibdir) are not under its prefix $prefix: OPAL_PREFIX cannot relocate them" ;; esac
ompi=$tmp/ompi
mkdir -p "$ompi/bin" "$ompi${pkglibdir#"$prefix"}" "$ompi${pkgdatadir#"$prefix"}"
for tool in mpirun mpiexec orterun orted ompi_info; do
    [ -e "$bindir/$tool" ] || die "Open MPI's $tool is missing from $bindir"
    cp -L "$bindir/$tool" "$ompi/bin/$tool"
done
# the components a single node needs: not the network transports (UCX, OFI, verbs, PSM), nor OpenSHMEM's
skip='ucx|ofi|psm|openib|verbs|portals|usnic|ugni|netlink|mca_(atomic|memheap|scoll|spml|sshmem)_'
n=0
for so in "$pkglibdir"/mca_*.so; do
    [[ $(basename "$so") =~ $skip ]] && continue
    cp -L "$so" "$ompi${pkglibdir#"$prefix"}/" && n=$((n + 1))
done
cp -rL "$pkgdatadir/." "$ompi${pkgdatadir#"$prefix"}/"
say "Open MPI $("$mpiexec" --version | head -n 1 | sed 's/.* //'): $n components from $pkglibdir"

# PMIx (Open MPI's external one): its plugins and help texts, relocated with PMIX_INSTALL_PREFIX
libpmix=$(ldd "$pkglibdir"/mca_pmix_*.so 2>/dev/null | awk '$1 ~ /^libpmix\.so/ { print $3; exit }')
if [ -n "$libpmix" ]; then
    pmix_prefix=$(dirname "$(dirname "$(readlink -f "$libpmix")")")
    [ -d "$pmix_prefix/lib/pmix" ] || die "PMIx's plugins ($pmix_prefix/lib/pmix) are missing"
    mkdir -p "$tmp/pmix/lib" "$tmp/pmix/share"
    cp -rL "$pmix_prefix/lib/pmix" "$tmp/pmix/lib/"
    [ -d "$pmix_prefix/share/pmix" ] && cp -rL "$pmix_prefix/share/pmix" "$tmp/pmix/share/"
    say "PMIx: $(ls "$tmp/pmix/lib/pmix" | wc -l) plugins from $pmix_prefix"
fi

# ---- the libraries ------------------------------------------------------------------

# Libraries the machine has itself: glibc's (copied to glibc/, a fallback), the
# compiler's libgcc_s, and CUDA's (the toolkit's or the pip packages')
system='^(ld-linux.*|linux-vdso.*|libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libgcc_s)\.so'
glibc_re='^(ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl)\.so'
cuda_re='^lib(cudart|cublas|cublasLt|nccl|cuda|nvrtc|nvJitLink)\.so'
: >"$tmp/cuda-libs"
# copy_deps FILE...: every library ldd finds for them into lib/, CUDA's named in cuda-libs
copy_deps() {
    local missing
    missing=$(ldd "$@" 2>/dev/null | awk '/not found/ { print $1 }' | sort -u | grep -Ev "$cuda_re" || true)
    [ -z "$missing" ] || die "libraries not found on this machine for $*: $missing"
    ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
        while read -r soname path; do
            if [[ $soname =~ $cuda_re ]]; then
                echo "$soname" >>"$tmp/cuda-libs"
            elif [[ $soname =~ $glibc_re ]] && [ ! -e "$tmp/glibc/$soname" ]; then
                cp -L "$path" "$tmp/glibc/$soname"
            elif ! [[ $soname =~ $system ]] && [ ! -e "$tmp/lib/$soname" ]; then
                cp -L "$path" "$tmp/lib/$soname"
            fi
        done
}
copy_deps "$tmp"/bin/*
copy_deps "$ompi/bin"/* "$ompi${pkglibdir#"$prefix"}"/*.so
[ -d "$tmp/pmix/lib/pmix" ] && copy_deps "$tmp"/pmix/lib/pmix/*.so
copy_deps "$tmp"/lib/*.so*
sort -u -o "$tmp/cuda-libs" "$tmp/cuda-libs"
loader=$(readelf -l "$tmp/bin/kernels-cuda" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
[ -e "$loader" ] || die "the programs' loader ($loader) is missing"
cp -L "$loader" "$tmp/glibc/$(basename "$loader")"
for lib in libopenblas.so.0 libjansson.so.4 libmpi.so.40; do
    [ -e "$tmp/lib/$lib" ] || die "$lib was not found among the programs' libraries"
done
cudart=$(ldd "$tmp/bin/kernels-cuda" | awk '$1 ~ /^libcudart\.so/ { print $1, $3 }')
[ -n "$cudart" ] || die "kernels-cuda does not link libcudart"
cp -L "${cudart#* }" "$tmp/cuda/${cudart%% *}"
chmod -R u+w "$tmp"
strip --strip-debug "$tmp"/lib/*.so* 2>/dev/null || true
# the largest libraries (OpenBLAS, 36 MB of all its kernels) gzipped, a third
# of their size, to keep the bundle and the tree under the carry limit:
# check.sh unpacks them before it runs anything
find "$tmp/lib" -maxdepth 1 -type f -size +8M -exec gzip -9 {} +

cp "$src/README.md" "$tmp/data/README.md"

# ---- the manifest ---------------------------------------------------------------------

glibc=$(find "$tmp" -path "$tmp/glibc" -prune -o -type f ! -name '*.gz' \( -name '*.so*' -o -perm -u+x \) -exec objdump -T {} + 2>/dev/null |
    grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -n 1)
size=$(du -sb "$tmp" | cut -f1)
# it travels with the working tree (its tracked files): both together under 64 MiB
tree=$(git -C "$src" ls-files -z 2>/dev/null | (cd "$src" && xargs -0 du -cb 2>/dev/null) | awk 'END { print $1 + 0 }')
{
    echo "galvc GPU bundle, built $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -n)"
    echo "commit: $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$src" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "galvc: $("$galvc" --version | head -n 1)"
    echo "glibc here: $(ldd --version | head -n 1 | sed 's/.* //'); newest glibc symbol needed: $glibc"
    echo "Open MPI: $("$mpiexec" --version | head -n 1)"
    echo "CUDA libraries the programs need (the machine's own): $(tr '\n' ' ' <"$tmp/cuda-libs")"
    echo "size: $size bytes (the working tree's tracked files: $tree)"
    echo "programs:"
    ls "$tmp/bin" | sed 's/^/  /'
} >"$tmp/MANIFEST"
[ $((size + tree)) -lt "$LIMIT" ] ||
    die "the bundle is $size bytes, with the working tree's $tree over the 64 MiB limit"

rm -rf "$out" && mv "$tmp" "$out"
say "$out: $(du -sh "$out" | cut -f1) ($size bytes), needs glibc ${glibc#GLIBC_} or newer"
say "run it there: carry $(basename "$out") with the working tree, then: bash tests/gpu/check.sh"
