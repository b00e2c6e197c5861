"""Run notebooks (nbval starts their kernels with this environment) in quick mode."""

import os

os.environ.setdefault("GPT2COURSE_QUICK", "1")
