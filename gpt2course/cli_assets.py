"""Moved to ``gpt2course.cli.assets``; this name keeps working."""

from .cli.assets import *  # noqa: F403
from .cli.assets import main  # noqa: F401
