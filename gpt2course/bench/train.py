"""``python -m gpt2course bench train``: training-step throughput, ours vs nanoGPT.

Both models get the same config, the same batches and the same AdamW step. With
``--nanogpt PATH/TO/model.py`` the other model is karpathy/nanoGPT's own ``model.py``
(loaded from that path, never copied here), given our weights; without it, a plain model
written out below in nanoGPT's style. Steps alternate between the two models so that a
shared, noisy machine slows both alike.
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

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import RandomBatches, load_text, split_tokens
from ..model import GPT, GPTConfig, lm_loss
from ..tokenizer.named import get_tokenizer
from ..train import _autocast, configure_optimizer, train_step


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
        block_size=c.n_positions,
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


def compare_nanogpt(
    path: str,
    preset: str,
    batch_size: int,
    block_size: int,
    steps: int,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    compile: bool = False,
    fused: bool = False,
    profile: bool = False,
) -> dict:
    """Tokens/s of a training step, ours vs nanoGPT's model.py: same weights, alternating steps."""
    from ..cli.train import PRESETS

    mod = load_nanogpt(path)
    mcfg = GPTConfig(**PRESETS[preset]["model"])
    tok = get_tokenizer(PRESETS[preset]["data"]["tokenizer"])
    train_ids, _ = split_tokens(tok.encode(load_text("shakespeare")))
    batches = RandomBatches(train_ids, batch_size, min(block_size, mcfg.n_positions), seed=0)
    dev = torch.device(device)
    torch.manual_seed(0)
    ours = GPT(mcfg).to(dev)
    models = {"ours": ours, "nanoGPT": nanogpt_twin(mod, ours)}
    x0, y0 = (t.to(dev) for t in batches.batch(0))
    with torch.no_grad():
        ours.eval(), models["nanoGPT"].eval()
        first = {
            "ours": lm_loss(ours(x0), y0).item(),
            "nanoGPT": models["nanoGPT"](x0, y0)[1].item(),
        }
        ours.train(), models["nanoGPT"].train()
    runners = {name: (torch.compile(m) if compile else m) for name, m in models.items()}
    opts = {name: _optimizer(m, 1e-3, fused) for name, m in models.items()}

    def step(name: str, i: int) -> float:
        x, y = (t.to(dev) for t in batches.batch(i))
        if name == "ours":
            return train_step(runners[name], opts[name], [(x, y)], 1e-3, 1.0, autocast_dtype=dtype)
        return _nanogpt_step(runners[name], opts[name], x, y, 1e-3, 1.0, dtype)

    for i in range(3):  # warm-up: allocator, kernels, compilation
        for name in models:
            step(name, i)
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    losses = {name: [] for name in models}
    for i in range(steps):
        # Each model goes first on every other step, so neither always runs on a warm cache.
        order = list(models) if i % 2 == 0 else list(models)[::-1]
        for name in order:
            t, c = time.perf_counter(), time.process_time()
            losses[name].append(step(name, 100 + i))
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    tokens = batch_size * batches.block_size
    tps = {name: round(tokens / statistics.median(ts)) for name, ts in wall.items()}
    per_cpu = {name: round(tokens / statistics.median(ts)) for name, ts in cpu.items()}
    if profile:
        from torch.profiler import profile as torch_profile

        for name in models:
            with torch_profile() as prof:
                step(name, 0)
            print(f"--- one training step, {name} ---")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return {
        "bench": "train vs nanoGPT model.py",
        "model": preset,
        "params_M": round(ours.num_params() / 1e6, 2),
        "batch": f"{batch_size}x{batches.block_size}",
        "device": device,
        "autocast": str(dtype).removeprefix("torch.") if dtype else None,
        "compile": compile,
        "fused_adamw": fused,
        "steps": steps,
        "first_loss": {k: round(v, 4) for k, v in first.items()},
        "last_loss": {k: round(v[-1], 3) for k, v in losses.items()},
        "finite": all(math.isfinite(v) for ls in losses.values() for v in ls),
        "tokens_per_s": tps,
        "ratio_ours_to_nanogpt": round(tps["ours"] / tps["nanoGPT"], 3),
        "tokens_per_cpu_s": per_cpu,
        "cpu_ratio_ours_to_nanogpt": round(per_cpu["ours"] / per_cpu["nanoGPT"], 3),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


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
    p.add_argument(
        "--nanogpt", metavar="PATH", help="karpathy/nanoGPT's model.py, to compare against it"
    )
    p.add_argument("--device", default="cpu", help="with --nanogpt: cpu or cuda")
    p.add_argument("--autocast", choices=["bf16", "fp16"], help="with --nanogpt: autocast dtype")
    p.add_argument("--compile", action="store_true", help="with --nanogpt: torch.compile both")
    p.add_argument("--fused", action="store_true", help="with --nanogpt: fused AdamW (CUDA)")
    p.add_argument("--profile", action="store_true", help="with --nanogpt: profile one step each")
    args = p.parse_args(argv)
    from ..cli.train import PRESETS

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.nanogpt:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[args.autocast]
        result = compare_nanogpt(
            args.nanogpt,
            args.preset,
            args.batch_size,
            args.block_size,
            args.rounds * args.steps,
            device=args.device,
            dtype=dtype,
            compile=args.compile,
            fused=args.fused,
            profile=args.profile,
        )
        print(json.dumps(result))
        return 0
    print(
        "nanoGPT comparison skipped: no --nanogpt PATH/TO/model.py (karpathy/nanoGPT's own); "
        "comparing against the plain nanoGPT-style model written in this file",
        file=sys.stderr,
    )
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
