"""Small experiments the notebooks run and the tests check, so both use the same code:
an embedding table trained for a few seconds (part 2), deep stacks with pre-LN, post-LN or
no residuals (part 4), and the base that part 9 turns into a chat model (GPT-2 where its
weights are at hand, else a small Shakespeare base), with preference pairs from its own
mistakes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .chat import ChatTokenizer, chat_tokenizer, greedy_replies
from .data import RandomBatches, load_text
from .files import CheckpointError
from .model import GPT, MLP, GPTConfig
from .preference import PreferencePair, sequence_logprobs
from .pretrained import load_pretrained
from .train import TrainConfig, train

RESIDUAL_SETTINGS = ("pre-LN", "post-LN", "no residual")


@dataclass(frozen=True)
class GradientProfile:
    """Gradient norms of one deep stack: per sublayer's parameters, and at the input."""

    setting: str
    layer_grad_norms: list[float]  # index 0 is the sublayer nearest the input
    input_grad_norm: float


def _shakespeare_bytes() -> torch.Tensor:
    """Tiny Shakespeare as byte ids, (N,)."""
    return torch.tensor(list(load_text("shakespeare").encode("utf-8")))


def byte_embeddings(text: str, n_embd: int = 16, steps: int = 300, seed: int = 0) -> torch.Tensor:
    """A (256, n_embd) table of byte vectors learned by predicting the next byte from the
    current one alone (``wte``, then a linear head: a bigram model). Bytes that are followed
    by the same kinds of bytes end up with similar vectors; bytes absent from ``text`` keep
    their random start.

    Each step sees every byte pair of the text at once, through their counts: the full loss,
    with no sampling, in milliseconds.
    """
    b = torch.tensor(list(text.encode("utf-8")))
    if len(b) < 2:
        raise ValueError("the text needs at least 2 bytes (one byte and the one after it)")
    counts = torch.zeros(256, 256).index_put_(
        (b[:-1], b[1:]), torch.ones(len(b) - 1), accumulate=True
    )
    weights = counts / counts.sum()  # (256, 256): how often byte a is followed by byte b
    torch.manual_seed(seed)
    wte, head = nn.Embedding(256, n_embd), nn.Linear(n_embd, 256)
    opt = torch.optim.Adam([*wte.parameters(), *head.parameters()], lr=0.05)
    for _ in range(steps):
        logp = F.log_softmax(head(wte.weight), dim=-1)  # (256, 256): row a predicts what follows a
        loss = -(weights * logp).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return wte.weight.detach()


def nearest(table: torch.Tensor, row: int, k: int = 5, among: list[int] | None = None) -> list[int]:
    """The ``k`` rows of ``table`` nearest to row ``row`` by cosine similarity, itself left
    out; only rows in ``among`` (e.g. the bytes that occur in the text), when given."""
    unit = F.normalize(table, dim=-1)
    sims = unit @ unit[row]  # (rows,)
    if among is not None:
        keep = torch.zeros_like(sims, dtype=torch.bool)
        keep[among] = True
        sims[~keep] = -2.0
    sims[row] = -2.0
    return sims.topk(k).indices.tolist()


class _Stack(nn.Module):
    """``depth`` sublayers joined in one of ``RESIDUAL_SETTINGS``, at GPT-2's initialisation."""

    def __init__(self, setting: str, depth: int, width: int, make_sublayer) -> None:
        super().__init__()
        if setting not in RESIDUAL_SETTINGS:
            choices = ", ".join(RESIDUAL_SETTINGS)
            raise ValueError(f"unknown setting {setting!r}; choose from {choices}")
        if depth < 1 or width < 4:
            raise ValueError(f"need depth >= 1 and width >= 4, got depth={depth}, width={width}")
        config = GPTConfig(n_embd=width, n_head=1, n_layer=depth, context_length=8, vocab_size=100)
        self.setting = setting
        self.sublayers = nn.ModuleList((make_sublayer or MLP)(config) for _ in range(depth))
        # GPT-2's initialisation (what our GPT applies): N(0, 0.02) weights, zero biases, and
        # the projections back into the stream scaled by 1/sqrt(2 * layers).
        for name, module in self.sublayers.named_modules():
            if isinstance(module, nn.Linear):
                std = 0.02 / math.sqrt(2 * depth) if name.endswith("c_proj") else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)

    def forward(self, h: torch.Tensor, sums: list[float] | None = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), normalised; ``sums`` collects the std of each sum."""
        for sublayer, ln in zip(self.sublayers, self.norms, strict=True):
            if self.setting == "pre-LN":
                f = sublayer(ln(h))
                out = h + f  # GPT-2
            elif self.setting == "post-LN":
                f = sublayer(h)
                out = ln(h + f)  # the original Transformer
            else:
                f = out = sublayer(ln(h))
            if sums is not None:  # post-LN's LayerNorm divides the sum, and its gradient, by this
                sums.append((f if self.setting == "no residual" else h + f).std(-1).mean().item())
            h = out
        # Post-LN's stream is already normalised; the other two need GPT-2's ln_f.
        return h if self.setting == "post-LN" else self.ln_f(h)

    def layer_grad_norms(self) -> list[float]:
        return [
            torch.cat([p.grad.flatten() for p in s.parameters()]).norm().item()
            for s in self.sublayers
        ]


def residual_gradients(
    setting: str,
    depth: int = 48,
    width: int = 64,
    seed: int = 0,
    make_sublayer: Callable[[GPTConfig], nn.Module] | None = None,
) -> GradientProfile:
    """Backpropagate a next-token-style loss through ``depth`` MLP sublayers in one setting.

    ``setting`` is one of ``RESIDUAL_SETTINGS``. The loss is the cross-entropy of a fixed
    random read-out of the final (normalised) stream against random targets, so it depends
    on the input. ``make_sublayer(config)`` builds each sublayer (default: the package's MLP).
    """
    torch.manual_seed(seed)
    stack = _Stack(setting, depth, width, make_sublayer)
    vocab = 100
    read_out = torch.randn(width, vocab) / math.sqrt(width)
    x = torch.randn(4, 8, width, requires_grad=True)
    targets = torch.randint(vocab, (4, 8))
    loss = F.cross_entropy((stack(x) @ read_out).flatten(0, 1), targets.flatten())
    loss.backward()
    return GradientProfile(setting, stack.layer_grad_norms(), x.grad.norm().item())


@dataclass(frozen=True)
class TrainingProfile:
    """One deep stack trained from GPT-2's initialisation: what reached the input, step by step."""

    setting: str
    losses: list[float]  # one per step
    input_grad_norms: list[float]  # gradient at the input, one per step
    layer_grad_norms: list[float]  # per sublayer at the last step, index 0 nearest the input
    stream_stds: list[float]  # per sublayer at the end: std of the sum it leaves, unnormalised


def residual_training(
    setting: str,
    depth: int = 48,
    width: int = 64,
    steps: int = 100,
    learning_rate: float = 5e-3,
    context_length: int = 32,
    batch_size: int = 16,
    seed: int = 0,
    make_sublayer: Callable[[GPTConfig], nn.Module] | None = None,
) -> TrainingProfile:
    """Train ``depth`` MLP sublayers in one setting to predict the next byte of Tiny Shakespeare.

    AdamW at ``learning_rate`` from the first step, no warm-up. Each byte gets a learned
    vector of unit scale (the input), the stack, then a linear head. MLP sublayers see one
    position at a time, so the best the stack can learn is a bigram model.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    torch.manual_seed(seed)
    stack = _Stack(setting, depth, width, make_sublayer)
    embed = nn.Embedding(256, width)  # N(0, 1): the same scale as residual_gradients' input
    head = nn.Linear(width, 256, bias=False)
    nn.init.normal_(head.weight, std=0.02)
    params = [*stack.parameters(), *embed.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    batches = RandomBatches(_shakespeare_bytes(), batch_size, context_length, seed=seed).stream()

    losses, input_grads = [], []
    for _ in range(steps):
        xb, yb = next(batches)
        x = embed(xb)  # (B, T, C)
        x.retain_grad()
        loss = F.cross_entropy(head(stack(x)).flatten(0, 1), yb.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        input_grads.append(x.grad.norm().item())
    layer_grads = stack.layer_grad_norms()  # from the last step's backward
    stds: list[float] = []
    with torch.no_grad():
        stack(embed(xb), stds)
    return TrainingProfile(setting, losses, input_grads, layer_grads, stds)


def byte_entropies(text: str) -> tuple[float, float]:
    """In nats: the entropy of ``text``'s bytes, and of each byte given the one before it.

    The losses of a model that knows only how common each byte is, and of the best model
    that sees one byte at a time (a bigram table), on this text.
    """
    b = torch.tensor(list(text.encode("utf-8")))
    if len(b) < 2:
        raise ValueError("need a text of at least 2 bytes")
    counts = torch.bincount(b, minlength=256).double()
    p = counts[counts > 0] / counts.sum()
    pairs = torch.bincount(b[:-1] * 256 + b[1:], minlength=256 * 256).double().view(256, 256)
    seen = pairs > 0
    given = pairs / pairs.sum(1, keepdim=True).clamp(min=1)  # P(next | this)
    joint = pairs / pairs.sum()
    bigram = -(joint[seen] * given[seen].log()).sum().item() + 0.0  # + 0.0: no -0.0
    return -(p * p.log()).sum().item(), bigram


def shakespeare_base(
    n_layer: int = 2,
    n_embd: int = 64,
    steps: int = 300,
    context_length: int = 128,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> GPT:
    """A byte-level GPT pretrained on Tiny Shakespeare for ``steps`` steps (part 6's recipe)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    torch.manual_seed(seed)
    model = GPT(
        GPTConfig(
            vocab_size=256, context_length=context_length, n_layer=n_layer, n_head=4, n_embd=n_embd
        )
    )
    train(
        model,
        RandomBatches(_shakespeare_bytes(), batch_size, context_length, seed=seed),
        None,
        TrainConfig(
            max_steps=steps,
            learning_rate=2e-3,
            min_lr=2e-4,
            warmup_steps=min(50, steps // 5),
            device=str(device),
            progress=False,
        ),
    )
    return model


def chat_base(
    n_layer: int = 2,
    n_embd: int = 64,
    steps: int = 300,
    context_length: int = 160,
    device: str | torch.device = "cpu",
    gpt2: str | None = None,
    allow_standin: bool = False,
) -> tuple[GPT, ChatTokenizer, str]:
    """The base model part 9 tunes, its chat tokenizer, and what it is, in words.

    ``gpt2`` (a name, folder or file: "gpt2", or ``$GPT2COURSE_MODEL``) loads those weights
    with GPT-2's tokenizer; when it is None or cannot be had, the byte-level Shakespeare
    base (``shakespeare_base``) is pretrained here instead. A stand-in checkpoint (random
    weights) would teach nothing, so it is used only with ``allow_standin`` (the tests of
    the GPT-2 path's mechanics), and then named as one: its text is noise, never GPT-2's.
    """
    if gpt2:
        try:
            model = load_pretrained(gpt2, device=device)
        except (CheckpointError, OSError) as e:
            print(f"Could not load {gpt2!r} ({e}); using the byte-level Shakespeare base.")
        else:
            if not model.is_standin:
                what = f"GPT-2 ({model.source}), OpenAI's weights"
                return model.train(), chat_tokenizer("gpt2"), what
            if allow_standin:
                what = f"a RANDOM stand-in in GPT-2's format ({model.source}), NOT GPT-2"
                return model.train(), chat_tokenizer("gpt2"), what
            print(
                "The checkpoint named is a random stand-in, not GPT-2: tuning it would teach nothing, so "
                "this notebook tunes the byte-level Shakespeare base."
            )
    model = shakespeare_base(n_layer, n_embd, steps, context_length, device=device)
    what = f"a byte-level GPT ({n_layer} layers x {n_embd}) pretrained {steps} steps on Shakespeare"
    return model, chat_tokenizer("bytes"), what


def mistake_pairs(model: torch.nn.Module, examples, tokenizer) -> list:
    """Preference pairs from the model's own mistakes: the right answer over its greedy one."""
    asked = [[{"role": "user", "content": e.instruction}] for e in examples]
    answers = greedy_replies(model, tokenizer, asked, 12)
    return [
        PreferencePair(e.instruction, e.response, a)
        for e, a in zip(examples, answers, strict=True)
        if a.strip() != e.response.strip()
    ]


@torch.no_grad()
def preference_rate(model: torch.nn.Module, pairs, tokenizer) -> tuple[float, float]:
    """How often ``model`` gives the preferred answer more probability than the rejected
    one, and the mean log-probability of the preferred answers."""
    if not pairs:
        raise ValueError("no preference pairs to measure; the model made no mistakes")
    inst = [p.instruction for p in pairs]
    chosen = sequence_logprobs(model, inst, [p.chosen for p in pairs], tokenizer)
    rejected = sequence_logprobs(model, inst, [p.rejected for p in pairs], tokenizer)
    return (chosen > rejected).float().mean().item(), chosen.mean().item()
