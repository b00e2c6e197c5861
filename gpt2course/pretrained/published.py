"""The check that real GPT-2 weights are in a model: its greedy text, as recorded outside."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..generation import generate

# Recorded outside this project: Hugging Face transformers' test suite
# (tests/models/gpt2/test_modeling_gpt2.py, test_gpt2_sample / greedy generation of "The dog")
# gives these 18 new tokens for gpt2 under greedy decoding:
# "The dog was found in a field near the intersection of West and West Streets.\n\nThe dog"
PUBLISHED_PROMPT = [464, 3290]
PUBLISHED_GREEDY = [373, 1043, 287, 257, 2214, 1474, 262, 16246, 286, 2688, 290, 2688, 27262, 13]
PUBLISHED_GREEDY += [198, 198, 464, 3290]


def greedy_ids(model: nn.Module, ids: list[int], n: int) -> list[int]:
    """``n`` greedy tokens after ``ids`` from any module mapping ids (B, T) to logits (B, T, vocab)."""
    idx = torch.tensor([ids], device=next(model.parameters()).device)
    return generate(model, idx, n, temperature=0)[0, len(ids) :].tolist()
