#!/bin/sh
# ptxas.sh GALVC WORKDIR — the PTX galvc generates (--emit=ptx) for gpt-tiny
# (LayerNorm, GELU), gpt-tiny-dropout (dropout), llama-tiny (RMSNorm, SwiGLU), t5-tiny-dropout (T5's
# relative bias softmax, the unscaled cross-attention softmax)
# and gpt-tiny in bf16 (gpt-tiny@bf16: its GEMM operands' bf16 rounding), for sm_80 and sm_90,
# assembled by the CUDA toolkit's ptxas: the GPU check that needs no GPU.
# Exit 77 (skipped) where the toolkit is not installed.
set -u
galvc=$1
work=$2
ptxas=${PTXAS:-/usr/local/cuda/bin/ptxas}
if [ ! -x "$ptxas" ]; then
    echo "skipped: no ptxas at $ptxas (the CUDA toolkit is not installed)"
    exit 77
fi
mkdir -p "$work"
status=0
for model in gpt-tiny gpt-tiny-dropout llama-tiny t5-tiny-dropout gpt-tiny@bf16; do
    file=${model%@*} precision=fp32
    case $model in *@*) precision=${model#*@} ;; esac
    for arch in sm_80 sm_90; do
        ptx=$work/$model-$arch.ptx
        if ! "$galvc" "examples/$file.gv" -D precision=$precision --emit=ptx:$arch >"$ptx"; then
            echo "FAIL: galvc --emit=ptx:$arch $model"
            status=1
            continue
        fi
        entries=$(grep -c '^\.visible \.entry' "$ptx")
        if [ "$entries" -lt 4 ]; then
            echo "FAIL: $model $arch: $entries kernels in the PTX"
            status=1
        fi
        # bf16: a rounding kernel (bf16 bits, 16-bit stores) for each of the plan's GEMM widths (at least C and 4C / tp)
        rounding=$(grep -c '^\.visible \.entry galvc_bf16_c[0-9]*(' "$ptx")
        if [ "$precision" = bf16 ] && { [ "$rounding" -lt 2 ] || ! grep -q 'st\.global\.u16' "$ptx"; }; then
            echo "FAIL: $model $arch: $rounding bf16 rounding kernels (want 2 or more, storing 16 bits)"
            status=1
        fi
        if "$ptxas" -arch=$arch "$ptx" -o "$work/$model-$arch.cubin"; then
            echo "ok: $model $arch: $entries kernels assembled"
        else
            echo "FAIL: ptxas -arch=$arch $model"
            status=1
        fi
    done
done
exit $status
