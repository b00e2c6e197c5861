"""Checks for the training exercises."""

__all__: list[str] = []
