/* cuda_device.h — inside libgalvrt_cuda (one concern per file): device.c
 * starts the GPU and owns its memory arena, streams and copies; gemm.c the
 * cuBLAS GEMMs and the attention built on them; module.c the PTX module and
 * the kernels' launches. Every CUDA, driver and cuBLAS call goes through a
 * check that names the call and stops every rank. */
#ifndef GALVRT_CUDA_DEVICE_H
#define GALVRT_CUDA_DEVICE_H

#include "galvrt_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

/* The rank's GPU: its compute stream (every kernel, GEMM and copy of the
 * step), its communication stream (collectives), and an event for each to
 * order one after the other. */
typedef struct CudaState {
    int device;
    cudaStream_t compute, comm;
    cudaEvent_t computed, communicated;
    cublasHandle_t blas;
} CudaState;
extern CudaState cuda;

/* Stop every rank: the call that failed, its error, where. */
_Noreturn void cuda_fail(const char *call, const char *error, const char *file, int line);
#define CUDA_CHECK(call)                                                                                              \
    do {                                                                                                              \
        cudaError_t e_ = (call);                                                                                      \
        if (e_ != cudaSuccess) cuda_fail(#call, cudaGetErrorString(e_), __FILE__, __LINE__);                          \
    } while (0)
#define CUBLAS_CHECK(call)                                                                                            \
    do {                                                                                                              \
        cublasStatus_t s_ = (call);                                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) cuda_fail(#call, cublasGetStatusString(s_), __FILE__, __LINE__);            \
    } while (0)

/* n bytes of the arena (device.c), zeroed; never freed before the run ends. */
void *cuda_alloc(size_t bytes);
/* Does p point into the arena (device memory)? Every buffer the layers and
 * the step hand to a collective is either there or in host memory. */
int cuda_on_device(const void *p);

/* The communication stream after the compute stream's work so far, and the other way round. */
void cuda_comm_waits_compute(void);
void cuda_compute_waits_comm(void);

/* comm_choice.c: which collectives the ranks use, a pure function of what
 * each one reports: ids, n entries of id_bytes (its GPU's UUID), and
 * nccl_ok (n flags: NCCL not turned off on that rank, GALVRT_NCCL=0). */
typedef enum CudaCommKind { CUDA_COMM_NCCL, CUDA_COMM_STAGED } CudaCommKind;
typedef struct CudaCommChoice {
    CudaCommKind kind;
    int shared_a, shared_b; /* STAGED for a shared GPU: the first two ranks on one (a < b); else -1 */
    int off;                /* STAGED because a rank turned NCCL off: the first one (else -1) */
} CudaCommChoice;
CudaCommChoice cuda_comm_choose(const unsigned char *ids, size_t id_bytes, const unsigned char *nccl_ok, int n);

/* attention_gemms.c: the attention core's strided-batched GEMMs as data, a
 * pure function of the shapes that gemm.c runs through cuBLAS and
 * tests/runtime/cuda_attention_gemms.c through cblas. Each operand names
 * one of the attention's buffers, where it starts in it (floats), its
 * leading dimension, and the stride from one batch member to the next;
 * row-major, C (M, N) = alpha op(A) op(B) + beta C for each member. */
typedef enum CudaAttBuf {
    CUDA_ATT_QKV,  /* qkv (B, T, (H + 2 KVH) hd), read */
    CUDA_ATT_OUT,  /* out (B, T, H hd): written forward, its gradient read backward */
    CUDA_ATT_P,    /* att (B, H, T, T): the scores, then the probabilities */
    CUDA_ATT_DQKV, /* dqkv (B, T, (H + 2 KVH) hd), accumulated */
    CUDA_ATT_DP,   /* datt (H, T, T): one sequence's probabilities' gradient */
    /* mixed precision's bf16 bits of the above (the same element offsets): */
    CUDA_ATT_QKV16, /* qkv's, the block's kept copy */
    CUDA_ATT_OUT16, /* the output's gradient, rounded in backward */
    CUDA_ATT_P16,   /* the probabilities, the block's kept copy */
    CUDA_ATT_DP16,  /* one sequence's score gradient, rounded in backward */
    CUDA_ATT_BUFS
} CudaAttBuf;
/* The bytes of one element of buffer buf: 2 (bf16 bits) or 4 (floats); offsets, leading dimensions and strides
 * count elements, so qkv and its bits share them. */
int cuda_attention_buf_bytes(CudaAttBuf buf);
typedef struct CudaAttOperand {
    CudaAttBuf buf;
    size_t off;
    int ld;
    long long stride;
} CudaAttOperand;
typedef struct CudaAttGemm {
    int ta, tb, M, N, K, batch;
    float alpha, beta;
    CudaAttOperand a, b, c;
} CudaAttGemm;
/* Where the GEMMs run: the forward's scores (per head, over the B sequences), after the softmax the
 * forward's P V; the backward's, one sequence at a time, before and after the
 * softmax's backward. */
typedef enum CudaAttPhase { CUDA_ATT_SCORES, CUDA_ATT_VALUES, CUDA_ATT_BWD_PRE, CUDA_ATT_BWD_POST } CudaAttPhase;
/* How many GEMMs phase ph runs (H forward, 2 H / KVH backward), and its
 * i-th (of sequence b in backward), to be run in that order; with bf16,
 * every GEMM reads its operands' bits (CUDA_ATT_QKV16, _OUT16, _P16,
 * _DP16) and writes fp32. */
int cuda_attention_gemm_count(CudaAttPhase ph, int H, int KVH);
CudaAttGemm cuda_attention_gemm(CudaAttPhase ph, int i, int b, int B, int T, int H, int KVH, int hd, int bf16);

/* comm_cuda.c: this rank's collectives from now on: NCCL, or MPI staged
 * through pinned host memory when ranks share a GPU (comm_choice.c); a
 * collective over every rank. */
void cuda_comm_start(int rank);
/* The same with the kind of collectives given (tests): the world's handle becomes the CUDA backend's. */
void cuda_comm_use(CudaCommKind kind);

/* module.c: load t's PTX and find each kernel in it. */
void cuda_module_load(const GrtTarget *t);

/* gemm.c: the cuBLAS handle on the compute stream, fp32 without TF32. */
void cuda_blas_start(void);
void cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
void cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC);
void cuda_matmul16_forward(float *out, const float *inp, const uint16_t *inp16, const float *weight, const float *bias,
                           int N, int C, int OC, int bytes, void *ops);
void cuda_matmul16_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const uint16_t *inp16, const float *weight, int N, int C, int OC, int bytes, void *ops);
void cuda_add(float *dst, const float *src, size_t n);
void cuda_add_bias(float *out, const float *bias, int N, int C);
void cuda_bias_grad(float *dbias, const float *dout, int N, int C);
void cuda_attention_forward(float *out, float *att, const float *qkv, const GrtAtt16 *m, int B, int T, int H, int KVH,
                            int hd, int causal, GrtAttSoftmaxFwdFn *softmax);
void cuda_attention_backward(float *dqkv, float *dout, const float *qkv, float *att, const GrtAtt16 *m, int B,
                             int T, int H, int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *softmax, float *dp);

#endif
