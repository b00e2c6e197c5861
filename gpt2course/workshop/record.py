"""Record full-size runs: run a notebook's solutions at the default settings and keep what
its ``record:KEY`` cells printed and drew in ``gpt2course/recorded/`` (shown by
``gpt2course.recorded``, which the notebooks import)."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gpt2course import recorded
from gpt2course.files import atomic_write_text

from . import course

TAG = "record:"


def _keep(output: dict[str, Any]) -> dict[str, Any] | None:
    """The part of an output worth keeping: text and pictures, no widget state or stderr."""
    if output.get("output_type") == "stream":
        return None if output.get("name") == "stderr" else {**output}
    kinds = ("text/plain", "image/png", "text/html")
    data = {k: v for k, v in output.get("data", {}).items() if k in kinds}
    return {"output_type": "display_data", "data": data, "metadata": {}} if data else None


def harvest(
    slug: str, notebook: dict[str, Any], seconds: float, device: str, load: float | None = None
) -> Path:
    """Keep the outputs of the ``record:``-tagged cells of an executed full-size notebook.

    ``load`` is the machine's mean load average during the run, so that the label can say
    whether the run had the machine to itself."""
    import torch

    cells: dict[str, list] = {}
    for cell in notebook["cells"]:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith(TAG):
                cells[tag[len(TAG) :]] = [k for o in cell.get("outputs", []) if (k := _keep(o))]
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "device": device,
        "machine": f"{platform.machine()}, {platform.system()}",
        "torch": torch.__version__.split("+")[0],
        "minutes": seconds / 60,
        "load": None if load is None else round(load, 1),
        "cores": os.cpu_count(),
    }
    p = recorded.path(slug)
    bands = json.loads(p.read_text(encoding="utf-8")).get("bands") if p.is_file() else None
    record = {"meta": meta, "cells": cells} | ({"bands": bands} if bands else {})
    return atomic_write_text(p, json.dumps(record, indent=1) + "\n")


def device_name() -> str:
    """The GPU's name, or the CPU's model and core count."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    m = re.search(r"^model name\s*:(.*)$", info, re.M)
    cpu = m.group(1).strip() if m else platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores)"


def record(slugs: list[str], timeout: int = 3600) -> list[Path]:
    """Run each notebook's solutions at full size and keep its ``record:`` cells' outputs."""
    written = []
    for nb in [course.find(s) for s in slugs]:
        text = course.source_path(nb).read_text(encoding="utf-8")
        path = course.notebook_path(nb, "solutions")
        print(f"running {path.relative_to(course.repo_root())} at full size ...", file=sys.stderr)
        t0 = time.perf_counter()
        notebook = course.build_notebook(nb, "solutions", text)
        with LoadWatch() as load:
            done = course.execute(notebook, path.parent, timeout, quick=False)
        written.append(harvest(nb.slug, done, time.perf_counter() - t0, device_name(), load.mean))
    return written


class LoadWatch:
    """The mean of the 1-minute load average, sampled every few seconds while in use."""

    def __init__(self, every: float = 5.0) -> None:
        self.every, self.samples = every, []
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples)


# How each notebook's report card figures are reproduced at its default settings, seed by
# seed: the workshop verb that runs the notebook's training (a module of gpt2course.workshop),
# its arguments for the notebook's defaults, the argument that sets the seed, and each
# figure's key in the JSON line the verb prints last.
BAND_RUNS = {
    "06_pretraining": (
        "train", ["--preset", "shakespeare-bytes"], "train.seed={}", {"validation loss": "val_loss"}
    ),
    "08_finetuning": (
        "bench.finetuning", ["--part", "text"], "--seed={}",
        {"full fine-tuning validation loss (tiny base)": "full_val",
         "LoRA validation loss (tiny base)": "lora_val"},
    ),
    "09_from_gpt2_to_chatgpt": (
        "bench.finetuning", ["--part", "instruct", "--settings", "full"], "--seed={}",
        {"held-out exact match": "after"},
    ),
    "10_rlhf_in_miniature": (
        "bench.rlhf", [], "--seed={}",
        {"reward model accuracy": "rm_accuracy", "tuned true score": "sft_true",
         "RL true score": "rl_true", "DPO true score": "dpo_true"},
    ),
}  # fmt: skip


def record_bands(slug: str, seeds: list[int]) -> Path:
    """Run a notebook's default training once per seed and keep each figure's results as
    the band its report card compares a learner's run with."""
    nb = course.find(slug)
    if nb.slug not in BAND_RUNS:
        raise KeyError(f"no band runs for {nb.slug}; known: {', '.join(BAND_RUNS)}")
    verb, argv, seed_arg, keys = BAND_RUNS[nb.slug]
    main = importlib.import_module(f"gpt2course.workshop.{verb}").main
    runs: dict[str, list[float]] = {name: [] for name in keys}
    t0 = time.perf_counter()
    with LoadWatch() as load:
        for seed in seeds:
            out = io.StringIO()
            with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(out):
                extra = ["--out", tmp] if verb == "train" else []  # its checkpoints, thrown away
                rc = main([*argv, *extra, seed_arg.format(seed)])
            if rc:
                raise RuntimeError(f"the seed {seed} run of {nb.slug} failed (exit {rc})")
            summary = json.loads(out.getvalue().strip().splitlines()[-1])
            print(f"seed {seed}: {json.dumps(summary)}", file=sys.stderr)  # the whole run's figures
            for name, key in keys.items():
                runs[name].append(summary[key])
    command = " ".join(["python -m gpt2course", verb.replace(".", " "), *argv])
    how = (
        f"`{command}` (the notebook's defaults), seeds {', '.join(map(str, seeds))}, "
        f"{time.strftime('%Y-%m-%d')}, {device_name()}, {(time.perf_counter() - t0) / 60 / len(seeds):.1f} min a run, "
        f"mean load {load.mean:.1f}"
    )
    p = recorded.path(nb.slug)
    record = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {"meta": {}, "cells": {}}
    record["bands"] = {name: {"runs": r, "how": how} for name, r in runs.items()}
    return atomic_write_text(p, json.dumps(record, indent=1) + "\n")
