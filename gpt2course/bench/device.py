"""``python -m gpt2course bench device PART [--dry]``: the parts of ``scripts/device_check.sh``.

PART is ``decode`` (ours fast vs transformers' generate), ``fp16`` (the T4 path: fp16 with a
GradScaler for generation, training and LoRA) or ``memory`` (peak GPU memory of LoRA vs full
fine-tuning). Each prints its figures as it goes, so a run cut short still reports. ``--dry``
runs the same code on the CPU at tiny sizes, so that CI keeps the script from rotting.
"""

from __future__ import annotations

import argparse
import copy
import math
import warnings

import torch

from ..device import pick_dtype
from ..fastgen import FastGenerator
from ..model import GPT, GPTConfig
from .timing import hf_greedy, sync, timed

# Peak memory bandwidth (GB/s) by GPU name, for the decoding bound; the first match wins.
BANDWIDTH_GBS = [
    ("H200", 4800),
    ("H100 PCIe", 2000),
    ("H100", 3350),
    ("A100", 2039),
    ("L4", 300),
    ("T4", 320),
    ("A10", 600),
]


def bandwidth_gbs(device: torch.device) -> float | None:
    """The device's published memory bandwidth in GB/s, or None when it is not in the table."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((bw for key, bw in BANDWIDTH_GBS if key in name), None)


def _say(line: str) -> None:
    print(line, flush=True)


def decode(dry: bool) -> int:
    """Greedy decoding, ours fast vs transformers' generate: tokens/s, same tokens, bound."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from ..pretrained import from_transformers

    warnings.simplefilter("ignore")
    d = torch.device("cpu" if dry else "cuda")
    dtype = torch.float32 if dry else pick_dtype(d)
    new = 8 if dry else 200
    shapes = [("gpt2", 1), ("gpt2", 8), ("gpt2-xl", 1)]
    failed = 0
    for name, batch in shapes:
        cfg = GPTConfig.from_name(name)
        if dry:
            cfg = GPTConfig(n_layer=2, n_head=2, n_embd=64, vocab_size=1000, n_positions=64)
        torch.manual_seed(0)
        hf_cfg = GPT2Config(
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_embd=cfg.n_embd,
            vocab_size=cfg.vocab_size,
            n_positions=cfg.n_positions,
            attn_pdrop=0.0,
            embd_pdrop=0.0,
            resid_pdrop=0.0,
        )
        with d:  # initialise on the device: gpt2-xl's random init on the CPU takes a minute
            hf = GPT2LMHeadModel(hf_cfg).to(dtype).eval()
        ours = from_transformers(hf)
        idx = torch.randint(0, cfg.vocab_size, (batch, 16), device=d)
        gen = FastGenerator(ours, max_len=16 + new)

        def hf_generate(n: int, hf=hf, idx=idx) -> torch.Tensor:
            return hf_greedy(hf, idx, n)

        gen.generate(idx, 5, temperature=0)  # warm-up: the graph capture
        hf_generate(5)
        t_ours, got = timed(lambda g=gen, i=idx: g.generate(i, new, temperature=0), d)
        t_hf, want = timed(lambda: hf_generate(new), d)
        same = (got[:, -new:] == want[:, -new:]).all(0).tolist()
        first = same.index(False) if False in same else None
        tokens = f"same {new} greedy tokens" if first is None else f"DIFFER from token {first}"
        failed += first is not None
        speedup = t_hf / t_ours
        line = (
            f"decode {name if not dry else 'tiny'} batch {batch} {str(dtype).removeprefix('torch.')} {new} tokens: "
            f"ours fast {batch * new / t_ours:,.0f} tokens/s, transformers "
            f"{batch * new / t_hf:,.0f} tokens/s, {speedup:.2f}x (goal 2x); {tokens}"
        )
        bw = bandwidth_gbs(d)
        if bw:
            # Each step reads every weight once (the tied head counts once) plus the cache.
            weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())
            bound = bw * 1e9 / weight_bytes * batch
            line += f"; bandwidth bound {bound:,.0f} tokens/s, ours at {batch * new / t_ours / bound:.1%}"
        _say(line)
        if speedup < 2 and name == "gpt2" and batch == 1:
            _profile_step(gen, idx, d)
        hf = ours = gen = None  # free this shape's weights before the next one
        if d.type == "cuda":
            torch.cuda.empty_cache()
    return 1 if failed else 0


def _profile_step(gen: FastGenerator, idx: torch.Tensor, d: torch.device) -> None:
    """Where the time of decoding goes: a torch.profiler table of a few steps."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if d.type == "cuda" else [])
    with profile(activities=acts) as prof:
        gen.generate(idx, 3, temperature=0)
        sync(d)
    key = "self_cuda_time_total" if d.type == "cuda" else "self_cpu_time_total"
    _say("2x goal missed: profile of 3 decoding steps (prompt included)")
    _say(prof.key_averages().table(sort_by=key, row_limit=15))


def fp16_path(dry: bool) -> int:
    """The T4 path on any GPU: fp16 autocast + GradScaler for training and LoRA, fp16 decoding."""
    from .. import lora
    from ..data import RandomBatches, load_text
    from ..tokenizer.named import get_tokenizer
    from ..train import configure_optimizer, train_step

    d = torch.device("cpu" if dry else "cuda")
    steps = 3 if dry else 300
    cfg = GPTConfig(vocab_size=256, n_positions=128, n_embd=128, n_layer=4, n_head=4)
    if dry:
        cfg = GPTConfig(vocab_size=256, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    ids = torch.tensor(get_tokenizer("bytes").encode(load_text("shakespeare")))
    batches = RandomBatches(ids, 16, cfg.n_positions, seed=0)
    torch.manual_seed(0)
    base = GPT(cfg).to(d)
    runs: dict[str, GPT] = {}
    failed = 0
    for kind in ("fp32", "fp16 + GradScaler"):
        model = copy.deepcopy(base)
        opt = configure_optimizer(model, 2e-3)
        half = kind != "fp32"
        scaler = torch.amp.GradScaler(d.type) if half else None
        losses = []
        for i in range(steps):
            x, y = (t.to(d) for t in batches.batch(i))
            losses.append(
                train_step(
                    model,
                    opt,
                    [(x, y)],
                    2e-3,
                    1.0,
                    autocast_dtype=torch.float16 if half else None,
                    scaler=scaler,
                )
            )
        ok = all(math.isfinite(v) for v in losses)
        failed += not ok
        scale = f", final loss scale {scaler.get_scale():.0f}" if scaler else ""
        _say(
            f"train {kind}: {steps} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
            f"{'all finite' if ok else 'INF/NaN'}{scale}"
        )
        runs[kind] = model
    # Greedy decoding of the fp32-trained model, in fp32 and cast to fp16, from one prompt.
    prompt = torch.tensor([get_tokenizer("bytes").encode("ROMEO:\n")], device=d)
    n = 8 if dry else 60
    want = FastGenerator(runs["fp32"]).generate(prompt, n, temperature=0)
    fp16 = copy.deepcopy(runs["fp32"]).half() if not dry else copy.deepcopy(runs["fp32"])
    got = FastGenerator(fp16).generate(prompt, n, temperature=0)
    same = (got == want)[0].tolist()
    first = same.index(False) if False in same else None
    failed += first is not None
    what = "fp16" if not dry else "fp32 (dry: the CPU has no fp16 decoding)"
    _say(
        f"greedy {n} tokens, {what} vs fp32 weights: "
        + ("same ids" if first is None else f"DIFFER from position {first - prompt.size(1)}")
    )
    # LoRA on the trained model under fp16 autocast + GradScaler.
    model = lora.apply_lora(copy.deepcopy(runs["fp32"]), lora.DEFAULT_TARGETS, rank=8, alpha=16)
    opt = configure_optimizer(model, 1e-3)
    scaler = torch.amp.GradScaler(d.type)
    losses = []
    for i in range(steps // 3 or 1):
        x, y = (t.to(d) for t in batches.batch(10_000 + i))
        losses.append(
            train_step(model, opt, [(x, y)], 1e-3, 1.0, autocast_dtype=torch.float16, scaler=scaler)
        )
    ok = all(math.isfinite(v) for v in losses)
    failed += not ok
    _say(
        f"LoRA fp16 + GradScaler: {len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
        f"{'all finite' if ok else 'INF/NaN'}"
    )
    return 1 if failed else 0


def memory(dry: bool) -> int:
    """Peak GPU memory of LoRA vs full fine-tuning at the gpt2 shape (measured, not computed)."""
    from .finetuning import bench_lora

    d = torch.device("cpu" if dry else "cuda")
    rows = bench_lora(
        "tiny" if dry else "gpt2", 2 if dry else 10, 2 if dry else 8, 32 if dry else 512, d
    )
    for r in rows:
        _say(
            f"{r['kind']:<4} {r['model']}: trainable {r['trainable']:,} of {r['total']:,}, "
            f"weights+grads+Adam {r['weights_grads_adam_MB']} MB (computed), "
            f"peak CUDA {r['peak_cuda_MB']} MB (measured), {r['ms_per_step']} ms/step"
        )
    return 0


PARTS = {"decode": decode, "fp16": fp16_path, "memory": memory}


def main(argv: list[str]) -> int:
    """Run one part of the device check."""
    p = argparse.ArgumentParser(prog="python -m gpt2course bench device")
    p.add_argument("part", choices=list(PARTS))
    p.add_argument("--dry", action="store_true", help="on the CPU at tiny sizes (CI)")
    args = p.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print("no CUDA device here; use --dry to run this part on the CPU at tiny sizes")
        return 2
    return PARTS[args.part](args.dry)
