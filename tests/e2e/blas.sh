#!/bin/sh
# blas.sh GALVC MPIEXEC WORKDIR — with no OPENBLAS_* variable set, a galvc
# program's GEMMs run the OpenBLAS kernels this CPU's features call for:
# AVX-512 (F, BW, DQ, VL) needs SkylakeX or newer (Cooperlake,
# SapphireRapids), AVX2 with FMA Haswell or newer. The program names the
# kernels it runs on its first lines; an OpenBLAS that picked slower ones
# (Debian's 0.3.21 runs Prescott's on some AVX-512 Xeons) must have been
# restarted on the right ones.
set -eu
galvc=$1 mpiexec=$2 work=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
"$galvc" "$src/examples/gpt-tiny.gv" -D ranks=1 --uniform tp=1,pp=1,dp=1 -o train-blas
env -u OPENBLAS_CORETYPE -u OPENBLAS_NUM_THREADS -u OPENBLAS_L2_SIZE -u OPENBLAS_VERBOSE \
    "$mpiexec" --allow-run-as-root --oversubscribe -np 1 ./train-blas --steps 1 --data "$src/README.md" > out.txt
cat out.txt
core=$(sed -n 's/^BLAS: OpenBLAS \([A-Za-z0-9]*\) kernels.*/\1/p' out.txt)
[ -n "$core" ] || { echo "blas.sh: the program does not say which BLAS kernels it runs" >&2; exit 1; }
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
if has avx512f && has avx512bw && has avx512dq && has avx512vl; then want="SkylakeX Cooperlake SapphireRapids"
elif has avx2 && has fma; then want="Haswell Zen SkylakeX Cooperlake SapphireRapids"
else echo "blas.sh: neither AVX-512 nor AVX2 here: any kernel will do ($core)"; exit 0
fi
ok=
for w in $want; do [ "$core" = "$w" ] && ok=1; done
[ -n "$ok" ] || { echo "blas.sh: OpenBLAS runs its $core kernels; this CPU calls for one of: $want" >&2; exit 1; }
echo "blas.sh: $core kernels, as this CPU calls for"
# The restart itself, where OpenBLAS knows this CPU: a stand-in that reports
# Prescott kernels until OPENBLAS_CORETYPE is set, as 0.3.21 does on the CPUs it
# does not know; the program must restart once and name the kernels it got.
printf '#include <stdlib.h>\nchar *openblas_get_corename(void) { char *c = getenv("OPENBLAS_CORETYPE"); return c ? c : "Prescott"; }\n' > old-blas.c
cc -shared -fPIC old-blas.c -o old-blas.so
env -u OPENBLAS_CORETYPE LD_PRELOAD="$PWD/old-blas.so" "$mpiexec" --allow-run-as-root --oversubscribe -x LD_PRELOAD \
    -np 1 ./train-blas --steps 1 --data "$src/README.md" > restart.txt 2>&1 || true
cat restart.txt
grep -q "^BLAS: OpenBLAS [A-Za-z]* kernels; OpenBLAS picked its Prescott kernels for this CPU; restarted on its" restart.txt ||
    { echo "blas.sh: no restart on the right kernels" >&2; exit 1; }
grep -q '^step    1' restart.txt || { echo "blas.sh: the restarted program did not train" >&2; exit 1; }
