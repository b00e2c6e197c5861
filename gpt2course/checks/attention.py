"""Checks for the attention exercises."""

__all__: list[str] = []
