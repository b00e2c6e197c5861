"""gpt2course: build GPT-2 step by step, with tested reference implementations."""

__version__ = "0.1.0"
