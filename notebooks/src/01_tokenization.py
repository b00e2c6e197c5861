# %% [markdown]
# A language model does not read text. It reads a sequence of integers, **token ids**, and
# predicts the next one. This notebook builds the piece that turns text into ids and back:
# GPT-2's **byte-level byte pair encoding (BPE)** tokenizer, from scratch.
#
# 1. why single characters and whole words both make poor tokens;
# 2. UTF-8 bytes: 256 symbols that can spell any text;
# 3. BPE: count adjacent pairs, merge the most frequent, repeat;
# 4. encoding and decoding with the learned merges;
# 5. GPT-2's own tokenizer, loaded from OpenAI's files, giving exactly tiktoken's ids;
# 6. the oddities people ask about: leading spaces, numbers, other languages, and
#    `" SolidGoldMagikarp"`.
#
# Five exercises: counting pairs, one merge, the training loop, encode and decode. Each
# has a check; if you skip one, the notebook carries on with the reference.
#
# *Machine time: the cells take about 12 seconds on a quiet 2-core CPU (measured 2026-12-06).*

# %% [markdown] instructor
# ⏱ About 70 minutes a learner (the guide's estimate: 12 reading, 58 for the exercises).
# Learners stall on `merge` (skipping both halves of a
# matched pair) and on `encode` (which merge goes first). For encode, draw the merges list
# on the board and ask "could merge 7 ever apply before merge 3 has?". Finish with the
# token viewer: let the room paste their own names and languages into it.

# %%
import time

import matplotlib.pyplot as plt
import regex
from IPython.display import HTML, display

from gpt2course import assets, checks, workbench  # the workbench keeps what passes its check
from gpt2course.device import quick_mode
from gpt2course.tokenizer import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    bytes_to_unicode,
    load_gpt2_tokenizer,
    train_bpe,
)
from gpt2course.widgets.tokens import render_tokens, token_viewer

# Sizes. Quick mode (used by the automatic tests) keeps everything small.
SAMPLE_CHARS = 10_000 if quick_mode() else 50_000  # text for your own training loop
NUM_MERGES = 40 if quick_mode() else 100  # merges your loop learns
VOCAB_SIZE = 512 if quick_mode() else 1256  # the fast trainer's vocabulary on all the text

# %% [markdown]
# ## The text
# Tiny Shakespeare: 1 MB of the plays, a classic small training set. `assets.fetch` reads
# it from the course's cache (downloaded once, checked by hash).

# %%
text = assets.fetch("tinyshakespeare.txt").read_text(encoding="utf-8")
print(f"{len(text):,} characters")
print(text[:200])

# %% [markdown]
# ## Why not characters? Why not words?
# The simplest tokenizer gives every **character** an id. Tiny Shakespeare needs only a
# few dozen of them:

# %%
chars = sorted(set(text))
print(f"{len(chars)} distinct characters: {''.join(chars)!r}")

# %% [markdown]
# Small, but it has two problems. The sequences are long (one id per character, and a
# model's cost grows with sequence length), and the set is only small because this text is
# English. Unicode has about 150,000 characters; a model that must handle all of them
# would need an id for each, and would see most of them too rarely to learn anything.
#
# The opposite choice gives every **word** an id. Sequences get short, but the vocabulary
# never stops growing: every new text brings words the tokenizer has never seen.

# %%
words = text.split()
seen, growth = set(), []
for k, w in enumerate(words, 1):
    seen.add(w)
    if k % 2000 == 0:
        growth.append((k, len(seen)))

fig, ax = plt.subplots(figsize=(5, 2.8))
ax.plot([k for k, _ in growth], [n for _, n in growth])
ax.set_xlabel("words read")
ax.set_ylabel("distinct words so far")
ax.set_title("The word vocabulary never levels off")
plt.tight_layout()
plt.show()
print(f"{len(seen):,} distinct words; 'tokenizer' in them? {'tokenizer' in seen}")

# %% [markdown]
# BPE sits in between: it starts from small units that can spell anything and learns to
# glue frequent neighbours into bigger tokens, so common words end up as one token and
# rare words are spelled from pieces.
#
# ## Bytes: 256 symbols that spell any text
# Characters are not small enough, because there are too many. Their **UTF-8 bytes** are:
# every string is a sequence of bytes, each a number from 0 to 255. ASCII characters take
# one byte; others take two to four.

# %%
for ch in ["a", "é", "Ω", "漢", "🙂"]:
    b = ch.encode("utf-8")
    print(f"{ch!r:6} -> {len(b)} byte(s): {list(b)}")

sample = text[:SAMPLE_CHARS]
ids = list(sample.encode("utf-8"))
print(f"\nour sample: {len(sample):,} characters -> {len(ids):,} byte ids")

# %% [markdown]
# Starting from bytes, nothing is ever unknown: the 256 byte values are the first 256
# tokens. What we lose is length: a sequence of bytes is long. BPE wins the length back.
#
# ## Byte pair encoding, step 1: count the pairs
# BPE looks at every **adjacent pair** of ids and counts how often each occurs.
# In `[1, 2, 3, 1, 2]` the pairs are `(1, 2)`, `(2, 3)`, `(3, 1)`, `(1, 2)`: so `(1, 2)`
# occurs twice. Pairs overlap: `[5, 5, 5]` holds `(5, 5)` twice.
#
# **Exercise 1.** Write `count_pairs(ids)`, returning a dict `{(a, b): count}`.


# %%
def count_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    """How often each adjacent pair of ids occurs."""
    # BEGIN SOLUTION
    # HINT: walk the adjacent pairs of ids and count each one in a dict.
    counts = {}
    for i in range(len(ids) - 1):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts
    # END SOLUTION


# %%
count_pairs = checks.check_count_pairs(count_pairs)

# %% [markdown]
# The most frequent pairs in our sample, shown as the bytes they stand for:

# %%
counts = count_pairs(ids)
top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
for (a, b), n in top:
    print(f"{bytes([a, b])!r:10} {n}")

# %% [markdown]
# ## Step 2: merge the most frequent pair
# Give the winning pair a new id (the first free one is 256) and replace every occurrence
# of the pair by it, left to right. Once a pair has matched, both of its ids are used up:
# merging `(5, 5)` in `[5, 5, 5]` gives `[256, 5]`.
#
# **Exercise 2.** Write `merge(ids, pair, new_id)`, returning a new list.


# %%
def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids`, left to right, by `new_id`."""
    # BEGIN SOLUTION
    # HINT: build a new list; where the pair starts, the new id takes the place of both ids.
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
    # END SOLUTION


# %%
merge = checks.check_merge(merge)

# %%
best = max(counts, key=counts.get)
merged = merge(ids, best, 256)
print(f"merging {bytes(best)!r} -> 256: {len(ids):,} ids -> {len(merged):,} ids")

# %% [markdown]
# ## Step 3: repeat
# Training is those two steps in a loop: count, merge the most frequent pair into the next
# new id (256, 257, ...), and count again *on the merged ids*, so later merges can build
# on earlier ones (`t` + `h` -> `th`, then `th` + `e` -> `the`). The result is the list of
# **merges**, in the order they were learned.
#
# **Exercise 3.** Write `train(ids, num_merges)`, returning a dict `{pair: new_id}` in
# the order learned. When two pairs tie, either is fine.


# %%
def train(ids: list[int], num_merges: int) -> dict[tuple[int, int], int]:
    """Learn `num_merges` merges on `ids`: {pair: new id}, in the order learned."""
    # BEGIN SOLUTION
    # HINT: each round: count the pairs, take the most frequent, merge it everywhere, record it.
    ids = list(ids)
    merges = {}
    for k in range(num_merges):
        counts = count_pairs(ids)
        if not counts:
            break
        pair = max(counts, key=counts.get)
        ids = merge(ids, pair, 256 + k)
        merges[pair] = 256 + k
    return merges
    # END SOLUTION


# %%
train = checks.check_train_merges(train)

# %% [markdown]
# To read the merges we need the **vocabulary**: the bytes each id stands for. The first
# 256 ids are single bytes; each merge's id stands for its two parts' bytes joined.


# %%
def build_vocab(merges: dict[tuple[int, int], int]) -> dict[int, bytes]:
    """The bytes each id stands for."""
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in merges.items():  # in order, so a and b are already there
        vocab[new_id] = vocab[a] + vocab[b]
    return vocab


# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
merges = train(ids, NUM_MERGES)
print(f"{len(merges)} merges in {time.perf_counter() - t0:.2f} s")
vocab = build_vocab(merges)
print([vocab[i] for i in merges.values()])

# %% [markdown]
# Common fragments come first: `e ` (the end of a word in e), `th`, `ou`, ... Notice how
# many tokens run across a word boundary: `' the '` carries the spaces on both sides, and
# `':\n'` glues punctuation to a line break.
# BPE has no idea what a word is. We fix that below.
#
# ## Encoding and decoding
# To **encode** new text, start from its bytes and apply the learned merges. The order
# matters: a merge learned later was learned on text that earlier merges had already
# changed, so among the pairs present, always apply the one learned **earliest** (the
# smallest new id), and stop when no pair present is a merge.
#
# **Exercise 4.** Write `encode(text, merges)`.


# %%
def encode(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    """Text -> UTF-8 bytes -> ids, applying the earliest-learned merge first."""
    # BEGIN SOLUTION
    # HINT: start from the text's UTF-8 bytes and merge, again and again, the pair that was
    # HINT: learned first, until no adjacent pair is one that train learned.
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = min(count_pairs(ids), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids
    # END SOLUTION


# %%
encode = checks.check_encode(encode)

# %% [markdown]
# To **decode**, look up each id's bytes, join them, and turn the bytes into text. Join
# first: one character's bytes may be split over two tokens. And a model can generate any
# id sequence, including one that stops halfway through a character, so invalid bytes
# must not crash the decoder: `errors="replace"` turns them into `�` (U+FFFD).
#
# **Exercise 5.** Write `decode(ids, vocab)`.


# %%
def decode(ids: list[int], vocab: dict[int, bytes]) -> str:
    """Ids -> bytes -> text; invalid UTF-8 becomes '�'."""
    # BEGIN SOLUTION
    # HINT: b"".join(...) then .decode("utf-8", errors="replace")
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
    # END SOLUTION


# %%
decode = checks.check_decode(decode)

# %%
line = "To be, or not to be: that is the question."
line_ids = encode(line, merges)
print(f"{len(line.encode('utf-8'))} bytes -> {len(line_ids)} tokens")
print([vocab[i] for i in line_ids])
print(decode(line_ids, vocab) == line)
print(decode(list("🙂".encode())[:2], vocab))  # half a character

# %% [markdown]
# ## GPT-2's trick: split the text first
# GPT-2 does not let merges cross word boundaries. Before BPE it cuts the text into
# chunks with a regular expression and runs BPE inside each chunk. The pattern keeps a
# word together **with the space before it**, keeps digits apart from letters, and
# punctuation apart from both:

# %%
print(GPT2_SPLIT_PATTERN)
print(regex.findall(GPT2_SPLIT_PATTERN, "I'm here:   it's 2024!!  Hello world"))

# %% [markdown]
# Splitting has a second benefit: the same chunk (" the", " and", " my") occurs
# thousands of times, so the trainer can count each **distinct** chunk once, weighted by
# how often it occurs, and after a merge update only the counts of chunks that contain
# the merged pair. That is what `gpt2course.tokenizer.train_bpe` does; it learns the
# merges of the whole of Tiny Shakespeare in about a second.

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
shakespeare_bpe = train_bpe(text, VOCAB_SIZE)
print(f"{shakespeare_bpe} in {time.perf_counter() - t0:.1f} s")

# %%
learned = [shakespeare_bpe.vocab[i] for i in shakespeare_bpe.merges.values()]
print("first merges:", learned[:12])
print("longest tokens:", sorted(learned, key=len)[-8:])

# %% [markdown]
# More merges, shorter sequences. Each prefix of the merge list is a smaller tokenizer,
# so we can watch the compression grow with the vocabulary:

# %%
probe = text[-20_000:]
sizes = [0, 32, 64, 128, 256, len(shakespeare_bpe.merges)]
bytes_per_token = []
for n in sizes:
    smaller = BPETokenizer(dict(list(shakespeare_bpe.merges.items())[:n]))
    bytes_per_token.append(len(probe.encode("utf-8")) / len(smaller.encode(probe)))

fig, ax = plt.subplots(figsize=(5, 2.8))
ax.plot([256 + n for n in sizes], bytes_per_token, marker="o")
ax.set_xlabel("vocabulary size")
ax.set_ylabel("bytes per token")
ax.set_title("More merges, fewer tokens")
plt.tight_layout()
plt.show()

# %% [markdown]
# A tokenizer is just its merges (and its split pattern), so it saves to a tiny text file:

# %%
path = shakespeare_bpe.save("shakespeare.bpe")
print("".join(path.open(encoding="utf-8").readlines()[:4]))
again = BPETokenizer.load(path)
print(again.encode(line) == shakespeare_bpe.encode(line))
path.unlink()

# %% [markdown]
# ## GPT-2's own tokenizer
# OpenAI published GPT-2's tokenizer as two files:
#
# - `vocab.bpe`: the **50,000 merges**, in the order they were learned;
# - `encoder.json`: the id of every token, 50,257 of them.
#
# Both write bytes as printable characters, with a fixed table (`bytes_to_unicode`): the
# space byte becomes `Ġ`, the newline `Ċ`. That is why GPT-2 tokens print with a `Ġ`.

# %%
merges_file = assets.fetch("vocab.bpe").read_text(encoding="utf-8").splitlines()
print(merges_file[:6])
print(f"{len(merges_file) - 1:,} merge lines")
print(f"space -> {bytes_to_unicode()[ord(' ')]!r}, newline -> {bytes_to_unicode()[ord(chr(10))]!r}")

# %% [markdown]
# `load_gpt2_tokenizer()` builds our `BPETokenizer` from those two files: the same
# algorithm as above, with GPT-2's merges. The vocabulary is 256 bytes + 50,000 merges +
# one **special token**, `<|endoftext|>`, which GPT-2 saw between documents.

# %%
gpt2 = load_gpt2_tokenizer()
print(gpt2)
print(f"n_vocab = {gpt2.n_vocab} = 256 + {len(gpt2.merges):,} + 1")
print(f"eot_token = {gpt2.eot_token} -> {gpt2.decode([gpt2.eot_token])!r}")

# %% [markdown]
# Special tokens are not text. If text from a user contains `<|endoftext|>`, encoding
# refuses by default, because silently turning it into the control token would let any
# user forge the end of a document. You must ask for it:

# %%
try:
    gpt2.encode("the end<|endoftext|>")
except ValueError as e:
    print("ValueError:", str(e).splitlines()[0])
print(gpt2.encode("the end<|endoftext|>", allowed_special={"<|endoftext|>"}))

# %% [markdown]
# ## The proof: the same ids as tiktoken
# `tiktoken` is OpenAI's fast tokenizer library. Our from-scratch encoder must give
# exactly its ids, on every text. Here is all of Tiny Shakespeare, plus some harder text
# (the course's tests also compare megabytes of Python's own sources and random Unicode):

# %%
tik = assets.tiktoken_gpt2()
hard = "naïve café, 漢字, emoji 👩‍👩‍👧, spaces     and\ttabs, 3.14159, don't, DON'T"
for name, t in [("Tiny Shakespeare", text), ("hard text", hard)]:
    ours_ids, their_ids = gpt2.encode(t), tik.encode(t)
    print(f"{name}: {len(ours_ids):,} tokens, identical to tiktoken: {ours_ids == their_ids}")
    assert ours_ids == their_ids and gpt2.decode(ours_ids) == t

# %% [markdown]
# And yours: `gpt2.built_on(encode, decode)` is the same tokenizer with **your** `encode`
# doing the byte pair encoding of each chunk and your `decode` the decoding. (Your `encode`
# starts from the bytes' own values, 0 to 255, while GPT-2 numbers the bytes in another
# order: `built_on` writes GPT-2's merges with the bytes' values for your `encode` and
# renumbers after.) Your checked `encode` and `decode` are kept on your workbench, and part
# 7 encodes its prompts with them.

# %%
yours = gpt2.built_on(encode, decode)
for name, t in [("Tiny Shakespeare, the first 20,000 characters", text[:20_000]), ("hard text", hard)]:
    ids = yours.encode(t)
    print(f"{name}: identical to tiktoken: {ids == tik.encode(t)}, decoded back: {yours.decode(ids) == t}")

# %% [markdown]
# tiktoken is written in Rust; ours is plain Python with a cache of already-encoded chunks
# (most chunks are common words, so most lookups hit). The gap is small enough for
# everything in this course:

# %%
# NBVAL_IGNORE_OUTPUT
for name, enc in [("ours", gpt2), ("tiktoken", tik)]:
    t0 = time.perf_counter()
    enc.encode_ordinary(text)
    print(f"{name:9} {time.perf_counter() - t0:.3f} s for 1.1 MB")

# %% [markdown]
# ## Oddities
# **Leading spaces.** The split keeps the space with the word after it, so `"hello"` and
# `" hello"` are different tokens, and so are capitalised forms. A model must learn each
# separately. (Below, `␣` marks a space; hover over a token for its id.)

# %%
for w in ["hello", " hello", "Hello", " HELLO"]:
    print(f"{w!r:10} -> {gpt2.encode(w)}")
display(HTML(render_tokens({"GPT-2": gpt2}, "hello hello Hello  HELLO", show_whitespace=True)))

# %% [markdown]
# **Numbers** are cut into whatever chunks happened to be frequent, so the same digits
# split differently in different numbers: one reason arithmetic is hard for GPT-2.

# %%
for n in ["2024", " 1999", " 12345678", " 3.14159", " 1,000,000"]:
    print(f"{n!r:14} -> {[gpt2.decode([i]) for i in gpt2.encode(n)]}")

# %% [markdown]
# **Other languages cost more.** GPT-2's merges were learned mostly on English web text,
# so the same sentence takes more tokens in other languages, more for scripts whose
# characters take several bytes each.

# %%
sentences = {
    "English": "The weather is nice today.",
    "French": "Il fait beau aujourd'hui.",
    "German": "Das Wetter ist heute schön.",
    "Spanish": "Hoy hace buen tiempo.",
    "Russian": "Сегодня хорошая погода.",
    "Chinese": "今天天气很好。",
    "Japanese": "今日はいい天気です。",
    "Hindi": "आज मौसम अच्छा है।",
    "Korean": "오늘 날씨가 좋아요.",
}
n_tokens = {lang: len(gpt2.encode(s)) for lang, s in sentences.items()}
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.bar(list(n_tokens), list(n_tokens.values()), color="tab:blue")
ax.set_ylabel("GPT-2 tokens")
ax.set_title('"The weather is nice today." in nine languages')
ax.tick_params(axis="x", rotation=45)
plt.tight_layout()
plt.show()
print(n_tokens)

# %% [markdown]
# **Strange tokens.** The merges were learned on one collection of text and the model on
# another. Some strings were frequent enough in the first to become single tokens, yet
# (the likely explanation) almost absent from the second, so their embeddings were hardly
# trained. The most famous, `" SolidGoldMagikarp"` (a Reddit username), is one GPT-2
# token; in 2023 people found that GPT-3 models, which share this vocabulary, behaved
# bizarrely when asked to repeat it. The longest tokens are runs of `_`, `-` or `=`, and
# `ÃÂÃÂ...`: text whose encoding was mangled over and over (UTF-8 read as Latin-1).

# %%
print(gpt2.encode(" SolidGoldMagikarp"), gpt2.encode("SolidGoldMagikarp"))
longest = sorted(range(50256), key=lambda i: len(gpt2.vocab[i]))[-4:]
for i in longest:
    print(i, gpt2.decode([i])[:40] + "...")

# %% [markdown]
# ## Try it: the token viewer
# Type in the box to see the tokens of our Shakespeare tokenizer and of GPT-2 side by
# side. Try your name, a sentence in another language, some code, a long number. (The
# viewer needs a live notebook; the static picture below it works everywhere.)

# %%
# NBVAL_IGNORE_OUTPUT
tokenizers = {
    f"ours ({shakespeare_bpe.n_vocab} tokens, Shakespeare)": shakespeare_bpe,
    "GPT-2": gpt2,
}
token_viewer(tokenizers, text="Wherefore art thou Romeo? Tokenizers are fun, 12345.")

# %%
display(HTML(render_tokens(tokenizers, "Wherefore art thou Romeo? Tokenizers are fun, 12345.")))

# %% [markdown]
# ## What we have
# - `count_pairs`, `merge`, `train`, `encode`, `decode`: BPE in five short functions.
# - `train_bpe`: the same training, fast enough for real text, on GPT-2's pre-split chunks.
# - `load_gpt2_tokenizer()`: GPT-2's tokenizer rebuilt on our code, equal to tiktoken.
#
# From here on the course encodes text with tiktoken, which gives the same ids faster, except
# in part 7, where GPT-2 itself reads prompts encoded by your `encode`.
# Next, part 2 turns those ids into training windows and embeddings.
