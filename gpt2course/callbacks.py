"""What ``train`` reports to: the run's history, the hooks it calls, and the notebook's live
plot and samples. ``train`` imports this module, never the other way round."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn as nn

from .generation import sample_text
from .tokenizer.named import Tokenizer


@dataclass
class History:
    """The losses of a run: one train loss per step, a validation loss every eval_interval."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # tokens seen so far, all processes
    seconds: list[float] = field(default_factory=list)  # wall time since the start
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)

    @property
    def val_perplexity(self) -> list[float]:
        """exp(val loss): the model is as unsure as a uniform pick among this many tokens."""
        return [math.exp(v) for v in self.val_loss]

    def to_dict(self) -> dict:
        """A plain dict, for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """The inverse of ``to_dict``."""
        return cls(**{f.name: list(d.get(f.name, [])) for f in fields(cls)})


@dataclass
class TrainState:
    """What callbacks see: the run so far."""

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: Any  # the run's train.TrainConfig
    history: History
    is_main: bool = True  # rank 0 (callbacks that print or plot act only there)


class Callback:
    """Hooks that ``train`` calls; override the ones you need."""

    def on_train_start(self, state: TrainState) -> None:
        """Before the first step."""

    def on_step(self, state: TrainState) -> None:
        """After every optimizer step."""

    def on_eval(self, state: TrainState) -> None:
        """After each validation loss is added to ``state.history``."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last step."""


@dataclass
class PrintSamples(Callback):
    """Print a short seeded sample at every evaluation, to watch the model learn."""

    tokenizer: Tokenizer
    prompt: str = "\n"
    max_new_tokens: int = 120
    seed: int = 0

    def on_eval(self, state: TrainState) -> None:
        if not state.is_main:
            return
        text = sample_text(
            state.model, self.tokenizer, self.prompt, self.max_new_tokens, seed=self.seed
        )
        val = state.history.val_loss[-1]
        print(f"--- step {state.step}, val loss {val:.3f} ---\n{text.strip()}\n", flush=True)


def plot_history(history: History, ax_loss=None, ax_lr=None):
    """Train and validation loss against step (and the learning rate, given a second axis)."""
    import matplotlib.pyplot as plt

    if ax_loss is None:
        fig, ax_loss = plt.subplots(figsize=(5, 3))
    ax_loss.plot(history.step, history.train_loss, lw=0.8, alpha=0.6, label="train")
    if history.val_loss:
        ax_loss.plot(history.val_step, history.val_loss, "o-", ms=3, label="validation")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (nats/token)")
    ax_loss.legend(loc="upper right")
    ax_loss.grid(alpha=0.3)
    if ax_lr is not None:
        ax_lr.plot(history.step, history.lr, color="tab:green")
        ax_lr.set_xlabel("step")
        ax_lr.set_ylabel("learning rate")
        ax_lr.grid(alpha=0.3)
    return ax_loss.figure


class LivePlot(Callback):
    """A loss plot that redraws in place while training runs (Jupyter/Colab); silent elsewhere."""

    def __init__(self, every_seconds: float = 2.0, figsize: tuple[float, float] = (9, 3)):
        self.every_seconds = every_seconds
        self.figsize = figsize
        self._handle = None
        self._last = 0.0

    def _draw(self, state: TrainState) -> None:
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=self.figsize, gridspec_kw={"width_ratios": [2, 1]})
        plot_history(state.history, a, b)
        a.set_title(f"step {state.step} / {state.config.max_steps}")
        fig.tight_layout()
        plt.close(fig)  # shown through the display handle only, not again at the cell's end
        if self._handle is None:
            from IPython.display import display

            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        self._last = time.perf_counter()

    def _active(self, state: TrainState) -> bool:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        return state.is_main and get_ipython() is not None

    def on_step(self, state: TrainState) -> None:
        if self._active(state) and time.perf_counter() - self._last >= self.every_seconds:
            self._draw(state)

    def on_train_end(self, state: TrainState) -> None:
        if self._active(state) and state.history.step:
            self._draw(state)
