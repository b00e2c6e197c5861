"""``python -m gpt2course bench train``: training-step throughput, ours vs a plain nanoGPT model.

Both models get the same config, the same batches and the same AdamW step; the plain one is
written out below in nanoGPT's style so the comparison needs nothing outside this file.
Runs alternate between the two models so that a shared, noisy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model import GPT, GPTConfig
from ..train import (
    RandomBatches,
    configure_optimizer,
    get_tokenizer,
    load_text,
    split_tokens,
    train_step,
)


class PlainBlock(nn.Module):
    """nanoGPT's block: pre-LN attention and MLP with residuals."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_head = c.n_head
        self.ln_1 = nn.LayerNorm(c.n_embd)
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.attn_proj = nn.Linear(c.n_embd, c.n_embd)
        self.ln_2 = nn.LayerNorm(c.n_embd)
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd)
        self.mlp_proj = nn.Linear(4 * c.n_embd, c.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class PlainGPT(nn.Module):
    """nanoGPT's model, compact: embeddings, blocks, final LayerNorm, tied head."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.n_positions, c.n_embd)
        self.h = nn.ModuleList(PlainBlock(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layer))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:  # train_step asks for the logits and takes the loss itself
            return logits
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def _step_times(
    model: nn.Module, batches: RandomBatches, steps: int, start: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each of ``steps`` training steps."""
    opt = configure_optimizer(model, 1e-3)
    wall, cpu = [], []
    for i in range(steps):
        x, y = batches.batch(start + i)
        t, c = time.perf_counter(), time.process_time()
        train_step(model, opt, [(x, y)], 1e-3, 1.0)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def main(argv: list[str]) -> int:
    """Print tokens/s of a training step for both models (median over alternating rounds)."""
    p = argparse.ArgumentParser(prog="python -m gpt2course bench train")
    p.add_argument(
        "--preset", default="shakespeare-bytes", help="model size: a train preset's model"
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per model")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = p.parse_args(argv)
    from ..train import PRESETS

    if args.threads:
        torch.set_num_threads(args.threads)
    mcfg = GPTConfig(**PRESETS[args.preset]["model"])
    tok = get_tokenizer(PRESETS[args.preset]["data"]["tokenizer"])
    train_ids, _ = split_tokens(tok.encode(load_text("shakespeare")))
    batches = RandomBatches(
        train_ids, args.batch_size, min(args.block_size, mcfg.n_positions), seed=0
    )
    torch.manual_seed(0)
    models = {"ours": GPT(mcfg), "plain nanoGPT-style": PlainGPT(mcfg)}
    for m in models.values():
        _step_times(m, batches, 2, 0)  # warm-up: allocator, kernels
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for r in range(args.rounds):
        for name, m in models.items():
            w, c = _step_times(m, batches, args.steps, 1000 * r)
            wall[name] += w
            cpu[name] += c
    tokens = args.batch_size * batches.block_size
    result = {name: round(tokens / statistics.median(ts)) for name, ts in wall.items()}
    # CPU seconds are steadier than wall time on a shared machine (other jobs' time is not
    # counted), and equal to it on one thread with the machine to ourselves.
    per_cpu_s = {name: round(tokens / statistics.median(ts)) for name, ts in cpu.items()}
    print(
        json.dumps(
            {
                "bench": "train",
                "model": args.preset,
                "params_M": round(models["ours"].num_params() / 1e6, 2),
                "batch": f"{args.batch_size}x{batches.block_size}",
                "tokens_per_s": result,
                "ratio_ours_to_plain": round(result["ours"] / result["plain nanoGPT-style"], 3),
                "tokens_per_cpu_s": per_cpu_s,
                "cpu_ratio_ours_to_plain": round(
                    per_cpu_s["ours"] / per_cpu_s["plain nanoGPT-style"], 3
                ),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "cpu": platform.processor() or platform.machine(),
            }
        )
    )
    return 0
