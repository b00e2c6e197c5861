"""Checks for the pretrained-loading exercises."""

__all__: list[str] = []
