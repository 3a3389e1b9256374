#!/usr/bin/env python3
"""torch_gpt2.py — PyTorch's own GPT-2 124M training step on the GPU, the
side of the GPU check's row (f) that galvc's program is compared with
(tests/gpu/check.sh): the model of examples/gpt2-small.gv (Radford et al.
2019, the Hugging Face gpt2 config: vocabulary 50257, 1024 positions, 12
pre-LN blocks of width 768 with 12 heads and a 3072-wide MLP, GELU in its
tanh form, the token table tied to the output head), a batch of 16 x 1024
tokens, bf16 autocast (fp32 weights, bf16 matrix products), causal attention
through F.scaled_dot_product_attention (its fused kernels), AdamW with
fused=True (lr 6e-4, betas 0.9 / 0.95, weight decay 0.1 on matrices), the
gradient norm clipped at 1: as bench/torch_gpt2.py on the CPU, on CUDA.

Prints one line:
  torch: ms/step M tokens/s T mfu U loss L
M the median step after the warm-up steps, each timed from the step's start
to the end of its optimizer step (torch.cuda.synchronize), U the model FLOPs
utilization (flops_per_step below over M, over the GPU's dense bf16 peak).

  torch_gpt2.py [--steps S] [--warmup W] [--batch B] [--seq T]
  torch_gpt2.py --mfu MS [--batch B] [--seq T]   (another program's ms/step: its line, "galvc: ...")
"""
import argparse
import math
import statistics
import sys
import time

VOCAB, POSITIONS, HIDDEN, HEADS, LAYERS = 50257, 1024, 768, 12, 12

# NVIDIA H200 (SXM), dense bf16 tensor-core peak: 989 TFLOP/s (the datasheet's
# 1,979 TFLOP/s is with 2:4 sparsity; NVIDIA H200 Tensor Core GPU datasheet,
# 2024). The same figure as hw/presets.c's h200 preset.
PEAK_BF16 = 989e12


def parameters():
    """GPT-2 124M's parameters, the tied table counted once (124,439,808)."""
    C, F = HIDDEN, 4 * HIDDEN
    block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * F + F) + (F * C + C)
    return VOCAB * C + POSITIONS * C + LAYERS * block + 2 * C


def flops_per_step(batch, seq):
    """Model FLOPs of a training step: 6 N per token (forward 2N, backward 4N,
    the tied head's product counted through the table's N) plus attention's
    scores and context, 12 L C T per token (forward 4 L C T, causal masking
    not subtracted): PaLM's accounting (Chowdhery et al. 2022, appendix B),
    the one llm.c's and nanoGPT's MFU use."""
    tokens = batch * seq
    return 6 * parameters() * tokens + 12 * LAYERS * HIDDEN * seq * tokens


def line(who, ms, batch, seq, extra=""):
    tokens_s = batch * seq / (ms * 1e-3)
    mfu = flops_per_step(batch, seq) / (ms * 1e-3) / PEAK_BF16
    return f"{who}: ms/step {ms:.2f} tokens/s {tokens_s:.0f} mfu {mfu:.4f}{extra}"


def model_and_step(torch):
    """The model on the GPU and one training step of it."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(HIDDEN), nn.LayerNorm(HIDDEN)
            self.qkv, self.proj = nn.Linear(HIDDEN, 3 * HIDDEN), nn.Linear(HIDDEN, HIDDEN)
            self.up, self.down = nn.Linear(HIDDEN, 4 * HIDDEN), nn.Linear(4 * HIDDEN, HIDDEN)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = (t.view(B, T, HEADS, C // HEADS).transpose(1, 2) for t in self.qkv(self.ln1(x)).split(C, 2))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(B, T, C))
            return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(VOCAB, HIDDEN), nn.Embedding(POSITIONS, HIDDEN)
            self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
            self.ln_f = nn.LayerNorm(HIDDEN)
            for m in self.modules():  # GPT-2's initialization, as galvc's program has it
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.02 / math.sqrt(2 * LAYERS) if m.out_features == HIDDEN else 0.02)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Embedding):
                    nn.init.normal_(m.weight, 0.0, 0.01 if m.num_embeddings == POSITIONS else 0.02)

        def forward(self, tokens, targets):
            x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1], device=tokens.device))
            for b in self.blocks:
                x = b(x)
            logits = self.ln_f(x) @ self.wte.weight.t()  # the tied head
            return F.cross_entropy(logits.view(-1, VOCAB).float(), targets.reshape(-1))

    torch.manual_seed(1234)
    model = GPT2().cuda()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), fused=True)

    def step(tokens):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--mfu", type=float, help="print the line of a program that took this many ms a step")
    args = ap.parse_args()
    if args.mfu is not None:
        print(line("galvc", args.mfu, args.batch, args.seq))
        return
    import torch

    if not torch.cuda.is_available():
        sys.exit("torch_gpt2.py: error: PyTorch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = True  # fp32 products outside autocast (none in the step) may use TF32
    step = model_and_step(torch)
    gen = torch.Generator(device="cuda").manual_seed(7)
    times, loss = [], None
    for i in range(args.warmup + args.steps):
        tokens = torch.randint(0, VOCAB, (args.batch, args.seq + 1), device="cuda", generator=gen)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = step(tokens)
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    value = loss.item()
    if not math.isfinite(value):
        sys.exit(f"torch_gpt2.py: error: the loss is {value}")
    print(line("torch", statistics.median(times), args.batch, args.seq, f" loss {value:.4f}"), flush=True)
    print(f"torch: {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
