"""Widgets for the notebooks: core ipywidgets only (7.7 and 8); rendering is pure and tested.

- ``token_viewer(tokenizers, text=...)``: each token as a coloured span (part 1)
- ``attention_viewer(model, tokenizer, text=...)``: attention heatmaps per layer and head (part 3)
- ``sampling_playground(model, tokenizer)``: the next-token distribution under sampling (part 5)
- ``chat_widget(models, tokenizer)``: a chat with one model, or several side by side (part 9)
"""

from .attention import attention_viewer
from .chat import chat_widget
from .sampling import sampling_playground
from .tokens import token_viewer

__all__ = ["attention_viewer", "chat_widget", "sampling_playground", "token_viewer"]
