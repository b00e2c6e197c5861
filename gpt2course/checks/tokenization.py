"""Checks for the tokenization exercises."""

__all__: list[str] = []
