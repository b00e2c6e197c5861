"""Checks for the embeddings exercises."""

__all__: list[str] = []
