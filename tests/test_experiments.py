"""Part 4's residual experiment: the ordering notebook 04 states must hold, whatever the seed."""

import pytest
import torch.nn as nn

from gpt2course.experiments import RESIDUAL_SETTINGS, residual_gradients
from gpt2course.model import MLP


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_residual_gradient_at_the_input_is_by_far_the_smallest(seed):
    g = {s: residual_gradients(s, depth=48, seed=seed) for s in RESIDUAL_SETTINGS}
    with_res = min(g["pre-LN"].input_grad_norm, g["post-LN"].input_grad_norm)
    # Notebook 04 says "orders of magnitude": at least 1000x less than either residual stack.
    assert g["no residual"].input_grad_norm < with_res / 1000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residuals_keep_the_per_layer_gradient_flat_and_without_it_fades(seed):
    for setting in ("pre-LN", "post-LN"):
        norms = residual_gradients(setting, depth=48, seed=seed).layer_grad_norms
        assert max(norms) / min(norms) < 2, setting
    norms = residual_gradients("no residual", depth=48, seed=seed).layer_grad_norms
    # Fades toward the input: the first sublayer gets under 1% of what the last one gets.
    assert norms[0] < norms[-1] / 100
    assert norms[0] < norms[len(norms) // 2] < norms[-1]


def test_pre_and_post_ln_pass_the_same_gradient_at_initialisation():
    # The notebook says the two orders do not differ at initialisation in this stack.
    pre = residual_gradients("pre-LN", seed=0).input_grad_norm
    post = residual_gradients("post-LN", seed=0).input_grad_norm
    assert 0.5 < pre / post < 2


def test_gradient_matches_a_hand_built_stack():
    # An independent forward pass in plain torch must give the same input gradient.
    import math

    import torch
    import torch.nn.functional as F

    got = residual_gradients("pre-LN", depth=3, width=16, seed=5)
    torch.manual_seed(5)
    from gpt2course.model import GPTConfig

    cfg = GPTConfig(n_embd=16, n_head=1, n_layer=3, n_positions=8, vocab_size=100)
    mlps = [MLP(cfg) for _ in range(3)]
    for m in mlps:
        nn.init.normal_(m.c_fc.weight, std=0.02)
        nn.init.zeros_(m.c_fc.bias)
        nn.init.normal_(m.c_proj.weight, std=0.02 / math.sqrt(6))
        nn.init.zeros_(m.c_proj.bias)
    read_out = torch.randn(16, 100) / 4
    x = torch.randn(4, 8, 16, requires_grad=True)
    targets = torch.randint(100, (4, 8))
    h = x
    for m in mlps:
        h = h + m(F.layer_norm(h, (16,)))
    logits = F.layer_norm(h, (16,)) @ read_out
    F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    assert got.input_grad_norm == pytest.approx(x.grad.norm().item(), rel=1e-5)


def test_learner_sublayer_and_bad_input():
    prof = residual_gradients("no residual", depth=4, make_sublayer=MLP)
    assert len(prof.layer_grad_norms) == 4
    with pytest.raises(ValueError, match="choose from"):
        residual_gradients("pre-ln")


def test_mistake_pairs_and_preference_rate():
    import torch

    from gpt2course import instruct
    from gpt2course.experiments import mistake_pairs, preference_rate
    from gpt2course.model import GPT, GPTConfig
    from gpt2course.preference import PreferencePair

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, n_positions=128, n_layer=1, n_head=2, n_embd=16))
    model.eval()
    tok = instruct.ByteTokenizer()
    examples = instruct.make_tasks(6, seed=0)
    pairs = mistake_pairs(model, examples, tok)
    answers = instruct.greedy_answers(model, [e.instruction for e in examples], tok, 12)
    assert len(pairs) == sum(
        a.strip() != e.response for a, e in zip(answers, examples, strict=True)
    )
    # The rejected answer is the model's own greedy one: it must not prefer the right answer.
    rate, _ = preference_rate(model, pairs, tok)
    assert rate < 0.5
    swapped = [PreferencePair(p.instruction, p.rejected, p.chosen) for p in pairs]
    assert preference_rate(model, swapped, tok)[0] == pytest.approx(1 - rate)
    with pytest.raises(ValueError, match="no preference pairs"):
        preference_rate(model, [], tok)
