"""Widgets for the notebooks: core ipywidgets only (7.7 and 8); rendering is pure and tested."""
