"""Profile a training step at notebook 06's config: the learner's GPT (the solutions' pieces,
rebuilt from the workbench that running notebooks/solutions 03-06 fills) against the
reference GPT, same weights, same batches; then GELU's and LayerNorm's forms alone.

    python scripts/profile_learner_step.py [THREADS]
"""

import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

os.environ["GPT2COURSE_WORKBENCH"] = str(
    Path(__file__).resolve().parents[1] / "notebooks/solutions/.gpt2course-workbench"
)
from gpt2course import workbench  # noqa: E402  (after the folder is set)
from gpt2course.model import GPT as RefGPT  # noqa: E402
from gpt2course.model import GPTConfig, lm_loss  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
LGPT = workbench.use("GPT")
cfg = GPTConfig(vocab_size=256, context_length=128, n_embd=128, n_layer=4, n_head=4)
torch.manual_seed(0)
ref = RefGPT(cfg)
mine = LGPT(cfg)
mine.load_state_dict(ref.state_dict(), strict=False)
x = torch.randint(0, 256, (16, 128))
y = torch.randint(0, 256, (16, 128))
opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-3) for n, m in [("ref", ref), ("mine", mine)]}
models = {"ref": ref, "mine": mine}


def step(name):
    m, o = models[name], opts[name]
    o.zero_grad(set_to_none=True)
    loss = lm_loss(m(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    o.step()


for n in models:
    for _ in range(3):
        step(n)
times = {n: [] for n in models}
for _ in range(15):
    for n in models:
        t0 = time.perf_counter()
        step(n)
        times[n].append(time.perf_counter() - t0)
med = {n: sorted(t)[len(t) // 2] * 1000 for n, t in times.items()}
print(
    f"threads {threads}: median step ms: ref {med['ref']:.1f}, learner's {med['mine']:.1f}, ratio {med['mine'] / med['ref']:.2f}x"
)
for n in models:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step(n)
    print(f"--- {n}: 3 steps, top ops by self CPU time")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))

# GELU forms, forward + backward on the MLP's activation at this config (16, 128, 512)

K = 2 * math.sqrt(2 / math.pi)


class SigmoidGELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        s = torch.sigmoid(K * (x + 0.044715 * x**3))
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        return g * (s + x * s * (1 - s) * K * (1 + 3 * 0.044715 * x * x))


forms = {
    "F.gelu tanh": lambda t: F.gelu(t, approximate="tanh"),
    "F.gelu erf": lambda t: F.gelu(t),
    "x*sigmoid composite": lambda t: t * torch.sigmoid(K * (t + 0.044715 * t**3)),
    "sigmoid custom autograd": SigmoidGELU.apply,
    "learner tanh composite": lambda t: (
        0.5 * t * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (t + 0.044715 * t**3)))
    ),
}
a = torch.randn(16, 128, 512, requires_grad=True)
ref_y = F.gelu(a, approximate="tanh")
for name, f in forms.items():
    ts = []
    for _ in range(25):
        t0 = time.perf_counter()
        y = f(a)
        y.backward(torch.ones_like(y))
        ts.append(time.perf_counter() - t0)
        a.grad = None
    err = (f(a) - ref_y).abs().max().item()
    print(f"{name:26s} fwd+bwd median {1000 * sorted(ts)[12]:.2f} ms   max diff vs tanh {err:.1e}")


# LayerNorm: torch's fused kernel against the learner's formula, at (16, 128, 128)
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


x = torch.randn(16, 128, 128, requires_grad=True)
w = torch.ones(128, requires_grad=True)
b = torch.zeros(128, requires_grad=True)
for name, f in {
    "F.layer_norm": lambda: F.layer_norm(x, (128,), w, b),
    "composite": lambda: layer_norm(x, w, b),
}.items():
    ts = []
    for _ in range(30):
        t0 = time.perf_counter()
        y = f()
        y.backward(torch.ones_like(y))
        ts.append(time.perf_counter() - t0)
    print(name, f"{1000 * sorted(ts)[15]:.2f} ms fwd+bwd")
