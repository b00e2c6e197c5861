"""``python -m gpt2course bench attention``: our hand-written attention against torch's fused
``scaled_dot_product_attention``, causal, GPT-2 small's head shape (12 heads of 64).

For each sequence length it prints the time of each, their ratio, the largest difference
between their outputs, and the memory of the (B, n_head, T, T) weight matrix that the
explicit version stores and the fused kernels avoid.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from gpt2course.attention import causal_mask, scaled_dot_product_attention

from ._timing import best_of, device_label, parser

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def run(
    lengths: list[int], device: torch.device, dtype: torch.dtype, batch: int, repeat: int
) -> list[dict]:
    """Time both versions for each sequence length; one dict of figures per length."""
    rows = []
    for T in lengths:
        g = torch.Generator(device="cpu").manual_seed(T)
        q, k, v = (
            torch.randn(batch, 12, T, 64, generator=g).to(device=device, dtype=dtype)
            for _ in range(3)
        )  # (B, nh, T, hd)
        ours = partial(scaled_dot_product_attention, q, k, v, mask=causal_mask(T, device=device))
        theirs = partial(F.scaled_dot_product_attention, q, k, v, is_causal=True)
        with torch.no_grad():
            t_ours, t_torch = best_of(ours, device, repeat), best_of(theirs, device, repeat)
            out = ours()
            max_diff = (out.float() - theirs().float()).abs().max().item()
        rows.append(
            dict(
                T=T,
                ours_ms=1e3 * t_ours,
                torch_ms=1e3 * t_torch,
                ratio=t_ours / t_torch,
                max_diff=max_diff,
                finite=bool(torch.isfinite(out).all()),
                weights_mib=batch * 12 * T * T * q.element_size() / 2**20,
            )
        )
    return rows


def main(argv: list[str]) -> int:
    p = parser("attention", __doc__)
    p.add_argument("--lengths", default="128,256,512,1024", help="comma-separated sequence lengths")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--dtype", choices=list(DTYPES), default=None, help="default: fp32 on CPU, fp16 on GPU"
    )
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1 gives steadier figures)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("fp32" if device.type == "cpu" else "fp16")]
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    lengths = [int(t) for t in args.lengths.split(",")]
    print(
        f"attention, B={args.batch}, 12 heads x 64, causal, {dtype}, {device_label(device)}, "
        f"torch {torch.__version__}"
    )
    print(
        f"{'T':>6} {'ours ms':>10} {'torch ms':>10} {'ours/torch':>11} {'max diff':>10} {'weights MiB':>12}"
    )
    ok = True
    for r in run(lengths, device, dtype, args.batch, args.repeat):
        ok &= r["finite"]
        print(
            f"{r['T']:>6} {r['ours_ms']:>10.3f} {r['torch_ms']:>10.3f} {r['ratio']:>10.1f}x "
            f"{r['max_diff']:>10.2e} {r['weights_mib']:>12.1f}"
            + ("" if r["finite"] else "  NOT FINITE")
        )
    return 0 if ok else 1
