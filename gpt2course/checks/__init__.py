"""Checks for the notebooks' exercises: ``my_fn = check_thing(my_fn)``.

Each check compares the learner's code with the reference on random inputs, prints one
line, names the likely bug when it fails, and returns what the notebook should use next.
"""

from ._core import (  # noqa: F401
    CheckBug,
    CheckFailure,
    call,
    compare_tensors,
    compare_values,
    is_handed_back,
    require_tensor,
    run_check,
    say,
)
from .attention import *  # noqa: F403
from .chat import *  # noqa: F403
from .embeddings import *  # noqa: F403
from .finetuning import *  # noqa: F403
from .generation import *  # noqa: F403
from .model import *  # noqa: F403
from .pretrained import *  # noqa: F403
from .rlhf import *  # noqa: F403
from .tokenization import *  # noqa: F403
from .training import *  # noqa: F403
from .transformer import *  # noqa: F403
from .warmup import *  # noqa: F403
