"""The widgets on Colab's ipywidgets 7.7.1 as well as on the installed 8.x.

ipywidgets 7.7.1 (Colab's) is installed once into a private folder and put first on
PYTHONPATH of a subprocess, which builds each widget, moves its first slider or text box
and checks that the rendered HTML changed. It also checks that every widget model is a
core one, so that neither Colab nor JupyterLab needs a custom widget manager.
Skipped when pip cannot reach a package registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpt2course.workshop import course

COLAB_WIDGETS = [
    "ipywidgets==7.7.1",
    "widgetsnbextension==3.6.*",
    "jupyterlab_widgets<3",
    "ipython_genutils==0.2.0",  # 7.x imports it; newer environments no longer ship it
]

# Each widget, built as `w`; the probe moves the first slider or text box it finds.
BUILDS = {
    "tokens": (
        "from gpt2course.assets import tiktoken_gpt2\n"
        "from gpt2course.widgets import tokens\n"
        "w = tokens.token_viewer({'GPT-2': tiktoken_gpt2()}, 'Hello world')"
    ),
    "attention": "from gpt2course.widgets import attention\nw = attention.attention_viewer()",
    "sampling": (
        "import torch\n"
        "from gpt2course.model import GPT, GPTConfig\n"
        "from gpt2course.widgets import sampling\n"
        "torch.manual_seed(0)\n"
        "model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, context_length=64)).eval()\n"
        "w = sampling.sampling_playground(model)"
    ),
    "chat": (
        "import torch\n"
        "from gpt2course import chat\n"
        "from gpt2course.model import GPT, GPTConfig\n"
        "from gpt2course.widgets import chat as chat_widgets\n"
        "torch.manual_seed(0)\n"
        "model = GPT(GPTConfig(vocab_size=260, n_layer=1, n_head=2, n_embd=32, context_length=64))\n"
        "tok = chat.chat_tokenizer('bytes')\n"
        "w = chat_widgets.chat_widget({'base': model.eval(), 'tuned': model}, tok, max_new_tokens=4)"
    ),
}

# Builds every widget in one process (torch is imported once) and reports on each.
PROBE = r"""
import json, sys
import ipywidgets as W


def walk(x):
    yield x
    for c in getattr(x, "children", ()):
        yield from walk(c)


def bundle(w):
    # What the front end receives when the widget is displayed (the 7.x and the 8.x way).
    if not W.__version__.startswith("7."):
        return w._repr_mimebundle_()
    import IPython.display as D
    got, real = [], D.display
    D.display = lambda data, raw=False: got.append(data)
    try:
        w._ipython_display_()
    finally:
        D.display = real
    return got[0]


def probe(code):
    ns = {}
    exec(code, ns)
    w = ns["w"]
    rendered = lambda: [(type(x).__name__, x.value) for x in walk(w) if isinstance(x, (W.HTML, W.Image))]
    before = rendered()
    shown = bundle(w)
    controls = [x for x in walk(w) if isinstance(x, (W.IntSlider, W.FloatSlider, W.Text, W.Textarea))]
    c = controls[0]
    if isinstance(c, (W.Text, W.Textarea)):
        c.value = c.value + " and a few more words"
    else:
        c.value = min(c.max, c.value + c.step) if c.value < c.max else c.value - c.step
    return {
        "changed": before != rendered(),
        "mimetypes": sorted(shown),
        "static": shown.get("text/html", ""),
        "control": type(c).__name__,
        "models": sorted({(x._model_module, x._model_name, x._view_module) for x in walk(w)}),
    }


builds = json.loads(sys.argv[1])
print(json.dumps({"version": W.__version__, "file": W.__file__,
                  "widgets": {name: probe(code) for name, code in builds.items()}}))
"""
CORE_MODULES = {"@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"}


@pytest.fixture(scope="session")
def colab_widgets() -> Path:
    """A folder holding ipywidgets 7.7.1 and its front-end packages, installed once."""
    cache = Path(
        os.environ.get("GPT2COURSE_TEST_CACHE", Path.home() / ".cache" / "gpt2course-tests")
    )
    target = cache / "ipywidgets-7.7.1"
    if (target / "ipywidgets" / "__init__.py").is_file():
        return target
    # Install beside the final folder, then rename: a half-done install is never used.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.part{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
         "--target", str(tmp), *COLAB_WIDGETS],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"could not install ipywidgets 7.7.1 (no registry?): {r.stderr[-300:]}")
    try:
        os.replace(tmp, target)
    except OSError:  # another run got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _probe(names: list[str], pythonpath: str | None) -> dict:
    env = dict(os.environ, GPT2COURSE_QUICK="1")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    builds = json.dumps({n: BUILDS[n] for n in names})
    r = subprocess.run(
        [sys.executable, "-c", PROBE, builds],
        env=env, capture_output=True, text=True, timeout=300, cwd=course.repo_root(),
    )  # fmt: skip
    assert r.returncode == 0, f"building the widgets failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def _exists(name: str) -> bool:
    return (course.repo_root() / "gpt2course" / "widgets" / f"{name}.py").exists()


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["7.7.1", "installed"])
def test_widgets_work_on_both_ipywidgets(flavour: str, request) -> None:
    """Each widget builds, reacts to its control and uses only core widget models."""
    names = [n for n in BUILDS if _exists(n)]
    if not names:
        pytest.skip("no course widgets yet")
    path = str(request.getfixturevalue("colab_widgets")) if flavour == "7.7.1" else None
    got = _probe(names, path)
    if flavour == "7.7.1":
        assert got["version"] == "7.7.1" and got["file"].startswith(path), got
    else:
        assert got["version"].split(".")[0] in ("7", "8"), got
    for name, w in got["widgets"].items():
        assert w["changed"], f"{name}: moving its {w['control']} did not change the rendered HTML"
        assert "application/vnd.jupyter.widget-view+json" in w["mimetypes"], name
        assert "A picture of the widget" in w["static"] and len(w["static"]) > 300, (
            f"{name}: a reader without a kernel would see nothing: no static text/html view"
        )
        custom = [m for m in w["models"] if m[0] not in CORE_MODULES or m[2] not in CORE_MODULES]
        assert not custom, f"{name} uses widgets outside core ipywidgets: {custom}"
