"""Checks for the generation exercises."""

__all__: list[str] = []
