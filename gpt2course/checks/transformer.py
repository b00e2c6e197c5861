"""Checks for the transformer exercises."""

__all__: list[str] = []
