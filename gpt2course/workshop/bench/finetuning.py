"""``python -m gpt2course bench finetuning``: full fine-tuning against LoRA, and instruction tuning.

``lora``: for one model shape (GPT-2 124M by default, random weights: cost does not depend
on the values), trainable parameters, training memory (weights + gradients + AdamW state,
and peak CUDA memory with activations), time per step and the loss after a few steps on
Tiny Shakespeare, for full fine-tuning and for LoRA.

``text``: notebook 08's run where it has no GPU: a small byte-level base pretrained on the
package's own code, then fine-tuned on Tiny Shakespeare in full and with LoRA; the
validation loss of each (its report card's bands).

``instruct``: exact-match accuracy on the turns of held-out generated conversations before
and after instruction tuning, for the settings of notebook 09 (quick, full), and longer or
from a random initialisation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

import gpt2course
from gpt2course import chat, instruct, lora
from gpt2course.data import RandomBatches, load_text
from gpt2course.device import pick_device, quick_mode
from gpt2course.experiments import shakespeare_base
from gpt2course.model import GPT, GPTConfig
from gpt2course.tokenizer.named import get_tokenizer
from gpt2course.train import TrainConfig, evaluate, train

from ._timing import device_label, parser, timed

# name -> (n_layer, n_embd, steps, batch, lr, tasks, base pretraining steps, n_train, n_held_out);
# "quick" and "full" are notebook 09's two settings.
INSTRUCT_SETTINGS = {
    "quick": (2, 64, 300, 16, 3e-3, ["count", "last"], 60, 2000, 40),
    "full": (2, 128, 1000, 16, 2e-3, None, 200, 4000, 150),
    "longer": (2, 128, 2000, 32, 2e-3, None, 0, 4000, 300),
    "gpu": (4, 128, 6000, 32, 1e-3, None, 0, 4000, 300),
    "pretrained-base": (4, 128, 2000, 32, 2e-3, None, 600, 4000, 300),
}


def _train(model, batches, device, steps: int, lr: float, min_lr: float, warmup: int, **kw):
    """(seconds, history) of ``steps`` steps of ``train`` with no weight decay and no evaluation."""
    cfg = TrainConfig(
        max_steps=steps,
        learning_rate=lr,
        min_lr=min_lr,
        warmup_steps=warmup,
        weight_decay=0.0,
        device=str(device),
        progress=False,
        **kw,
    )
    return timed(lambda: train(model, batches, None, cfg), device)


def bench_lora(
    model_name: str, steps: int, batch: int, block: int, device: torch.device
) -> list[dict]:
    """Full fine-tuning and LoRA (rank 8 on c_attn and the MLP) on one model shape."""
    tok = get_tokenizer("gpt2")
    ids = torch.tensor(tok.encode(load_text("shakespeare")))
    torch.manual_seed(0)
    tiny = GPTConfig(n_layer=4, n_head=4, n_embd=128, context_length=block)
    base = GPT(GPTConfig.from_name(model_name) if model_name.startswith("gpt2") else tiny)
    rows = []
    cuda = device.type == "cuda"
    for kind, lr in [("full", 1e-4), ("lora", 1e-3)]:
        model = copy.deepcopy(base)
        if kind == "lora":
            lora.apply_lora(model, lora.DEFAULT_TARGETS, rank=8, alpha=16)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        batches = RandomBatches(ids, batch, block, seed=0)
        seconds, history = _train(model, batches, device, steps, lr, lr, 0, precision="fp32")
        trainable, total = lora.parameter_counts(model)
        mem = lora.training_memory_bytes(model)
        rows.append(
            {
                "kind": kind,
                "model": model_name,
                "trainable": trainable,
                "total": total,
                "weights_grads_adam_MB": round(mem["total"] / 1e6, 1),
                "peak_cuda_MB": round(torch.cuda.max_memory_allocated() / 1e6, 1) if cuda else None,
                "ms_per_step": round(1000 * seconds / steps, 1),
                "loss_first": round(history.train_loss[0], 3),
                "loss_last": round(history.train_loss[-1], 3),
            }
        )
        del model
    return rows


def bench_text(device: torch.device, seed: int = 0) -> dict:
    """Notebook 08's default run without a GPU (``BASE = "tiny"``): validation losses on Tiny
    Shakespeare of the base, after full fine-tuning and after LoRA; ``seed`` draws the base's
    weights and every batch (0: the notebook's)."""
    tok = get_tokenizer("bytes")
    # The notebook's settings: full, or quick (GPT2COURSE_QUICK=1, as the tests run it).
    q = quick_mode()
    block, n_layer, n_embd = (64, 2, 64) if q else (128, 4, 128)
    base_steps, ft_steps, eval_batches = (150, 40, 4) if q else (1000, 200, 20)
    batch, lr = 16, 1e-3
    code = "\n\n".join(
        p.read_text(encoding="utf-8")
        for p in sorted(Path(gpt2course.__file__).parent.rglob("*.py"))
    )
    torch.manual_seed(seed)
    shape = dict(vocab_size=256, context_length=block, n_layer=n_layer, n_head=4, n_embd=n_embd)
    base = GPT(GPTConfig(**shape))
    code_batches = RandomBatches(torch.tensor(tok.encode(code)), batch, block, seed=3 * seed)
    base_cfg = TrainConfig(max_steps=base_steps, learning_rate=2e-3, min_lr=2e-4,
                           warmup_steps=20, device=str(device), progress=False)  # fmt: skip
    train(base, code_batches, None, base_cfg)
    ids = torch.tensor(tok.encode(load_text("shakespeare")))
    n_train = int(0.9 * len(ids))
    val = RandomBatches(ids[n_train:], batch, block, seed=3 * seed + 2)
    out = {"seed": seed, "base_val": evaluate(base, val, eval_batches)}
    for kind, rate in [("full", lr), ("lora", 10 * lr)]:
        model = copy.deepcopy(base)
        if kind == "lora":
            lora.apply_lora(model, lora.DEFAULT_TARGETS, rank=8, alpha=16)
            lora.mark_only_lora_trainable(model)
        cfg = TrainConfig(max_steps=ft_steps, learning_rate=rate, min_lr=rate / 10,
                          warmup_steps=ft_steps // 10, weight_decay=0.0, eval_interval=ft_steps // 4,
                          eval_batches=eval_batches, device=str(device), progress=False)  # fmt: skip
        train_batches = RandomBatches(ids[:n_train], batch, block, seed=3 * seed + 1)
        history = train(model, train_batches, val, cfg)
        out[f"{kind}_val"] = history.val_loss[-1]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def bench_instruct(name: str, device: torch.device, seed: int = 0) -> dict:
    """Held-out exact match before and after instruction tuning with one setting; ``seed``
    draws the tasks and the base's weights and pretraining batches (0: notebook 09's)."""
    from torch.utils.data import DataLoader

    n_layer, n_embd, steps, batch, lr, tasks, pre, n_train, n_held_out = INSTRUCT_SETTINGS[name]
    tok = chat.chat_tokenizer("bytes")
    train_set, held_out = instruct.conversation_split(n_train, n_held_out, seed=seed, tasks=tasks)
    context = 160  # the longest conversation, three turns, is 139 bytes
    if pre:  # part 6's recipe, then instruction tuning
        model = shakespeare_base(
            n_layer, n_embd, pre, context_length=context, device=device, seed=seed
        )
    else:
        torch.manual_seed(seed)
        shape = dict(
            vocab_size=256, context_length=context, n_layer=n_layer, n_head=4, n_embd=n_embd
        )
        model = GPT(GPTConfig(**shape))
    chat.grow_vocab(model, tok.vocab_size).to(device)
    before = instruct.evaluate(model, held_out, tok)
    rendered = [chat.render_conversation(c.messages(), tok) for c in train_set]
    loader = DataLoader(rendered, batch_size=batch, shuffle=True, collate_fn=chat.collate)
    seconds, _ = _train(model, loader, device, steps, lr, lr / 10, 30)
    after = instruct.evaluate(model, held_out, tok)
    return {
        "setting": name,
        "seed": seed,
        "steps": steps,
        "seconds": round(seconds, 1),
        "before": round(before["all"], 3),
        "after": round(after["all"], 3),
        "per_turn_and_task_after": {k: round(v, 2) for k, v in after.items() if k != "all"},
    }


def main(argv: list[str]) -> int:
    """Run the chosen parts and print one JSON line per result."""
    p = parser("finetuning")
    p.add_argument("--part", choices=["lora", "text", "instruct", "all"], default="all")
    p.add_argument("--model", default="gpt2", help="gpt2 (124M shape) or tiny")
    p.add_argument("--steps", type=int, default=20, help="steps per fine-tuning run (lora part)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--block", type=int, default=256)
    p.add_argument(
        "--settings",
        default="quick,full",
        help=f"instruct settings: {', '.join(INSTRUCT_SETTINGS)}",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="text and instruct parts: base weights, data, tasks"
    )
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    device = pick_device(args.device)
    print(f"device: {device} ({device_label(device)})")
    if args.part in ("lora", "all"):
        for row in bench_lora(args.model, args.steps, args.batch, args.block, device):
            print(json.dumps(row), flush=True)
    if args.part == "text":  # not in "all": it is a report card's band run, minutes long
        print(json.dumps(bench_text(device, args.seed)), flush=True)
    if args.part in ("instruct", "all"):
        for name in args.settings.split(","):
            if name not in INSTRUCT_SETTINGS:
                print(f"unknown setting {name!r}; choose from {', '.join(INSTRUCT_SETTINGS)}")
                return 2
            print(json.dumps(bench_instruct(name, device, args.seed)), flush=True)
    return 0
