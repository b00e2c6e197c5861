"""Checks for the finetuning exercises."""

__all__: list[str] = []
