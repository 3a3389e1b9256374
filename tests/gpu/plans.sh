# plans.sh — the GPT-2 124M programs of the GPU check's rows (f) and (h),
# defined once for tests/gpu/bundle.sh (which builds them), check.sh (which
# runs them) and predict.sh (which prices them with the measured profile).
# Sourced by bash after $src (the repository) is set. Each entry: NAME RANKS galvc-arguments (after the model).

# examples/gpt2-small.gv (precision bf16) on the check's one H200, batch 16 x 1024
GPT2_ARGS=(--cluster "$src/examples/clusters/h200x1.gv" -D global_batch=16 -D seq=1024)

# (f): the plan galvc finds for one GPU
SPEED_PLAN="gpt2-small 1 --devices 1"

# (h): 1-GPU plans that differ: micro-batches, checkpointing, and the two
# pipeline schedules with 2 ranks sharing the GPU (host-staged p2p)
PREDICT_PLANS=(
    "gpt2-m1 1 --devices 1 --uniform tp=1,pp=1,dp=1,m=1"
    "gpt2-m4 1 --devices 1 --uniform tp=1,pp=1,dp=1,m=4"
    "gpt2-ckpt 1 --devices 1 --uniform tp=1,pp=1,dp=1,ckpt,m=2"
    "gpt2-gpipe 2 --devices 2 --uniform tp=1,pp=2,dp=1,schedule=gpipe,m=4"
    "gpt2-1f1b 2 --devices 2 --uniform tp=1,pp=2,dp=1,schedule=1f1b,m=4"
)
