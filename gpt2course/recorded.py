"""Full-size results, recorded, for readers who look before they run.

The tests run every notebook in quick mode (small models, few steps) so that CI takes
minutes; the outputs committed with the notebooks come from those runs. A reader on GitHub
would then see a 2-layer model's noise where the notebook promises Shakespeare. So a few
cells, tagged ``record:KEY`` in the notebook's source, are also run at the settings a learner
gets by default, by ``python -m gpt2course notebooks record NN`` (gpt2course.workshop.record);
what they printed and drew is kept here (``gpt2course/recorded/NN_name.json``, with the machine and the date), and the
generator puts a cell after each of them that shows it, labelled as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .device import quick_mode

FOLDER = Path(__file__).parent / "recorded"


def path(slug: str) -> Path:
    """Where the recorded full-size outputs of one notebook are kept."""
    return FOLDER / f"{slug}.json"


def busy(meta: dict) -> str:
    """How busy the machine was during a recorded run, in words for its label."""
    load, cores = meta.get("load"), meta.get("cores")
    if load is None:
        return "(how busy the machine was is not recorded)"
    if load < 1:
        return f"(a quiet machine: load {load:.1f})"
    share = f" on {cores} cores" if cores else ""
    return f"(a shared machine: load {load:.1f}{share}, so slower than it would be alone)"


def show(slug: str, key: str) -> None:
    """Display what cell ``key`` of notebook ``slug`` gave at full size, with its label."""
    from IPython.display import display

    above = (
        "Above: this run, in quick mode (GPT2COURSE_QUICK=1: sizes cut so the tests run in "
        "seconds, not the real result)."
        if quick_mode()
        else "Above: your run."
    )
    # {"meta": {...}, "cells": {KEY: [outputs]}}, written by gpt2course.workshop.record
    record = json.loads(path(slug).read_text(encoding="utf-8")) if path(slug).is_file() else {}
    if key not in record.get("cells", {}):
        print(f"{above}\nNo full-size run of this cell is recorded yet.")
        return
    meta = record["meta"]
    print(
        f"{above}\nRecorded full-size run (the default settings, not quick mode): {meta['date']}, "
        f"{meta['device']}, torch {meta['torch']}, notebook run in {meta['minutes']:.1f} min "
        f"{busy(meta)}.\n"
    )
    for out in record["cells"][key]:
        if out.get("output_type") == "stream":
            text = out.get("text", "")
            print("".join(text) if isinstance(text, list) else text, end="")
        elif "data" in out:
            display(out["data"], raw=True)


# What pushes a figure out of its band, most likely first: the card prints these when the
# learner's figure is above ("high") or below ("low") what the recorded runs reached.
CAUSES: dict[str, dict[str, dict[str, list[str]]]] = {
    "06_pretraining": {
        "validation loss": {
            "high": [
                "wpe or wte left at PyTorch's N(0, 1): GPT-2 starts both at std 0.02 "
                "(a GPT that initialises only its Linear layers ends near 2.6)",
                "the learning rate: no warmup, a schedule that decays too early, or a "
                "learning rate changed from 2e-3 (plot lr_schedule over the run)",
                "train_step: gradients not clipped, or not zeroed between steps (spikes "
                "in the loss plot)",
                "smaller settings than the defaults (N_LAYER, N_EMBD, MAX_STEPS) or quick mode",
            ],
            "low": [
                "attention that sees the future (a missing or inverted causal mask): the "
                "loss falls far below what predicting the next byte allows",
                "validation batches drawn from the training text",
            ],
        }
    },
    "08_finetuning": {
        "full fine-tuning validation loss (tiny base)": {
            "high": [
                "fewer fine-tuning steps than the defaults (FT_STEPS) or quick mode",
                "a weaker base (its validation loss above is high too): fewer BASE_STEPS, or "
                "your GPT's wpe or wte left at PyTorch's N(0, 1) instead of std 0.02",
                "a learning rate changed from LR: far above it the loss plot spikes, far "
                "below it the loss is still falling at the end",
            ],
            "low": [
                "validation text the model trained on (TEXT_DIR's last 10% repeats the rest)",
                "attention that sees the future (a missing or inverted causal mask)",
            ],
        },
        "LoRA validation loss (tiny base)": {
            "high": [
                "mark_only_lora_trainable left the adapters frozen, or LoRALinear's B does "
                "not start at 0 (the loss starts above the base's)",
                "LoRALinear without its alpha / rank scale, or a LoRA learning rate other "
                "than 10 x LR",
                "fewer fine-tuning steps than the defaults (FT_STEPS) or quick mode",
            ],
            "low": [
                "the base's own weights trainable too (the trainable count above is the "
                "whole model's): that is full fine-tuning",
                "validation text the model trained on",
            ],
        },
    },
    "09_from_gpt2_to_chatgpt": {
        "held-out exact match": {
            "low": [
                "fewer tuning steps or a smaller model than the defaults (SFT_STEPS, N_EMBD), "
                "or quick mode",
                "the learning rate: above 2e-3 the loss plot spikes, below it the loss is "
                "still falling fast at the end",
                "the base pretrained for fewer steps (PRETRAIN_STEPS): it reads English worse",
                "the mask: the user's messages or the role tokens learned too, or the closing "
                "<|end|> not learned (replies that never stop)",
            ],
            "high": [
                "held-out conversations that share an opening instruction with the training "
                "ones (instruct.conversation_split keeps them apart)",
                "more tuning steps or a bigger model than the defaults (good, but not the band's "
                "settings)",
            ],
        }
    },
    "10_rlhf_in_miniature": {
        "reward model accuracy": {
            "low": [
                "fewer preference pairs or steps than the defaults (N_TRAIN, RM_REPLIES, "
                "RM_STEPS), or quick mode",
                "a weaker tuned model (its true score below is low too): its replies teach less",
            ],
            "high": ["held-out pairs from prompts the reward model trained on"],
        },
        "tuned true score": {
            "low": [
                "fewer tuning or pretraining steps, or a smaller model, than the defaults "
                "(SFT_STEPS, PRETRAIN_STEPS, N_EMBD), or quick mode",
            ],
            "high": ["more tuning steps or a bigger model than the defaults"],
        },
        "RL true score": {
            "low": [
                "a weaker reward model (its accuracy above is low): RL optimises its mistakes",
                "a smaller KL_COEF, or more RL steps or a higher learning rate than the "
                "defaults: the policy over-optimises the reward model (section 4)",
                "your policy_gradient_loss: the KL penalty with the wrong sign (the KL keeps "
                "growing) or the advantages not normalised within each prompt's group",
            ],
            "high": ["a stronger reward model than the recorded runs' (more pairs or steps)"],
        },
        "DPO true score": {
            "low": [
                "more DPO steps, a higher learning rate or a smaller beta than the defaults: "
                "the policy moves far from the tuned model (its KL in the table is large)",
                "your dpo_loss: the policy and reference terms swapped, so it moves away "
                "from the chosen replies",
            ],
            "high": [
                "fewer DPO steps or a larger beta than the defaults (closer to the tuned model)"
            ],
        },
    },
}


def band(runs: list[float]) -> tuple[float, float]:
    """The band a run is normal in: the recorded runs' range, widened on each side by
    half its width or 2% of the mean, whichever is more (three seeds show little spread)."""
    lo, hi = min(runs), max(runs)
    margin = max((hi - lo) / 2, 0.02 * abs(sum(runs) / len(runs)))
    return lo - margin, hi + margin


def report_card(slug: str, figures: Mapping[str, float]) -> None:
    """Print the learner's ``figures`` beside the bands of recorded runs, and the likely
    causes of any figure outside its band."""
    record = json.loads(path(slug).read_text(encoding="utf-8")) if path(slug).is_file() else {}
    bands = record.get("bands", {})
    print("Is my result normal?")
    outside = []
    for name, value in figures.items():
        if name not in bands:
            print(f"  {name}: {value:.3f} (no recorded runs to compare with yet)")
            continue
        b = bands[name]
        lo, hi = band(b["runs"])
        verdict = "normal" if lo <= value <= hi else ("high" if value > hi else "low")
        if quick_mode():
            verdict = "quick mode: tiny settings, not comparable"
        elif verdict != "normal":
            outside.append((name, verdict))
        runs = ", ".join(f"{r:.3f}" for r in b["runs"])
        print(f"  {name}: {value:.3f}, expected {lo:.3f} to {hi:.3f} ({verdict})")
        print(f"    from {len(b['runs'])} recorded runs ({runs}): {b['how']}")
    for name, verdict in outside:
        causes = CAUSES.get(slug, {}).get(name, {}).get(verdict, [])
        print(
            f"Your {name} is {'above' if verdict == 'high' else 'below'} the band. Likely causes:"
        )
        for cause in causes or ["none known: compare your pieces with the reference's"]:
            print(f"  - {cause}")
