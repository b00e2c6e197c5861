"""The chat widget: talk to a model in the chat format, or to several side by side.

Type a message and press Enter (or Send): with one model it is a multi-turn chat; with
several (base, tuned, ...) the same message goes to each, and each answers in its own
conversation, shown in its own column. What you type is always text: a chat token's
spelling such as ``<|end|>`` is refused with a line saying so, and could never become the
control token anyway (``ChatTokenizer.encode`` has no way to produce one).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import torch
from torch import nn

from ..chat import CHAT_TOKENS, ROLES, ChatTokenizer, render_prompt, reply
from .static import Snapshot

_BUBBLE = {
    "system": "background:#f3f3f3;color:#555;font-style:italic",
    "user": "background:#d8ebff;margin-left:24px",
    "assistant": "background:#eef7e8;margin-right:24px",
}


def render_chat(
    conversations: Mapping[str, Sequence[Mapping[str, str]]], error: str = "", note: str = ""
) -> str:
    """HTML of each model's conversation in a column, side by side, and one error line."""
    columns = []
    for name, messages in conversations.items():
        bubbles = [
            f'<div class="msg {html.escape(m["role"])}" style="{_BUBBLE.get(m["role"], "")};'
            "border-radius:6px;padding:3px 8px;margin:3px 0;white-space:pre-wrap;"
            f'word-break:break-word"><b>{html.escape(m["role"])}</b>: '
            f"{html.escape(m['content']) or '<i>(nothing)</i>'}</div>"
            for m in messages
        ]
        empty = '<div style="color:#888">no messages yet: type one below</div>'
        columns.append(
            '<div style="flex:1 1 220px;min-width:200px">'
            f'<div style="font-weight:bold;margin-bottom:4px">{html.escape(name)}</div>'
            f"{''.join(bubbles) or empty}</div>"
        )
    parts = ['<div class="gpt2c-chat">']
    if note:
        parts.append(f'<div style="color:#666;font-size:smaller">{html.escape(note)}</div>')
    parts.append(f'<div style="display:flex;flex-wrap:wrap;gap:14px">{"".join(columns)}</div>')
    if error:
        parts.append(f'<div class="error" style="color:#b00">{html.escape(error)}</div>')
    return "".join(parts) + "</div>"


class ChatBox:
    """The state and controls of a chat with one model or several side by side."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        tokenizer: ChatTokenizer,
        max_new_tokens: int = 48,
        system: str = "",
        temperature: float = 0.0,
        seed: int = 0,
        note: str = "",
    ) -> None:
        if not isinstance(models, Mapping) or not models:
            raise ValueError("pass the models as a dict, e.g. {'tuned': model}")
        if not isinstance(tokenizer, ChatTokenizer):
            raise TypeError("tokenizer must be a ChatTokenizer: use chat.chat_tokenizer('bytes')")
        small = [n for n, m in models.items() if m.config.vocab_size < tokenizer.vocab_size]
        if small:
            raise ValueError(
                f"{', '.join(small)} know only {models[small[0]].config.vocab_size} tokens, the "
                f"chat format needs {tokenizer.vocab_size}: grow them with chat.grow_vocab first"
            )
        self.models, self.tokenizer = dict(models), tokenizer
        self.max_new_tokens, self.temperature, self.note = max_new_tokens, temperature, note
        self.generator = torch.Generator().manual_seed(seed)
        self.system = system
        self.conversations: dict[str, list[dict[str, str]]] = {}
        self.error = ""
        self.text = widgets.Text(
            placeholder="Type a message, press Enter",
            continuous_update=False,  # the value arrives on Enter (or leaving the box)
            layout=widgets.Layout(width="420px"),
        )
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.new_button = widgets.Button(description="New chat")
        self.view = widgets.HTML()
        self.text.observe(self._on_text, names="value")
        self.send_button.on_click(lambda _b: self.send(self.text.value))
        self.new_button.on_click(lambda _b: self.reset())
        row = widgets.HBox([self.text, self.send_button, self.new_button])
        self.widget = Snapshot([self.view, row])
        self.reset()

    def reset(self) -> None:
        """Start a new chat (the system message, if any, stays)."""
        start = [{"role": "system", "content": self.system}] if self.system else []
        self.conversations = {name: list(start) for name in self.models}
        self.error = ""
        self.render()

    def render(self) -> None:
        """Redraw the conversations and the error line."""
        self.view.value = render_chat(self.conversations, self.error, self.note)

    def _on_text(self, change: dict) -> None:
        if change["new"]:  # not the box being cleared after a send
            self.send(change["new"])

    def _refusal(self, text: str, role: str) -> str:
        if role not in ROLES or role == "assistant":
            return f"unknown role {role!r}: send as 'user' (or 'system' for the first message)"
        if not isinstance(text, str) or not text.strip():
            return "the message is empty: type something, then press Enter"
        typed = sorted((text.find(t), t) for t in CHAT_TOKENS if t in text)
        if typed:
            return (
                f"your message holds {typed[0][1]}, a chat token's spelling: it would be read as "
                "plain text, never as a control token; remove it and send again"
            )
        if role == "system" and any(c for c in self.conversations.values()):
            return "a system message must come first: press New chat, then send it"
        return ""

    def send(self, text: str, role: str = "user") -> dict[str, str]:
        """Add a message to every conversation and each model's reply; returns the replies.

        Bad input (an empty message, a chat token's spelling, an unknown role, a chat longer
        than a model's context) shows one line saying what to do and changes nothing.
        """
        self.error = self._refusal(text, role)
        if self.error:
            self.render()
            return {}
        message = {"role": role, "content": text}
        if role == "system":
            self.conversations = {n: [message] for n in self.models}
            self.text.value = ""
            self.render()
            return {}
        replies = {}
        try:
            for name, model in self.models.items():
                messages = [*self.conversations[name], message]
                ids = render_prompt(messages, self.tokenizer)
                if len(ids) + 1 > model.config.context_length:
                    raise ValueError(
                        f"the chat is {len(ids)} tokens and {name} reads "
                        f"{model.config.context_length}: press New chat to start again"
                    )
                replies[name] = reply(
                    model, self.tokenizer, messages, self.max_new_tokens, self.temperature,
                    generator=self.generator,
                )  # fmt: skip
        except ValueError as e:
            self.error = str(e)
            self.render()
            return {}
        for name, answer in replies.items():
            self.conversations[name] += [message, {"role": "assistant", "content": answer}]
        self.text.value = ""  # sent: the box empties (on an error it keeps the text)
        self.render()
        return replies


def chat_widget(
    models: Mapping[str, nn.Module],
    tokenizer: ChatTokenizer,
    max_new_tokens: int = 48,
    system: str = "",
    temperature: float = 0.0,
    seed: int = 0,
    note: str = "",
) -> Snapshot:
    """A chat with ``models`` (one: a chat; several: the same message to each, side by side)."""
    box = ChatBox(models, tokenizer, max_new_tokens, system, temperature, seed, note)
    box.widget.chat = box  # the state, for code that drives the widget
    return box.widget
