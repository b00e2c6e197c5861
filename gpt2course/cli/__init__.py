"""The verbs of ``python -m gpt2course``; ``__main__.VERBS`` is the table of them."""
