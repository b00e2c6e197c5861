"""Moved to ``gpt2course.cli.generate``; this name keeps working."""

from .cli.generate import *  # noqa: F403
from .cli.generate import main  # noqa: F401
