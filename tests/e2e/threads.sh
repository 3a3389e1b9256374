#!/bin/sh
# threads.sh GALVC COMPARE MPIEXEC WORKDIR MODEL — the row kernels split over
# the runtime's thread pool give the same training: MODEL on one rank, 10
# steps with GALVRT_THREADS=1 (no pool) and GALVRT_THREADS=2 and 3 (parts
# of unequal rows), with the generated kernels and with the reference ones
# (GALVRT_REFERENCE_KERNELS=1): losses within 1e-6 relative, final
# parameters within 1e-5 (seen: 4e-9 and 1.2e-6; Adam's step divides by
# sqrt(v), so a tiny gradient's last bits move its parameter most). Only a
# weight gradient summed over rows (a norm's, GELU's bias) is added in
# another order. The program must say how many threads its kernels run on.
set -eu
galvc=$1 compare=$2 mpiexec=$3 work=$4 model=$5
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work"
export OPENBLAS_NUM_THREADS=1
"$galvc" "$src/examples/$model.gv" -D ranks=1 --uniform tp=1,pp=1,dp=1 -o "train-$model"
for ref in 0 1; do
    for n in 1 2 3; do
        run=$model-ref$ref-$n
        GALVRT_REFERENCE_KERNELS=$ref GALVRT_THREADS=$n "$mpiexec" --allow-run-as-root --oversubscribe \
            -x GALVRT_THREADS -x GALVRT_REFERENCE_KERNELS -np 1 "./train-$model" \
            --steps 10 --seed 7 --data "$src/README.md" --log "$run.jsonl" --dump "$run.dump" > "$run.out"
        head -n 3 "$run.out"
        grep -q "^BLAS: .*$n for the other kernels (GALVRT_THREADS)" "$run.out" ||
            { echo "threads.sh: the program does not say it runs its kernels on $n threads" >&2; exit 1; }
        [ "$n" = 1 ] && continue
        "$compare" "$model-ref$ref-1.jsonl" "$run.jsonl" "$model-ref$ref-1.dump" "$run.dump" 1e-6 1e-5
    done
done
