"""Generation speed: ours with and without the KV cache, and transformers' ``generate``.

    python -m gpt2course bench generate                      # gpt2 shape, CPU, batch 1
    python -m gpt2course bench generate --device cuda --batch-sizes 1,8

Random weights of a real GPT-2 shape (speed does not depend on the values), one copy shared
by both implementations, greedy decoding, a warm-up run first. Prints tokens/s (new tokens
over all rows per second), whether both produced the same ids, peak GPU memory on cuda, and
the memory-bandwidth bound: at batch B each step reads every weight once, so no decoder can
beat B * bandwidth / weight bytes tokens/s.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from ..device import pick_dtype
from ..generation import generate
from ..model import MODEL_NAMES, GPTConfig
from .timing import hf_greedy, timed


def build_models(name: str, device: torch.device, dtype: torch.dtype):
    """A random-weight transformers GPT-2 of this shape and our GPT holding the same weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from ..pretrained import from_transformers
    from ..pretrained.convert import hf_config_dict

    config = GPTConfig.from_name(name)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: fast for the big sizes on a GPU
        hf = GPT2LMHeadModel(GPT2Config(**hf_config_dict(config))).to(dtype).eval()
    return hf, from_transformers(hf)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one row per (implementation, batch size)."""
    p = argparse.ArgumentParser(prog="python -m gpt2course bench generate", description=__doc__)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--model", default="gpt2", choices=MODEL_NAMES, help="shape (random weights)")
    p.add_argument("--batch-sizes", default="1", help="comma-separated, e.g. 1,8")
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--prompt-tokens", type=int, default=20)
    p.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="memory bandwidth in GB/s for the bound (default 3350, H100 SXM, on cuda)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs per implementation, interleaved; the best is reported")  # fmt: skip
    p.add_argument("--skip-no-cache", action="store_true", help="skip the slow no-cache row")
    p.add_argument("--skip-hf", action="store_true", help="skip transformers")
    p.add_argument("--skip-fast", action="store_true", help="skip part 7's fast decoder")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda asked for, but torch sees no GPU")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    dtype = pick_dtype(device)
    bandwidth = args.bandwidth_gbs or (3350.0 if device.type == "cuda" else None)

    hf, ours = build_models(args.model, device, dtype)
    n_params = ours.num_params()
    # Per step every weight is read once; of wpe only one row, so leave it out.
    weight_bytes = (n_params - ours.wpe.weight.numel()) * torch.finfo(dtype).bits // 8
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{args.model} shape, random weights, {n_params:,} parameters, {dtype}, {where}, "
        f"{torch.get_num_threads()} threads; {args.prompt_tokens}-token prompt, "
        f"{args.new_tokens} new tokens, greedy, best of {args.repeats}"
    )

    def hf_generate(idx: torch.Tensor, n: int) -> torch.Tensor:
        return hf_greedy(hf, idx, n)

    impls: list[tuple[str, Callable[[torch.Tensor, int], torch.Tensor]]] = [
        ("ours, KV cache", lambda idx, n: generate(ours, idx, n, temperature=0)),
    ]
    if not args.skip_no_cache:
        impls.append(
            (
                "ours, no cache",
                lambda idx, n: generate(ours, idx, n, temperature=0, use_cache=False),
            )
        )
    if not args.skip_fast:  # part 7's static KV cache, one CUDA graph per step on a GPU
        from ..fastgen import FastGenerator

        fast = FastGenerator(ours, max_len=args.prompt_tokens + args.new_tokens)
        impls.append(("ours, fast (graph)", lambda idx, n: fast.generate(idx, n, temperature=0)))
    if not args.skip_hf:
        impls.append(("transformers generate", hf_generate))

    header = f"{'implementation':<24}{'batch':>6}{'tokens/s':>12}{'ms/step':>10}"
    header += f"{'same ids':>10}" + (f"{'peak GiB':>10}" if device.type == "cuda" else "")
    print(header)
    for B in batch_sizes:
        g = torch.Generator().manual_seed(B)
        idx = torch.randint(0, ours.config.vocab_size, (B, args.prompt_tokens), generator=g)
        idx = idx.to(device)
        for _, fn in impls:
            fn(idx, 5)  # warm-up: kernels, allocator, caches
        # Interleaved repeats, best of each: on a shared machine the load changes from one
        # run to the next, and the fastest run is the one least disturbed.
        best: dict[str, float] = {}
        outs: dict[str, torch.Tensor] = {}
        peak: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, fn in impls:
                seconds, out = timed(
                    lambda fn=fn, idx=idx: fn(idx, args.new_tokens), device, reset_peak=True
                )
                best[name] = min(best.get(name, float("inf")), seconds)
                outs[name] = out
                if device.type == "cuda":
                    peak[name] = torch.cuda.max_memory_allocated(device) / 2**30
        first = outs[impls[0][0]]
        rates = {}
        for name, _ in impls:
            seconds = best[name]
            same = "yes" if torch.equal(outs[name], first) else "NO"
            rates[name] = B * args.new_tokens / seconds
            row = f"{name:<24}{B:>6}{rates[name]:>12.1f}{1000 * seconds / args.new_tokens:>10.2f}"
            row += f"{same:>10}"
            if device.type == "cuda":
                row += f"{peak[name]:>10.2f}"
            print(row)
        if "transformers generate" in rates:
            ratio = rates["ours, KV cache"] / rates["transformers generate"]
            print(f"{'':<4}batch {B}: ours with cache / transformers = {ratio:.2f}x")
            if "ours, fast (graph)" in rates:
                ratio = rates["ours, fast (graph)"] / rates["transformers generate"]
                print(f"{'':<4}batch {B}: ours fast / transformers = {ratio:.2f}x")
        if bandwidth:
            bound = B * bandwidth * 1e9 / weight_bytes
            print(
                f"{'':<4}batch {B}: bandwidth bound {bound:,.0f} tokens/s "
                f"({weight_bytes / 1e9:.2f} GB of weights per step at {bandwidth:g} GB/s)"
            )
    return 0
