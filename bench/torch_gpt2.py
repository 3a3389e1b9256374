#!/usr/bin/env python3
"""torch_gpt2.py — PyTorch's training step on the model bench/train_gpt2.sh
gives galvc: GPT-2 124M (Radford et al. 2019; the Hugging Face gpt2 config:
vocabulary 50257, 1024 positions, 12 pre-LN blocks of width 768 with 12
heads and a 3072-wide MLP, GELU in its tanh form, the token table tied to
the output head), fp32, AdamW (lr 6e-4, betas 0.9 / 0.95, weight decay 0.1
on matrices, gradient norm clipped at 1), a global batch of B sequences of
T tokens, written plainly in torch.nn.

Prints the median milliseconds a step takes after the first two.
  torch_gpt2.py [--ranks R] [--threads N] [--steps S] [--batch B] [--seq T]
With --ranks 2 the batch is split over two processes that average their
gradients through DistributedDataParallel on gloo (as galvc's DP 2 plan
does), each pinned to its own core when there are enough, as mpirun pins
galvc's ranks."""
import argparse
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, POSITIONS, HIDDEN, HEADS, LAYERS = 50257, 1024, 768, 12, 12


class Block(nn.Module):
    """x + attn(ln1(x)), then + mlp(ln2(x)): GPT-2's pre-LN block."""

    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(HIDDEN)
        self.qkv = nn.Linear(HIDDEN, 3 * HIDDEN)
        self.proj = nn.Linear(HIDDEN, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN)
        self.up = nn.Linear(HIDDEN, 4 * HIDDEN)
        self.down = nn.Linear(4 * HIDDEN, HIDDEN)

    def attention(self, x):
        B, T, C = x.shape
        hd = C // HEADS
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, HEADS, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, HIDDEN)
        self.wpe = nn.Embedding(POSITIONS, HIDDEN)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(HIDDEN)
        self.apply(self.init)

    @staticmethod
    def init(m):
        """GPT-2's initialization, as galvc's program (and llm.c) has it: weights
        N(0, 0.02), positions N(0, 0.01), the residual projections N(0, 0.02 /
        sqrt(2 L)), biases zero, norms one. (torch's defaults, N(0, 1) for an
        embedding, saturate the tied head's softmax and fill the gradients with
        denormals, which x86 multiplies a hundred times slower.)"""
        if isinstance(m, nn.Linear):
            std = 0.02 / math.sqrt(2 * LAYERS) if m.out_features == HIDDEN else 0.02
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.01 if m.num_embeddings == POSITIONS else 0.02)

    def forward(self, tokens, targets):
        T = tokens.shape[1]
        x = self.wte(tokens) + self.wpe(torch.arange(T, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # the tied head
        return F.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1))


def optimizer(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95))


def train(rank, args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    model = GPT2()
    if args.ranks > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = optimizer(model)
    B = args.batch // args.ranks
    gen = torch.Generator().manual_seed(rank)
    times = []
    for _ in range(args.steps):
        batch = torch.randint(0, VOCAB, (B, args.seq + 1), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times[2:])


def worker(rank, args, out):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= args.ranks * args.threads:  # each rank its own cores
        os.sched_setaffinity(0, cores[rank * args.threads:(rank + 1) * args.threads])
    torch.distributed.init_process_group("gloo", rank=rank, world_size=args.ranks)
    ms = train(rank, args)
    out[rank] = ms
    torch.distributed.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    args = ap.parse_args()
    if args.ranks == 1:
        print(f"{train(0, args):.1f}")
        return
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        raise SystemExit("torch_gpt2.py: this torch has no gloo backend for DistributedDataParallel")
    import torch.multiprocessing as mp

    out = mp.Manager().dict()
    os.environ["MASTER_PORT"] = str(29500 + os.getpid() % 1000)
    mp.spawn(worker, args=(args, out), nprocs=args.ranks)
    print(f"{max(out.values()):.1f}")  # the step ends when the slower rank ends


if __name__ == "__main__":
    main()
