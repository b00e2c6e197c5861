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
    device, B = torch.device(args.device), args.batch
    dtype = DTYPES[args.dtype or ("fp32" if device.type == "cpu" else "fp16")]
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    print(
        f"attention, B={B}, 12 heads x 64, causal, {dtype}, {device_label(device)}, "
        f"torch {torch.__version__}"
    )
    print(
        f"{'T':>6} {'ours ms':>10} {'torch ms':>10} {'ours/torch':>11} {'max diff':>10} {'weights MiB':>12}"
    )
    ok = True
    for T in [int(t) for t in args.lengths.split(",")]:
        g = torch.Generator(device="cpu").manual_seed(T)
        q, k, v = (
            torch.randn(B, 12, T, 64, generator=g).to(device=device, dtype=dtype) for _ in range(3)
        )  # (B, nh, T, hd)
        ours = partial(scaled_dot_product_attention, q, k, v, mask=causal_mask(T, device=device))
        theirs = partial(F.scaled_dot_product_attention, q, k, v, is_causal=True)
        with torch.no_grad():
            t_ours, t_torch = (
                best_of(ours, device, args.repeat),
                best_of(theirs, device, args.repeat),
            )
            out = ours()
            max_diff = (out.float() - theirs().float()).abs().max().item()
        finite = bool(torch.isfinite(out).all())
        ok &= finite
        # The (B, nh, T, T) weights the explicit version stores and the fused kernels avoid.
        weights_mib = B * 12 * T * T * q.element_size() / 2**20
        print(
            f"{T:>6} {1e3 * t_ours:>10.3f} {1e3 * t_torch:>10.3f} {t_ours / t_torch:>10.1f}x "
            f"{max_diff:>10.2e} {weights_mib:>12.1f}" + ("" if finite else "  NOT FINITE")
        )
    return 0 if ok else 1
