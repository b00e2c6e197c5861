"""Generation speed: ours with and without the KV cache, part 7's fast decoder, and
transformers' ``generate``.

    python -m gpt2course bench generate                      # gpt2 shape, CPU, batch 1
    python -m gpt2course bench generate --device cuda --batch-sizes 1,8 --profile

Random weights of a real GPT-2 shape (speed does not depend on the values), one copy shared
by every implementation, greedy decoding, a warm-up run first. Prints tokens/s (new tokens
over all rows per second), whether each produced the first row's ids (exit 1 if not), peak
GPU memory on cuda, and the memory-bandwidth bound: at batch B each step reads every weight
once, so no decoder can beat B * bandwidth / weight bytes tokens/s. ``--model tiny`` is a
2-layer shape, for checking that the benchmark runs (CI).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch.profiler import ProfilerActivity, profile

from gpt2course.device import pick_dtype
from gpt2course.fastgen import FastGenerator
from gpt2course.generation import generate
from gpt2course.model import MODEL_NAMES, GPTConfig

from ._timing import best_of, hf_greedy, parser, sync, timed

# Peak memory bandwidth (GB/s) by GPU name, for the decoding bound; the first match wins.
BANDWIDTH_GBS = {"H200": 4800, "H100 PCIe": 2000, "H100": 3350, "A100": 2039}
BANDWIDTH_GBS |= {"L4": 300, "T4": 320, "A10": 600}


def bandwidth_gbs(device: torch.device) -> float | None:
    """The device's published memory bandwidth in GB/s, or None when it is not in the table."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((bw for key, bw in BANDWIDTH_GBS.items() if key in name), None)


def copy_bandwidth_gbs(device: torch.device, gib: float = 0.5, repeats: int = 5) -> float:
    """This machine's memory bandwidth, measured: the best of a few copies of a buffer far
    larger than any cache (bytes read plus bytes written, over the time)."""
    src = torch.ones(int(gib * 2**30) // 4, device=device)
    dst = torch.empty_like(src)
    best = min(timed(partial(dst.copy_, src), device)[0] for _ in range(repeats))
    return 2 * src.numel() * 4 / best / 1e9


def matvec_seconds(model, device: torch.device, repeats: int = 5) -> float:
    """The time of one decoding step's matrix products alone: one row through every 2-D
    weight the step reads, in the model's own layout (the floor of a step, without the rest)."""
    weights = [w for name, w in model.named_parameters() if w.dim() == 2 and "wpe" not in name]
    x = {
        n: torch.ones(1, n, device=device, dtype=weights[0].dtype) for w in weights for n in w.shape
    }

    def products() -> None:
        with torch.inference_mode():
            for w in weights:  # (out, in) for nn.Linear; the tied head is wte, (vocab, C)
                x[w.size(1)] @ w.T

    return best_of(products, device, repeats)


def build_models(name: str, device: torch.device, dtype: torch.dtype):
    """A random-weight transformers GPT-2 of this shape and our GPT holding the same weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from gpt2course.pretrained import from_transformers
    from gpt2course.pretrained.convert import hf_config_dict

    tiny = GPTConfig(n_layer=2, n_head=2, n_embd=64, context_length=256)  # GPT-2's vocabulary
    config = tiny if name == "tiny" else GPTConfig.from_name(name)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: gpt2-xl's init on a CPU takes a minute
        hf = GPT2LMHeadModel(GPT2Config(**hf_config_dict(config))).to(dtype).eval()
    return hf, from_transformers(hf)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one row per (implementation, batch size)."""
    p = parser("generate", __doc__)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--model", default="gpt2", choices=[*MODEL_NAMES, "tiny"], help="the shape")
    p.add_argument("--batch-sizes", default="1", help="comma-separated, e.g. 1,8")
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--prompt-tokens", type=int, default=20)
    p.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="memory bandwidth in GB/s for the bound (default: the GPU's, by name)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs per implementation, interleaved; the best is reported")  # fmt: skip
    p.add_argument("--skip-no-cache", action="store_true", help="skip the slow no-cache row")
    p.add_argument("--skip-hf", action="store_true", help="skip transformers")
    p.add_argument("--skip-fast", action="store_true", help="skip part 7's fast decoder")
    p.add_argument("--profile", action="store_true", help="profile 3 decoding steps")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda asked for, but torch sees no GPU")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = pick_dtype(device)
    bandwidth = args.bandwidth_gbs or bandwidth_gbs(device)
    if bandwidth is None:  # a CPU: measure it, in this run, on these threads
        bandwidth = copy_bandwidth_gbs(device)
        print(f"memory bandwidth, measured by copying 0.5 GiB: {bandwidth:.1f} GB/s")

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

    impls: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
        "ours, KV cache": lambda i, n: generate(ours, i, n, temperature=0, use_cache=True),
        "ours, no cache": lambda i, n: generate(ours, i, n, temperature=0, use_cache=False),
        "ours, fast (graph)": lambda i, n: fast.generate(i, n, temperature=0),
        "transformers generate": lambda i, n: hf_greedy(hf, i, n),
    }
    skipped = dict(
        zip(list(impls)[1:], [args.skip_no_cache, args.skip_fast, args.skip_hf], strict=True)
    )
    impls = {name: fn for name, fn in impls.items() if not skipped.get(name)}
    if "ours, fast (graph)" in impls:  # part 7's static KV cache, one CUDA graph per step on a GPU
        fast = FastGenerator(ours, max_len=args.prompt_tokens + args.new_tokens)

    header = f"{'implementation':<24}{'batch':>6}{'tokens/s':>12}{'ms/step':>10}"
    header += f"{'same ids':>10}" + (f"{'peak GiB':>10}" if device.type == "cuda" else "")
    print(header, flush=True)
    differ = 0
    for B in [int(b) for b in args.batch_sizes.split(",")]:
        g = torch.Generator().manual_seed(B)
        idx = torch.randint(0, ours.config.vocab_size, (B, args.prompt_tokens), generator=g).to(
            device
        )
        for fn in impls.values():
            fn(idx, 5)  # warm-up: kernels, allocator, caches, the graph capture
        # Interleaved repeats, best of each: on a shared machine the load changes from one
        # run to the next, and the fastest run is the one least disturbed.
        best: dict[str, float] = {}
        outs: dict[str, torch.Tensor] = {}
        peak: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, fn in impls.items():
                run = partial(fn, idx, args.new_tokens)
                seconds, out = timed(run, device, reset_peak=True)
                best[name] = min(best.get(name, float("inf")), seconds)
                outs[name] = out
                if device.type == "cuda":
                    peak[name] = torch.cuda.max_memory_allocated(device) / 2**30
        first = outs["ours, KV cache"]
        rates = {}
        for name, seconds in best.items():
            same = torch.equal(outs[name], first)
            differ += not same
            rates[name] = B * args.new_tokens / seconds
            row = f"{name:<24}{B:>6}{rates[name]:>12.1f}{1000 * seconds / args.new_tokens:>10.2f}"
            print(row + f"{'yes' if same else 'NO':>10}" + (f"{peak[name]:>10.2f}" if peak else ""))
        for name in ("ours, KV cache", "ours, fast (graph)"):
            if name in rates and "transformers generate" in rates:
                ratio = rates[name] / rates["transformers generate"]
                print(f"{'':<4}batch {B}: {name} / transformers = {ratio:.2f}x")
        if bandwidth:
            bound = B * bandwidth * 1e9 / weight_bytes
            print(
                f"{'':<4}batch {B}: bandwidth bound {bound:,.0f} tokens/s "
                f"({weight_bytes / 1e9:.2f} GB of weights per step at {bandwidth:g} GB/s); "
                f"the fastest row reaches {max(rates.values()) / bound:.1%} of it",
                flush=True,
            )
        if B == 1:  # where a step's time goes: the matrix products alone, against the whole step
            floor = matvec_seconds(ours, device)
            step = 1 / rates["ours, KV cache"]  # seconds per token at batch 1
            print(
                f"{'':<4}batch 1: the step's matrix products alone take {1000 * floor:.2f} ms "
                f"({weight_bytes / floor / 1e9:.1f} GB/s of weights), {floor / step:.0%} of the "
                f"{1000 * step:.2f} ms step with the cache",
                flush=True,
            )
    if args.profile:  # the fast decoder where there is one: the row a GPU is meant to win
        name = "ours, fast (graph)" if "ours, fast (graph)" in rates else "ours, KV cache"
        print(f"profile of 3 decoding steps, {name}, batch {B} (prompt included):")
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            impls[name](idx, 3)
            sync(device)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=15))
    return 1 if differ else 0
