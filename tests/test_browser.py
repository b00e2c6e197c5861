"""The widgets in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Unit tests prove each widget's rendering function; this proves the wiring a learner sees:
the widget displays, a slider or text box moves, and the rendered output changes. It
starts JupyterLab on a free loopback port (no token, its own temporary root and
settings), opens a notebook with the widget cells, runs them, changes each widget's
control and saves a screenshot per widget under ``test-artifacts/browser/``.

Needs Debian's chromium and the playwright package: run ``.ci/browser.sh`` once. Without
them the test is skipped, unless ``GPT2COURSE_BROWSER_REQUIRED=1`` (CI) makes it fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpt2course.workshop import course

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = course.repo_root() / "test-artifacts" / "browser"
SERVER_START_S = 90  # JupyterLab on a busy 2-core machine
KERNEL_RUN_S = 180  # kernel start + importing torch + running every widget cell
CHANGE_S = 30  # one round trip browser -> kernel -> browser


@dataclass(frozen=True)
class WidgetCase:
    """One widget under test: the code that builds it as ``w``, and the control to move."""

    name: str
    module: str  # skip the case while this module does not exist yet
    build: str  # Python that binds the widget to ``w``
    control: str  # "slider" or "text"
    text: str = ""  # what to type, for "text"
    expect: str = ""  # text the output must show after the change


CASES = [
    # The plain ipywidgets pair the harness is proven on, independent of the course widgets.
    WidgetCase(
        "plain_slider",
        "ipywidgets",
        "import ipywidgets as widgets\n"
        "s = widgets.IntSlider(value=3, min=0, max=10, description='n')\n"
        "h = widgets.HTML()\n"
        "def show(change=None):\n"
        "    h.value = '<b>' + '★' * s.value + '</b> ' + str(s.value)\n"
        "s.observe(show, names='value')\n"
        "show()\n"
        "w = widgets.VBox([s, h])",
        "slider",
        expect="★★★★★ 5",
    ),
    WidgetCase(
        "plain_text",
        "ipywidgets",
        "import ipywidgets as widgets\n"
        "t = widgets.Text(value='hello', description='text')\n"
        "h = widgets.HTML()\n"
        "t.observe(lambda c: setattr(h, 'value', t.value.upper()), names='value')\n"
        "h.value = t.value.upper()\n"
        "w = widgets.VBox([t, h])",
        "text",
        "changed by the browser",
        expect="CHANGED BY THE BROWSER",
    ),
    WidgetCase(
        "tokens",
        "gpt2course.widgets.tokens",
        "from gpt2course.assets import tiktoken_gpt2\n"
        "from gpt2course.widgets import tokens\n"
        "w = tokens.token_viewer({'GPT-2': tiktoken_gpt2()}, 'Hello world, this is GPT-2.')",
        "text",
        "The quick brown fox jumps over the lazy dog.",
        expect="fox",
    ),
    WidgetCase(
        "attention",
        "gpt2course.widgets.attention",
        "from gpt2course.widgets import attention\nw = attention.attention_viewer()",
        "slider",  # the first slider picks the layer
        expect="layer 1",
    ),
    WidgetCase(
        "sampling",
        "gpt2course.widgets.sampling",
        # An untrained model: the test needs the wiring, not sensible text.
        "import torch\n"
        "from gpt2course.model import GPT, GPTConfig\n"
        "from gpt2course.widgets import sampling\n"
        "torch.manual_seed(0)\n"
        "model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, context_length=64)).eval()\n"
        "w = sampling.sampling_playground(model)",
        "slider",  # the first slider is the temperature: 1.0 -> 1.1
        expect="temperature 1.1",
    ),
    WidgetCase(
        "chat",
        "gpt2course.widgets.chat",
        # Untrained models side by side: the test needs the wiring, not sensible replies.
        "import torch\n"
        "from gpt2course import chat\n"
        "from gpt2course.model import GPT, GPTConfig\n"
        "from gpt2course.widgets.chat import chat_widget\n"
        "torch.manual_seed(0)\n"
        "model = GPT(GPTConfig(vocab_size=260, n_layer=1, n_head=2, n_embd=32, context_length=64))\n"
        "tok = chat.chat_tokenizer('bytes')\n"
        "w = chat_widget({'base': model.eval(), 'tuned': model}, tok, max_new_tokens=4)",
        "text",  # typed, then Tab: the message box sends when it loses focus, as on Enter
        "Add 2 and 3.",
        expect="user: Add 2 and 3.",
    ),
]


def _available(case: WidgetCase) -> bool:
    try:
        return importlib.util.find_spec(case.module) is not None
    except ModuleNotFoundError:
        return False


def _missing_tools() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing"
    if importlib.util.find_spec("jupyterlab") is None:
        return "jupyterlab is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cell_code(case: WidgetCase) -> str:
    # The Box with a class of its own lets the browser side find each widget.
    # Each build runs in a function of its own so that cells cannot clobber each other's
    # globals; the Box with a class of its own lets the browser side find the widget.
    body = "\n".join("    " + line for line in case.build.splitlines())
    return (
        f"def _build():\n{body}\n    return w\n\n"
        "import ipywidgets as _w\n"
        f"_w.Box([_build()]).add_class('under-test-{case.name}')"
    )


def _write_notebook(path: Path, cases: list[WidgetCase]) -> None:
    cells = [
        {
            "cell_type": "code",
            "metadata": {},
            "source": _cell_code(c),
            "outputs": [],
            "execution_count": None,
        }
        for c in cases
    ]
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    path.write_text(json.dumps(nb), encoding="utf-8")


@contextlib.contextmanager
def jupyterlab(root: Path) -> Iterator[str]:
    """A JupyterLab server on a free loopback port, token off; always stopped afterwards."""
    port = _free_port()
    home = root.parent / "jupyter-home"
    for sub in ("config/labconfig", "runtime", "settings", "workspaces"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    # Announcements would ask to fetch news from the internet: switch that plugin off.
    (home / "config/labconfig/page_config.json").write_text(
        json.dumps(
            {
                "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True},
                # window.jupyterapp, so the test runs commands instead of clicking menus.
                "exposeAppInBrowser": True,
            }
        )
    )
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        GPT2COURSE_QUICK="1",
    )
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.open_browser=False",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # the default one asks PyPI
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    log = open(root.parent / "jupyterlab.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{_tail(root)}")
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"JupyterLab did not answer in {SERVER_START_S} s:\n{_tail(root)}"
                )
            time.sleep(0.5)
        yield url
    finally:
        # The server's process group holds the kernels too: stop them all, then insist.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _tail(root: Path, n: int = 3000) -> str:
    return (root.parent / "jupyterlab.log").read_text(errors="replace")[-n:]


# Everything in the widget box but its controls: what a change must alter.
RENDERED_JS = """
(box) => {
  const c = box.cloneNode(true);
  c.querySelectorAll('input, textarea, select, button, .widget-readout, .noUi-target, .ui-slider')
    .forEach(e => e.remove());
  const imgs = Array.from(c.querySelectorAll('img, canvas')).map(e => e.src || e.width);
  return c.innerText + '|' + c.querySelectorAll('*').length + '|' + imgs.join(',') + '|' + c.innerHTML.length;
}
"""


NOTEBOOK_OPEN_JS = """
() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        return !!(w && w.sessionContext); }
"""
KERNEL_IDLE_JS = """
async () => { const ctx = window.jupyterapp.shell.currentWidget.sessionContext;
              await ctx.ready;
              const k = ctx.session && ctx.session.kernel;
              return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }
"""


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    """A browser page on a notebook whose widget cells have all run."""
    missing = _missing_tools()
    if missing:
        if os.environ.get("GPT2COURSE_BROWSER_REQUIRED", "") not in ("", "0"):
            pytest.fail(f"browser test required but {missing}; run .ci/browser.sh")
        pytest.skip(f"{missing}; run .ci/browser.sh")
    from playwright.sync_api import sync_playwright

    cases = [c for c in CASES if _available(c)]
    root = tmp_path_factory.mktemp("lab") / "root"
    root.mkdir()
    _write_notebook(root / "widgets.ipynb", cases)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # no stale screenshots from an earlier run
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with jupyterlab(root) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(CHANGE_S * 1000)
            page.goto(f"{url}/lab/tree/widgets.ipynb", timeout=SERVER_START_S * 1000)
            page.wait_for_function(NOTEBOOK_OPEN_JS, timeout=SERVER_START_S * 1000)
            page.wait_for_function(KERNEL_IDLE_JS, timeout=KERNEL_RUN_S * 1000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            yield page, cases
        finally:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / "notebook.png"), full_page=True)
            browser.close()


def _change(page, box, case: WidgetCase) -> None:
    if case.control == "slider":
        # ipywidgets 8 draws sliders with noUiSlider, 7 with jQuery UI: both take arrow keys.
        handle = box.locator(".noUi-handle, .ui-slider-handle").first
        handle.focus()
        for _ in range(2):
            page.keyboard.press("ArrowRight")
        handle.blur()
    elif case.control == "text":
        field = box.locator("textarea, input[type=text]").first
        field.fill(case.text)
        field.press("Tab")  # Text widgets with continuous_update=False send on blur
    else:
        raise ValueError(f"unknown control {case.control!r}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_widget_renders_and_reacts(lab_page, case: WidgetCase) -> None:
    """Each widget shows up, and moving its control changes what it renders."""
    page, cases = lab_page
    if case not in cases:
        pytest.skip(f"{case.module} does not exist yet")
    box = page.locator(f".under-test-{case.name}")
    try:
        box.wait_for(state="visible", timeout=KERNEL_RUN_S * 1000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"{case.name}-missing.png"), full_page=True)
        errors = page.locator(".jp-OutputArea-output[data-mime-type*=error]").all_inner_texts()
        pytest.fail(f"widget {case.name} never rendered; cell errors: {errors[:3]}")
    box.scroll_into_view_if_needed()
    assert "Error displaying widget" not in box.inner_text(), f"{case.name} failed to render"
    handle = box.element_handle()
    page.wait_for_function(f"(b) => ({RENDERED_JS})(b).split('|')[0].trim().length > 0", arg=handle)
    before = page.evaluate(RENDERED_JS, handle)
    box.screenshot(path=str(ARTIFACTS / f"{case.name}-before.png"))
    _change(page, box, case)
    try:
        page.wait_for_function(
            f"([b, old]) => ({RENDERED_JS})(b) !== old",
            arg=[handle, before],
            timeout=CHANGE_S * 1000,
        )
    except Exception:
        box.screenshot(path=str(ARTIFACTS / f"{case.name}-unchanged.png"))
        pytest.fail(f"moving the {case.control} of {case.name} did not change its output")
    page.wait_for_timeout(300)  # let figures finish painting before the screenshot
    box.screenshot(path=str(ARTIFACTS / f"{case.name}.png"))
    after = page.evaluate(RENDERED_JS, handle)
    assert after != before
    assert "Error" not in after.split("|")[0], f"{case.name} rendered an error: {after[:300]}"
    if case.expect:
        page.wait_for_function(
            "([b, s]) => b.innerText.includes(s)",
            arg=[handle, case.expect],
            timeout=CHANGE_S * 1000,
        )


def test_artifacts_folder_is_ignored() -> None:
    """Screenshots must never be committed by accident."""
    if shutil.which("git") is None or not (course.repo_root() / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(
        ["git", "check-ignore", "-q", "test-artifacts/browser/x.png"], cwd=course.repo_root()
    )
    assert r.returncode == 0, "add test-artifacts/ to .gitignore"
