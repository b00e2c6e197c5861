"""``python -m gpt2course bench train``: training-step throughput, ours vs nanoGPT.

Both models get the same config, the same weights, the same batches and the same AdamW
step. With ``--nanogpt PATH/TO/model.py`` the other model is karpathy/nanoGPT's own
``model.py`` (loaded from that path, never copied here); without it, a plain model written
out below in nanoGPT's style. Steps alternate between the two models so that a shared,
noisy machine slows both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import platform
import statistics
import sys
import time
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import profile as torch_profile

from gpt2course.data import RandomBatches, load_text, split_tokens
from gpt2course.model import GPT, GPTConfig, lm_loss
from gpt2course.tokenizer.named import get_tokenizer
from gpt2course.train import _autocast, configure_optimizer, train_step

from ._timing import parser


class PlainBlock(nn.Module):
    """nanoGPT's block: pre-LN attention and MLP with residuals, under GPT-2's names."""

    def __init__(self, c) -> None:
        super().__init__()
        C = c.n_embd
        self.n_head = c.n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attn = nn.ModuleDict(dict(c_attn=nn.Linear(C, 3 * C), c_proj=nn.Linear(C, C)))
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(C, 4 * C), c_proj=nn.Linear(4 * C, C)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        x = x + self.attn.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class PlainGPT(nn.Module):
    """nanoGPT's model, compact, with its interface: ``model(idx, targets) -> (logits, loss)``."""

    def __init__(self, c) -> None:
        super().__init__()
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.h = nn.ModuleList(PlainBlock(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


# Stands where nanoGPT's model.py would: nanogpt_twin builds either from our model.
PLAIN = SimpleNamespace(GPT=PlainGPT, GPTConfig=SimpleNamespace)


def load_nanogpt(path: str):
    """karpathy/nanoGPT's ``model.py`` at ``path``, imported as a module."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path} is not a Python file; pass nanoGPT's model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not (hasattr(mod, "GPT") and hasattr(mod, "GPTConfig")):
        raise ValueError(f"{path} has no GPT and GPTConfig: is it karpathy/nanoGPT's model.py?")
    return mod


def nanogpt_twin(mod, ours: GPT) -> nn.Module:
    """nanoGPT's GPT with ``ours``'s config and a copy of its weights."""
    c = ours.config
    nc = mod.GPTConfig(
        block_size=c.context_length,  # nanoGPT's name for it
        vocab_size=c.vocab_size,
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_embd=c.n_embd,
        dropout=c.dropout,
        bias=c.bias,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        twin = mod.GPT(nc)
    # nanoGPT nests the same module names under "transformer."; its Linears are (out, in) too.
    ours_sd = ours.state_dict()
    twin.load_state_dict({k: ours_sd[k.removeprefix("transformer.")] for k in twin.state_dict()})
    return twin.to(next(ours.parameters()).device)


def _optimizer(model: nn.Module, lr: float, fused: bool) -> torch.optim.Optimizer:
    opt = configure_optimizer(model, lr)  # the same two groups as nanoGPT's configure_optimizers
    if not fused:
        return opt
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in opt.param_groups]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


def _nanogpt_step(model, opt, x, y, lr: float, clip: float, dtype) -> float:
    """One step as nanoGPT's train.py takes it: model(x, y) gives the loss."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    with _autocast(x.device, dtype):
        _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item()


def compare(other, name: str, args: argparse.Namespace) -> dict:
    """Tokens/s of a training step, ours vs ``other`` (a module with nanoGPT's ``GPT`` and
    ``GPTConfig``): same weights, same batches, alternating steps, as ``main``'s ``args`` say."""
    preset, batch_size, steps = args.preset, args.batch_size, args.rounds * args.steps
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[args.autocast]
    from gpt2course.workshop.train import PRESETS

    mcfg = GPTConfig(**PRESETS[preset]["model"])
    tok = get_tokenizer(PRESETS[preset]["data"]["tokenizer"])
    train_ids, _ = split_tokens(tok.encode(load_text("shakespeare")))
    T = min(args.context_length, mcfg.context_length)
    batches = RandomBatches(train_ids, batch_size, T, seed=0)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    ours = GPT(mcfg).to(dev)
    models = {"ours": ours, name: nanogpt_twin(other, ours)}
    x0, y0 = (t.to(dev) for t in batches.batch(0))
    with torch.no_grad():
        ours.eval(), models[name].eval()
        first = {"ours": lm_loss(ours(x0), y0).item(), name: models[name](x0, y0)[1].item()}
        ours.train(), models[name].train()
    runners = {n: (torch.compile(m) if args.compile else m) for n, m in models.items()}
    opts = {n: _optimizer(m, 1e-3, args.fused) for n, m in models.items()}

    def step(n: str, i: int) -> float:
        x, y = (t.to(dev) for t in batches.batch(i))
        if n == "ours":
            return train_step(runners[n], opts[n], [(x, y)], 1e-3, 1.0, autocast_dtype=dtype)
        return _nanogpt_step(runners[n], opts[n], x, y, 1e-3, 1.0, dtype)

    for i in range(3):  # warm-up: allocator, kernels, compilation
        for n in models:
            step(n, i)
    wall, cpu, losses = ({n: [] for n in models} for _ in range(3))
    for i in range(steps):
        # Each model goes first on every other step, so neither always runs on a warm cache.
        for n in list(models)[:: 1 if i % 2 == 0 else -1]:
            t, c = time.perf_counter(), time.process_time()
            losses[n].append(step(n, 100 + i))
            wall[n].append(time.perf_counter() - t)
            cpu[n].append(time.process_time() - c)
    tokens = batch_size * batches.context_length
    tps = {n: round(tokens / statistics.median(ts)) for n, ts in wall.items()}
    # CPU seconds are steadier than wall time on a shared machine (other jobs' time is not
    # counted), and equal to it on one thread with the machine to ourselves.
    per_cpu = {n: round(tokens / statistics.median(ts)) for n, ts in cpu.items()}
    if args.profile:
        for n in models:
            with torch_profile() as prof:
                step(n, 0)
            print(f"--- one training step, {n} ---")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return {
        "bench": f"train, ours vs {name}",
        "model": preset,
        "params_M": round(ours.num_params() / 1e6, 2),
        "batch": f"{batch_size}x{batches.context_length}",
        "device": args.device,
        "autocast": str(dtype).removeprefix("torch.") if dtype else None,
        "compile": args.compile,
        "fused_adamw": args.fused,
        "steps": steps,
        "first_loss": {k: round(v, 4) for k, v in first.items()},
        "last_loss": {k: round(v[-1], 3) for k, v in losses.items()},
        "finite": all(math.isfinite(v) for ls in losses.values() for v in ls),
        "tokens_per_s": tps,
        "ratio": round(tps["ours"] / tps[name], 3),
        "tokens_per_cpu_s": per_cpu,
        "cpu_ratio": round(per_cpu["ours"] / per_cpu[name], 3),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }


def main(argv: list[str]) -> int:
    """Print tokens/s of a training step for both models (median over alternating steps)."""
    p = parser("train", __doc__)
    p.add_argument("--preset", default="shakespeare-bytes", help="model size: a train preset's")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--context-length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="rounds of --steps timed steps")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--nanogpt", metavar="PATH", help="karpathy/nanoGPT's model.py, to compare")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--autocast", choices=["bf16", "fp16"], help="autocast dtype")
    p.add_argument("--compile", action="store_true", help="torch.compile both")
    p.add_argument("--fused", action="store_true", help="fused AdamW (CUDA)")
    p.add_argument("--profile", action="store_true", help="profile one step of each")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.nanogpt:
        other, name = load_nanogpt(args.nanogpt), "nanoGPT"
    else:
        print(
            "nanoGPT comparison skipped: no --nanogpt PATH/TO/model.py (karpathy/nanoGPT's own); "
            "comparing against the plain nanoGPT-style model written in this file",
            file=sys.stderr,
        )
        other, name = PLAIN, "plain nanoGPT-style"
    print(json.dumps(compare(other, name, args)))
    return 0
