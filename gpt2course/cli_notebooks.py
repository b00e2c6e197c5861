"""Moved to ``gpt2course.cli.notebooks``; this name keeps working."""

from .cli.notebooks import *  # noqa: F403
from .cli.notebooks import main  # noqa: F401
