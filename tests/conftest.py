"""Shared test configuration (each domain's tests keep their helpers beside them).

Hypothesis runs derandomized by default: the same examples on every run and machine, so a
red CI is a defect and not a draw. `HEDGERD_HYPOTHESIS=explore` runs fresh random examples
(and keeps the failure database) for a local bug hunt; pin what it finds with `@example`.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("HEDGERD_HYPOTHESIS") == "explore" else "ci")
