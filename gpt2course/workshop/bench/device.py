"""``python -m gpt2course bench device PART [--dry]``: parts of ``scripts/device_check.sh``.

PART is ``fp16`` (the T4 path: fp16 with a GradScaler for generation, training and LoRA) or
``memory`` (peak GPU memory of LoRA vs full fine-tuning); decoding speed is ``bench
generate``. Each prints its figures as it goes, so a run cut short still reports. ``--dry``
runs the same code on the CPU at tiny sizes, so that CI keeps the script from rotting.
"""

from __future__ import annotations

import copy
import math

import torch

from gpt2course.fastgen import FastGenerator
from gpt2course.model import GPT, GPTConfig

from ._timing import parser


def _say(line: str) -> None:
    print(line, flush=True)


def _train(model, batches, d: torch.device, lr: float, steps: int, half: bool, first: int = 0):
    """``steps`` training steps (fp16 autocast + GradScaler when ``half``) on batches from
    ``first`` on: (losses, all finite, the scaler or None)."""
    from gpt2course.train import configure_optimizer, train_step

    opt = configure_optimizer(model, lr)
    scaler = torch.amp.GradScaler(d.type) if half else None
    losses = []
    for i in range(first, first + steps):
        x, y = (t.to(d) for t in batches.batch(i))
        dtype = torch.float16 if half else None
        losses.append(
            train_step(model, opt, [(x, y)], lr, 1.0, autocast_dtype=dtype, scaler=scaler)
        )
    return losses, all(math.isfinite(v) for v in losses), scaler


def fp16_path(dry: bool) -> int:
    """The T4 path on any GPU: fp16 autocast + GradScaler for training and LoRA, fp16 decoding."""
    from gpt2course import lora
    from gpt2course.data import RandomBatches, load_text
    from gpt2course.tokenizer.named import get_tokenizer

    d = torch.device("cpu" if dry else "cuda")
    steps = 3 if dry else 300
    cfg = GPTConfig(vocab_size=256, context_length=128, n_embd=128, n_layer=4, n_head=4)
    if dry:
        cfg = GPTConfig(vocab_size=256, context_length=32, n_embd=32, n_layer=2, n_head=2)
    ids = torch.tensor(get_tokenizer("bytes").encode(load_text("shakespeare")))
    batches = RandomBatches(ids, 16, cfg.context_length, seed=0)
    torch.manual_seed(0)
    base = GPT(cfg).to(d)
    failed = 0
    for kind in ("fp32", "fp16 + GradScaler"):
        model = copy.deepcopy(base)
        losses, ok, scaler = _train(model, batches, d, 2e-3, steps, half=kind != "fp32")
        failed += not ok
        scale = f", final loss scale {scaler.get_scale():.0f}" if scaler else ""
        _say(
            f"train {kind}: {steps} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
            f"{'all finite' if ok else 'INF/NaN'}{scale}"
        )
        if kind == "fp32":
            trained = model
    # Greedy decoding of the fp32-trained model, in fp32 and cast to fp16, from one prompt.
    prompt = torch.tensor([get_tokenizer("bytes").encode("ROMEO:\n")], device=d)
    n = 8 if dry else 60
    want = FastGenerator(trained).generate(prompt, n, temperature=0)
    fp16 = copy.deepcopy(trained).half() if not dry else copy.deepcopy(trained)
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
    model = lora.apply_lora(copy.deepcopy(trained), lora.DEFAULT_TARGETS, rank=8, alpha=16)
    losses, ok, _ = _train(model, batches, d, 1e-3, steps // 3 or 1, half=True, first=10_000)
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


PARTS = {"fp16": fp16_path, "memory": memory}


def main(argv: list[str]) -> int:
    """Run one part of the device check."""
    p = parser("device")
    p.add_argument("part", choices=list(PARTS))
    p.add_argument("--dry", action="store_true", help="on the CPU at tiny sizes (CI)")
    args = p.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print("no CUDA device here; use --dry to run this part on the CPU at tiny sizes")
        return 2
    return PARTS[args.part](args.dry)
