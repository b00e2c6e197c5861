"""The checks of notebook 08: the LoRA layer, freezing the base, merging."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2course import checks

from .conftest import assert_right, assert_stub, assert_wrong


def lora(bug=None):
    class LoRALinear(nn.Linear):
        def __init__(self, in_features, out_features, rank, alpha, bias=True):
            super().__init__(in_features, out_features, bias=bias)
            self.scaling = rank / alpha if bug == "scaling_attr" else alpha / rank
            a_shape, b_shape = (rank, in_features), (out_features, rank)
            if bug == "swapped":
                a_shape, b_shape = b_shape, a_shape
            self.lora_A = nn.Parameter(torch.empty(a_shape))
            init_b = torch.randn if bug == "b_random" else torch.zeros
            self.lora_B = nn.Parameter(init_b(b_shape))
            if bug == "a_zero":
                nn.init.zeros_(self.lora_A)
            elif bug != "a_empty":
                nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            if bug != "trainable_base":
                self.weight.requires_grad_(False)
                if self.bias is not None:
                    self.bias.requires_grad_(False)

        def forward(self, x):
            base = F.linear(x, self.weight, self.bias)
            update = x @ self.lora_A.T @ self.lora_B.T
            if bug == "no_scale":
                return base + update
            if bug == "no_base":
                return self.scaling * update
            if bug == "ba":
                return base + self.scaling * (x @ self.lora_B @ self.lora_A)
            if bug == "no_bias":
                return x @ self.weight.T + self.scaling * update
            return base + self.scaling * update

    return LoRALinear


LORA_WRONG = [
    ("swapped", "A and B are swapped"),
    ("b_random", "lora_B does not start at zero"),
    ("a_zero", "lora_A starts at zero too"),
    ("a_empty", "torch.empty"),
    ("trainable_base", "the base weight (or bias) is trainable"),
    ("scaling_attr", "alpha / rank"),
    ("no_scale", "the update is not scaled"),
    ("no_base", "the base layer's output is missing"),
    ("ba", "the wrong way round"),
    ("no_bias", "the bias is missing"),
]


@pytest.mark.parametrize("bug, expect", LORA_WRONG, ids=[b for b, _ in LORA_WRONG])
def test_lora_linear_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_lora_linear, lora(bug), expect)


def mark(model, bug=None):
    for name, p in model.named_parameters():
        is_adapter = name.endswith(("lora_A", "lora_B"))
        if bug == "all":
            p.requires_grad_(False)
        elif bug == "inverted":
            p.requires_grad_(not is_adapter)
        elif bug == "weights_only":
            if name.endswith("weight"):
                p.requires_grad_(False)
        else:
            p.requires_grad_(is_adapter)
    if bug == "linear_only":
        for p in model.parameters():
            p.requires_grad_(True)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.requires_grad_(False)
                if m.bias is not None:
                    m.bias.requires_grad_(False)
    if bug == "modules":
        for p in model.parameters():
            p.requires_grad_(True)
        for m in model.modules():
            m.requires_grad = False
    return model


MARK_WRONG = [
    ("all", "nothing is trainable"),
    ("inverted", "the condition is inverted"),
    ("weights_only", "The biases are parameters too"),
    ("linear_only", "LayerNorms and embeddings are parameters too"),
    ("modules", "nothing was frozen"),
]


@pytest.mark.parametrize("bug, expect", MARK_WRONG, ids=[b for b, _ in MARK_WRONG])
def test_mark_only_lora_trainable_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_mark_only_lora_trainable, lambda m: mark(m, bug), expect)


def merged(layer, bug=None):
    W, A, B, s = layer.weight, layer.lora_A, layer.lora_B, layer.scaling
    if bug == "in_place":
        return W.add_(s * (B @ A))
    return {
        None: lambda: W + s * (B @ A),
        "transposed_update": lambda: W + s * (A.T @ B.T),
        "no_scale": lambda: W + B @ A,
        "only_update": lambda: s * (B @ A),
        "all_transposed": lambda: (W + s * (B @ A)).T,
        "inverse_scale": lambda: W + (B @ A) / s,
        "ab": lambda: W + s * (A @ B),
    }[bug]()


MERGED_WRONG = [
    ("transposed_update", "transposed"),
    ("no_scale", "not scaled"),
    ("only_update", "only the update"),
    ("all_transposed", "the whole weight is transposed"),
    ("inverse_scale", "the scaling is upside down"),
    ("in_place", "changed the layer's weight in place"),
    ("ab", "only one order gives (out, in)"),
]


@pytest.mark.parametrize("bug, expect", MERGED_WRONG, ids=[b for b, _ in MERGED_WRONG])
def test_merged_weight_wrong_solutions_are_named(bug, expect):
    assert_wrong(checks.check_merged_weight, lambda layer: merged(layer, bug), expect)


class LoRAByComposition(nn.Linear):
    """Right, another way: normal init for A, the update as one F.linear of B A."""

    def __init__(self, in_features, out_features, rank, alpha, bias=True):
        super().__init__(in_features, out_features, bias=bias)
        self.weight.requires_grad = False
        if bias:
            self.bias.requires_grad = False
        self.lora_A = nn.Parameter(torch.randn(rank, in_features) / rank)
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        self.scaling = alpha / rank

    def forward(self, x):
        return super().forward(x) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling


def mark_by_flag(model):
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name
    return model


RIGHT = [
    (checks.check_lora_linear, lora()),
    (checks.check_lora_linear, LoRAByComposition),
    (checks.check_mark_only_lora_trainable, mark),
    (checks.check_mark_only_lora_trainable, mark_by_flag),
    (checks.check_merged_weight, merged),
    (checks.check_merged_weight, lambda layer: torch.addmm(layer.weight, layer.lora_B, layer.lora_A, alpha=layer.scaling)),
]  # fmt: skip


@pytest.mark.parametrize("check, right", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_other_right_solutions_pass(check, right):
    assert_right(check, right)


class StubLoRA(nn.Linear):
    def __init__(self, in_features, out_features, rank, alpha, bias=True):
        super().__init__(in_features, out_features, bias=bias)
        raise NotImplementedError


def _stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize(
    "check, stub",
    [
        (checks.check_lora_linear, StubLoRA),
        (checks.check_mark_only_lora_trainable, _stub),
        (checks.check_merged_weight, _stub),
    ],
)
def test_stub_is_not_done_yet(check, stub):
    assert_stub(check, stub)
