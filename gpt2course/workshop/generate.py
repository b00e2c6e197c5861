"""``python -m gpt2course generate "prompt" --model gpt2``: stream GPT-2's text to the terminal.

The text goes to stdout as it is generated; what model, device and dtype were used goes to
stderr, so that ``... > story.txt`` captures only the text.
"""

from __future__ import annotations

import argparse
import codecs
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the options, load the model, stream the text; 0 on success."""
    p = argparse.ArgumentParser(
        prog="python -m gpt2course generate",
        description="Generate text with GPT-2 (or a checkpoint of yours), streamed as it comes.",
    )
    p.add_argument(
        "prompt", nargs="?", default="", help="text to continue (empty: start from <|endoftext|>)"
    )
    p.add_argument(
        "--model",
        default="gpt2",
        help="gpt2, gpt2-medium, gpt2-large, gpt2-xl, or a folder / .safetensors file (default gpt2)",
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=100, help="how many tokens to add (default 100)"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="0 is greedy; 1 the model's own distribution (default 0.8)",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=50,
        help="sample among the k likeliest tokens; 0 for no limit (default 50)",
    )
    p.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="nucleus sampling: keep the likeliest tokens holding this much probability",
    )
    p.add_argument("--seed", type=int, default=None, help="make the sampling repeatable")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best there is)")
    p.add_argument(
        "--dtype",
        choices=["auto", "float32", "float16", "bfloat16"],
        default="auto",
        help="auto: bf16 where native, fp16 on older GPUs, fp32 on a CPU",
    )
    p.add_argument(
        "--no-fast",
        action="store_true",
        help="use part 5's generate (growing KV cache) instead of the static cache + CUDA graph",
    )
    args = p.parse_args(argv)
    import torch

    from gpt2course import checkpoint, pretrained
    from gpt2course.assets import tiktoken_gpt2
    from gpt2course.device import pick_device, pick_dtype
    from gpt2course.fastgen import FastGenerator
    from gpt2course.files import CheckpointError
    from gpt2course.generation import check_sampling_args, stream

    top_k = args.top_k or None
    try:
        check_sampling_args(args.temperature, top_k, args.top_p)
        if args.max_new_tokens < 0:
            raise ValueError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
        device = pick_device(args.device)
        dtype = pick_dtype(device) if args.dtype == "auto" else getattr(torch, args.dtype)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        model = pretrained.load_pretrained(args.model, device=device, dtype=dtype)
        # A folder from `train --out` names its tokenizer; GPT-2's own folders use GPT-2's.
        tok_name = checkpoint.tokenizer_name(args.model)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if tok_name == "bytes":
        ids = list(args.prompt.encode("utf-8")) or [ord("\n")]
        n_vocab, token_bytes = 256, lambda i: bytes([i])
    else:
        enc = tiktoken_gpt2()
        ids = enc.encode(args.prompt) if args.prompt else [enc.eot_token]
        n_vocab, token_bytes = enc.n_vocab, enc.decode_single_token_bytes
    context_length = model.config.context_length
    if model.config.vocab_size != n_vocab:
        print(
            f"error: the model has {model.config.vocab_size} tokens, its tokenizer "
            f"({tok_name}) {n_vocab}",
            file=sys.stderr,
        )
        return 1
    if len(ids) > context_length:
        print(
            f"error: the prompt is {len(ids)} tokens but {args.model} sees at most {context_length}; "
            f"shorten it (for example keep its last {context_length - min(args.max_new_tokens, context_length // 2)} tokens)",
            file=sys.stderr,
        )
        return 2
    if getattr(model, "is_standin", False):
        print(pretrained.STANDIN_BANNER, file=sys.stderr)
    what = f"{device.type}, {str(dtype).removeprefix('torch.')}, "
    what += "part 5 generate" if args.no_fast else "fast path"
    print(f"[{model.source}, {model.num_params() / 1e6:.0f}M parameters, {what}]", file=sys.stderr)

    gen = None if args.seed is None else torch.Generator().manual_seed(args.seed)
    idx = torch.tensor([ids], device=device)
    sampling = dict(temperature=args.temperature, top_k=top_k, top_p=args.top_p, generator=gen)
    tokens = (
        FastGenerator(model).stream(idx, args.max_new_tokens, **sampling)
        if not args.no_fast
        else stream(model, idx, args.max_new_tokens, use_cache=True, **sampling)
    )

    # A character can span several tokens: decode bytes incrementally, print whole characters.
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    print(args.prompt, end="", flush=True)
    try:
        for tok in tokens:
            print(utf8.decode(token_bytes(int(tok[0]))), end="", flush=True)
    except KeyboardInterrupt:
        pass
    print(utf8.decode(b"", final=True))
    return 0
