# %% [markdown]
# Welcome. Over ten notebooks you will build GPT-2 yourself: the tokenizer, the
# embeddings, attention, the transformer block, training, and finally the real
# pretrained GPT-2 from OpenAI, generating text with your own code, and at the end the steps
# that turn such a model into a chat assistant, in miniature.
#
# *Machine time: this notebook's cells take about 6 seconds on a quiet 2-core CPU (measured
# 2026-12-06); each notebook says its own at the top.*
#
# ## What GPT-2 is
# GPT-2 is a **language model**: given some text, it gives a probability to every possible
# next token, and writing text is just picking a next token again and again. It was made by
# OpenAI and announced in February 2019 (Radford et al., *Language Models are Unsupervised
# Multitask Learners*). Inside, it is a **decoder-only Transformer**: a stack of identical
# blocks of causal self-attention (each token looks only at the tokens before it) and a
# small MLP, the architecture of Vaswani et al. 2017 without its encoder half.
#
# It was trained on one task only, predicting the next token, on **WebText**: the text of
# web pages linked from Reddit posts with at least 3 karma (a cheap filter for pages that
# people found worth sharing), about 8 million documents and 40 GB of text, Wikipedia
# removed. With no further training it could write coherent paragraphs and, posed the right
# way, summarise, answer questions and translate a little; the paper's title is that claim.
#
# It comes in **four sizes**, all the same design at different depth and width:
#
# | name | layers | width | paper's figure | counted (part 4) |
# | --- | --- | --- | --- | --- |
# | `gpt2` (small) | 12 | 768 | 117M | 124M |
# | `gpt2-medium` | 24 | 1,024 | 345M | 355M |
# | `gpt2-large` | 36 | 1,280 | 762M | 774M |
# | `gpt2-xl` | 48 | 1,600 | 1,542M | 1,558M |
#
# The paper's figures are smaller than the weights OpenAI published: counting the published
# tensors, as part 4 does, gives 124,439,808 for the small model, and OpenAI's own later
# posts use 124M, 355M, 774M and 1.5B. The names in the left column are the ones the
# published weights go by.
#
# GPT-2's predecessor is **GPT-1** (Radford et al. 2018, *Improving Language Understanding
# by Generative Pre-Training*): the same recipe of pretraining a Transformer decoder on
# unlabelled text, at the size of GPT-2 small, on a corpus of books, followed by fine-tuning
# on each task. GPT-2 made it more than ten times larger, moved LayerNorm in front of each sublayer
# (part 4), and showed that with enough data the fine-tuning step could sometimes be
# skipped. Parts 9 and 10 follow the line on to GPT-3, ChatGPT and GPT-4.
#
# ## The course in one picture
# Parts 1 to 5 build the model piece by piece; part 6 trains a small one; parts 7 and 8
# load OpenAI's weights into your code and fine-tune them; part 9 looks at what separates
# GPT-2 from ChatGPT and tunes a model to chat; part 10 runs the rest of ChatGPT's recipe in
# miniature: a reward model, RL with a KL penalty, and DPO.

# %%
import matplotlib.pyplot as plt

from gpt2course.figures import roadmap_figure

roadmap_figure()
plt.show()

# %% [markdown]
# ## How the course works
#
# Every notebook comes in three versions, all made from one source:
#
# | folder | what it is for |
# | --- | --- |
# | `notebooks/` | **yours**: the exercises are empty, ready for you to write |
# | `notebooks/solutions/` | the same notebook with every exercise done |
# | `notebooks/instructor/` | the solutions plus timings and notes for workshops |
#
# Behind the notebooks is a small Python package, `gpt2course`, with a tested
# reference implementation of every piece. An exercise looks like this:
#
# 1. a function with an empty body that you write,
# 2. a check cell, `f = checks.check_f(f)`, that compares your function with the
#    reference on random inputs and prints one line,
# 3. the rest of the notebook, which uses whatever the check returned.
#
# If your function is right, the check keeps it. If it is wrong, the check says what
# differs and names the likely bug, then hands back the reference so that you can carry
# on and come back later. If you skip an exercise, the reference is used. So every
# notebook runs from top to bottom, whatever you have done before, and you can start at
# any notebook.
#
# Each exercise has a `# HINT:` line that names the step. Stuck? Run its check again with
# `hint=2`, then `hint=3`: `f = checks.check_f(f, hint=2)` prints a bigger step.

# %% [markdown]
# ## Your workbench: your pieces become your GPT-2
#
# A check that passes also **keeps** your code: the source of your function or class goes
# into a folder, your **workbench**. The later notebooks build on it: part 4's block asks
# for your attention from part 3, part 5's GPT for your block, and so on, until part 7
# loads OpenAI's weights into a GPT made of your classes. Each notebook asks for the pieces
# it needs with `workbench.use(...)`, which rebuilds each one from its saved source, checks
# it again, and uses yours if it passes, else the reference's, each piece on its own:

# %%
from gpt2course.figures import workbench_figure

workbench_figure()
plt.show()

# %% [markdown]
# `workbench.use` prints one line that says which pieces are yours and, for each of the
# others, why not:
#
# ```
# Pieces in use, yours: CausalSelfAttention. the reference's: MLP (not saved yet: run part 04's check).
# ```
#
# and a model says what it is made of: `This model's parts: yours: none; the reference's:
# GPT, Block, ...` means that none of its classes are your code. You skipped those
# exercises, their checks failed, or your pieces were kept somewhere this notebook cannot
# see (in Colab, on another machine; below).
#
# **Where the pieces are kept**: in the folder `.gpt2course-workbench` beside the notebooks,
# or in the folder that the environment variable `GPT2COURSE_WORKBENCH` names, one file per
# piece (`CausalSelfAttention.py`). `workbench.saved()` shows what is there (so does the last
# line of `python -m gpt2course doctor`, below); `workbench.forget("MLP")` drops a piece, so the
# reference is used again.
#
# **In Colab** every notebook runs on a machine of its own, which forgets everything when
# it stops. The first cell of each notebook therefore asks for permission to mount your
# Google Drive and keeps the pieces in `MyDrive/gpt2course-workbench`. Say no, or set
# `KEEP_MY_PIECES_ON_DRIVE = False` in that cell, and your pieces last only as long as the
# notebook you wrote them in.
#
# **To get a piece back** after you fix it: in its notebook, run the cell that defines it,
# then its check cell; the ✓ replaces the saved version. Then, in the later notebook, run
# its `workbench.use(...)` cell again (and the cells after it, which built the model
# from the old pieces). A wrong answer is never kept: a piece that fails its check leaves
# the last passing version on the workbench.

# %% [markdown]
# ## Your environment
#
# The first cell of every notebook installs the course package when it runs in Google
# Colab; elsewhere you installed it already (see the README). This cell checks the rest:
# Python, PyTorch, the device, the widgets, and the files the course downloads. Each
# problem comes with a one-line fix. The same report is one command away in a terminal:
# `python -m gpt2course doctor`.

# %%
# NBVAL_IGNORE_OUTPUT
from gpt2course import doctor

print(doctor.report(doctor.diagnose()))

# %% [markdown]
# ## The device
#
# PyTorch runs on a GPU when there is one (`cuda` on NVIDIA, `mps` on Apple silicon),
# else on the CPU. Every notebook runs on a CPU; parts 6 to 8 are faster on a GPU.
# Half precision halves memory and speeds up a GPU, but only in a format the GPU really
# has: Colab's T4 claims bf16 yet only emulates it, so there the course uses fp16.

# %%
# NBVAL_IGNORE_OUTPUT
import torch

from gpt2course.device import in_colab, pick_device, pick_dtype

device = pick_device()
print(
    f"torch {torch.__version__}, device {device}, dtype {pick_dtype(device)}, Colab: {in_colab()}"
)

# %% [markdown]
# ## The downloads
#
# The course downloads a few files once: GPT-2's tokenizer files and Tiny Shakespeare,
# about 3 MB. Each is checked against its published sha256 before it is used, and kept
# in one cache folder. In a room without wifi, your instructor will give you a folder
# to import instead: `python -m gpt2course assets seed --from FOLDER`.

# %%
from gpt2course import assets

for name in assets.ASSETS:
    path = assets.fetch(name)
    print(f"{name:<20} {path.stat().st_size:>9,} bytes, sha256 verified")

# %% [markdown]
# ## A warm-up exercise: softmax
#
# Softmax turns a row of scores into probabilities: exponentiate, then divide by the
# sum, so that each row is positive and sums to 1. You will meet it again in attention
# and in text generation. Write it for a tensor `x`, over the last dimension.
#
# One trap: `exp(1000)` is infinite in floating point, and `inf / inf` is `NaN`.
# Subtracting each row's maximum first changes nothing mathematically
# (the factor `exp(-max)` cancels) and keeps every `exp` at most 1.

# %%
import torch

from gpt2course import checks


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, safe for large inputs."""
    # BEGIN SOLUTION
    # HINT: x.amax(dim=-1, keepdim=True) is each row's maximum.
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)
    # END SOLUTION


# %%
softmax = checks.check_softmax(softmax)

# %% [markdown]
# Whatever the check printed, `softmax` now holds a working function:

# %%
print(softmax(torch.tensor([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]])))

# %% [markdown]
# Try breaking it on purpose: remove the max subtraction, run the two cells again,
# and read what the check says. Then on to [tokenization](01_tokenization.ipynb).

# %% [markdown] instructor
# **Instructor.** ⏱ 10 minutes. Have everyone run the environment cell first and fix
# any `BAD` line before moving on; in a room without wifi, seed the assets first.
