"""A picture of a widget for readers without a kernel (GitHub, nbviewer, a fresh Colab tab).

A live widget is only a reference to a model in the kernel; a saved notebook read without
one shows nothing where it stood. ``Snapshot`` is a ``VBox`` whose display also carries a
``text/html`` copy of its current view: front ends with a widget manager (JupyterLab, Colab,
VS Code) prefer the live widget, and the rest show the copy. ``static_html`` draws any tree
of core widgets as plain HTML, so the copy is what the reader would have seen.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

_IPYWIDGETS_7 = widgets.__version__.startswith("7.")
NOTE = (
    '<div style="color:#777;font-size:smaller;margin-top:4px">A picture of the widget as the '
    "notebook was saved; run the notebook to use it.</div>"
)


def _label(w: Any) -> str:
    text = getattr(w, "description", "") or ""
    return f"{html.escape(text)}: " if text else ""


def static_html(w: widgets.Widget) -> str:
    """Plain HTML of a core widget's current view (containers drawn with their children)."""
    layout = getattr(w, "layout", None)
    if layout is not None and getattr(layout, "display", None) == "none":
        return ""
    if isinstance(w, widgets.Box):
        inner = "".join(static_html(c) for c in w.children)
        row = isinstance(w, widgets.HBox)
        style = "display:flex;gap:12px;align-items:center;flex-wrap:wrap" if row else ""
        return f'<div style="{style}">{inner}</div>'
    if isinstance(w, (widgets.HTML, widgets.HTMLMath)):
        return f"<div>{w.value}</div>"
    if isinstance(w, (widgets.Textarea, widgets.Text)):
        return (
            f'<div>{_label(w)}<pre style="border:1px solid #ccc;padding:4px;margin:2px 0;'
            f'white-space:pre-wrap">{html.escape(str(w.value))}</pre></div>'
        )
    if isinstance(w, widgets.Checkbox):
        return f"<div>{'☑' if w.value else '☐'} {html.escape(w.description or '')}</div>"
    if isinstance(w, widgets.Button):
        return f"<div><button disabled>{html.escape(w.description or '')}</button></div>"
    if hasattr(w, "value"):  # sliders, toggle buttons, dropdowns and other value widgets
        return f"<div>{_label(w)}<b>{html.escape(str(w.value))}</b></div>"
    return ""


class Snapshot(widgets.VBox):
    """A ``VBox`` that is also saved as a static picture of its current view."""

    def _snapshot_bundle(self, data: dict) -> dict:
        data["text/html"] = static_html(self) + NOTE
        return data

    if _IPYWIDGETS_7:  # 7.x displays through _ipython_display_, 8.x through _repr_mimebundle_

        def _ipython_display_(self, **kwargs: Any) -> None:
            from IPython.display import display

            data = {
                "text/plain": repr(self)[:110],
                "application/vnd.jupyter.widget-view+json": {
                    "version_major": 2,
                    "version_minor": 0,
                    "model_id": self._model_id,
                },
            }
            display(self._snapshot_bundle(data), raw=True)
            self._handle_displayed(**kwargs)

    else:

        def _repr_mimebundle_(self, **kwargs: Any) -> dict:
            return self._snapshot_bundle(super()._repr_mimebundle_(**kwargs))
