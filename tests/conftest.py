"""Hypothesis settings profiles: "ci" (derandomized, default) and "thorough".

Choose with the environment variable HYPOTHESIS_PROFILE.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, max_examples=25, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
