"""Fixtures of the end-to-end tests (their helpers are `e2e_support`'s)."""

from __future__ import annotations

import pytest

from hedgerd.portfolio import flow_seed, volvol_seed


@pytest.fixture
def patient_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first decision after a start waits for the history seeds (option flow,
    vol-of-vol) `SEED_WAIT_S` (2 s, wall) at most; a loaded test machine may take longer to
    page them. Tests about what the seeds hold wait until they land instead (a fetch that
    lands ends the wait at once)."""
    monkeypatch.setattr(flow_seed, "SEED_WAIT_S", 60.0)
    monkeypatch.setattr(volvol_seed, "SEED_WAIT_S", 60.0)
