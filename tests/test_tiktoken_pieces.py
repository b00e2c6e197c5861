"""tiktoken crashes the process on ~1 MB of whitespace (issue 17): the course's GPT-2
tokenizer encodes user text in pieces, with tiktoken's own ids for ordinary text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gpt2course import assets
from gpt2course.tokenizer.named import get_tokenizer


def test_pieces_give_tiktokens_ids_on_tiny_shakespeare(offline_assets_dir):
    text = (offline_assets_dir / "tinyshakespeare.txt").read_text(encoding="utf-8")
    enc = assets.tiktoken_gpt2()
    ours = get_tokenizer("gpt2").encode(text)
    assert ours == enc.encode_ordinary(text)
    assert len(ours) == 338025  # Tiny Shakespeare's published GPT-2 token count


def test_mixed_whitespace_matches_tiktoken():
    enc = assets.tiktoken_gpt2()
    text = ("Hello  world\n\n\n  indented\n\tTab\r\nline " * 5000) + "\n" * 3 + "end"
    assert get_tokenizer("gpt2").encode(text) == enc.encode_ordinary(text)


def test_two_megabytes_of_spaces_do_not_crash_the_process():
    code = (
        "from gpt2course.tokenizer.named import get_tokenizer\n"
        "tok = get_tokenizer('gpt2')\n"
        "ids = tok.encode(' ' * 2_000_000 + 'x' + '\\n' * 1_000_000)\n"
        "assert tok.decode(ids) == ' ' * 2_000_000 + 'x' + '\\n' * 1_000_000\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_each_token_has_the_bytes_tiktoken_gives_it():
    # The one Tokenizer protocol: the token viewer reads a token's bytes from either tokenizer.
    text = "héllo wörld 🙂\n\n  x"
    enc, gpt2, raw = assets.tiktoken_gpt2(), get_tokenizer("gpt2"), get_tokenizer("bytes")
    assert [gpt2.decode_single_token_bytes(i) for i in gpt2.encode(text)] == [
        enc.decode_single_token_bytes(i) for i in enc.encode(text)
    ]
    assert [raw.decode_single_token_bytes(i) for i in raw.encode(text)] == [
        bytes([b]) for b in text.encode("utf-8")
    ]
