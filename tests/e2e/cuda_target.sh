#!/bin/sh
# cuda_target.sh GALVC MPIEXEC WORKDIR PTXAS — the CUDA target without a GPU:
# gpt-tiny and llama-tiny programs (and gpt-tiny in bf16) for one GPU rank build and link against
# libgalvrt_cuda (cuBLAS, the CUDA runtime) with their kernels' PTX embedded;
# that PTX (the same plan's) assembles with ptxas for sm_80 and sm_90; and
# 2-rank programs (DP 2, TP 2, PP 2, with the NCCL collectives linked) run
# under mpirun on a machine with no GPU (or no driver) have every rank say
# so on its own and exit 77. On a machine with a GPU the
# last check is skipped (77): the GPU check (tests/gpu/) is the one to run.
# A model with dropout is refused for the CUDA target, layer by layer, and
# so are ViT's and BERT-classifier's layers (patch embedding, token types,
# classifier), Swin's (windowed blocks, patch merging) and T5's blocks.
set -u
galvc=$1 mpiexec=$2 work=$3 ptxas=$4
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"
cd "$work" || exit 1
status=0
fail() { echo "FAIL: $*"; status=1; }
for model in gpt-tiny llama-tiny; do
    if "$galvc" "$src/examples/$model.gv" --devices 1 --target cuda -o "train-$model" --keep; then
        echo "ok: $model: built for the CUDA target"
        grep -q '^const GrtTarget galvc_target = {"cuda"' "train-$model.device.c" || fail "$model: no galvc_target"
    else
        fail "$model: galvc --target cuda -o"
    fi
    for arch in sm_80 sm_90; do
        "$galvc" "$src/examples/$model.gv" --devices 1 --emit=ptx:$arch >"$model-$arch.ptx" || fail "$model: --emit=ptx:$arch"
        if "$ptxas" -arch=$arch "$model-$arch.ptx" -o "$model-$arch.cubin"; then
            echo "ok: $model: its PTX assembles for $arch"
        else
            fail "$model: ptxas -arch=$arch"
        fi
    done
done
# gpt-tiny in bf16: its linears' GEMMs on bf16 operands (cublasGemmEx), rounded by generated kernels
# that store bf16 bits; the program and its PTX build and assemble.
if "$galvc" "$src/examples/gpt-tiny.gv" -D precision=bf16 --devices 1 --target cuda -o train-gpt-tiny-bf16 --keep; then
    grep -q '\.gemm16 = 2' train-gpt-tiny-bf16.c || fail "gpt-tiny bf16: its layers do not round to bf16 bits"
    grep -q 'galvc_bf16_c64(' train-gpt-tiny-bf16.device.c || fail "gpt-tiny bf16: no bf16 rounding kernel"
    echo "ok: gpt-tiny bf16: built for the CUDA target"
else
    fail "gpt-tiny bf16: galvc --target cuda -o"
fi
for arch in sm_80 sm_90; do
    "$galvc" "$src/examples/gpt-tiny.gv" -D precision=bf16 --devices 1 --emit=ptx:$arch >"gpt-tiny-bf16-$arch.ptx" ||
        fail "gpt-tiny bf16: --emit=ptx:$arch"
    if "$ptxas" -arch=$arch "gpt-tiny-bf16-$arch.ptx" -o "gpt-tiny-bf16-$arch.cubin"; then
        echo "ok: gpt-tiny bf16: its PTX assembles for $arch"
    else
        fail "gpt-tiny bf16: ptxas -arch=$arch"
    fi
done
# Dropout is refused for the CUDA target, where each layer with it is, with a non-zero exit.
if "$galvc" "$src/examples/gpt-tiny-dropout.gv" --devices 1 --target cuda -o train-dropout 2>dropout.err; then
    fail "gpt-tiny-dropout: built for the CUDA target, which does not train dropout"
elif grep -q 'gpt-tiny-dropout.gv:10:5: error: embedding.0: dropout is not trained on the CUDA target yet' dropout.err &&
    [ "$(grep -c 'dropout is not trained on the CUDA target' dropout.err)" = 5 ]; then
    echo "ok: gpt-tiny-dropout: refused for the CUDA target"
else
    cat dropout.err
    fail "gpt-tiny-dropout: not refused as expected for the CUDA target"
fi
# The vision and classifier layers and token types: refused where each is.
for case in "vit-tiny:patch_embedding.0:a patch_embedding" "vit-tiny:classifier.0:a classifier" \
    "bert-tiny-cls:embedding.0:token types" "bert-tiny-cls:classifier.0:a classifier" \
    "swin-tiny:encoder.1:windowed attention" "swin-tiny:patch_merging.0:a patch_merging" \
    "t5-tiny:encoder.0:T5's blocks are" "t5-tiny:cross_decoder.0:T5's blocks are"; do
    model=${case%%:*} rest=${case#*:}
    layer=${rest%%:*} what=${rest#*:}
    if "$galvc" "$src/examples/$model.gv" --devices 1 --target cuda -o "train-$model" 2>"$model.err"; then
        fail "$model: built for the CUDA target, which does not train its $layer"
    elif grep -q "$model.gv:[0-9]*:5: error: $layer: $what .*not trained on the CUDA target yet" "$model.err"; then
        echo "ok: $model: $layer refused for the CUDA target"
    else
        cat "$model.err"
        fail "$model: $layer not refused as expected for the CUDA target"
    fi
done
# Two ranks under the plans the GPU check runs (DP 2, TP 2, PP 2: the
# collectives, NCCL linked, host-staged when the ranks share a GPU), each
# rank writing its own exit status and messages (mpirun reports only one).
for plan in dp=2 tp=2 pp=2; do
    uniform=$(echo "tp=1,pp=1,dp=1" | sed "s/${plan%=*}=1/$plan/")
    prog=train-2-${plan%=*}
    if ! "$galvc" "$src/examples/gpt-tiny.gv" --devices 2 --uniform "$uniform" --target cuda -o "$prog"; then
        fail "gpt-tiny --uniform $uniform: galvc -o"
        continue
    fi
    if nm "$prog" | grep -q ' T cuda_comm_start$' && ldd "$prog" | grep -q 'libnccl'; then
        echo "ok: $uniform: the CUDA collectives linked, libnccl loaded"
    else
        fail "$uniform: no cuda_comm_start or no libnccl in $prog"
    fi
    rm -f rank-*.status rank-*.err
    "$mpiexec" --allow-run-as-root --oversubscribe -np 2 sh -c \
        "./$prog --steps 1 2>\"rank-\$OMPI_COMM_WORLD_RANK.err\"; echo \$? >\"rank-\$OMPI_COMM_WORLD_RANK.status\""
    for r in 0 1; do
        st=$(cat "rank-$r.status" 2>/dev/null)
        if [ "$st" = 0 ]; then
            echo "skipped: rank $r found a GPU; run tests/gpu/ there instead"
            exit 77
        fi
        [ "$st" = 77 ] || fail "$uniform: rank $r exited with '$st', not 77"
        if grep -Eq "^galvrt: rank $r: no CUDA (device|driver) \(cudaGetDeviceCount: " "rank-$r.err"; then
            echo "ok: $uniform: rank $r: $(cat "rank-$r.err")"
        else
            fail "$uniform: rank $r did not say why: $(cat "rank-$r.err")"
        fi
    done
done
exit $status
