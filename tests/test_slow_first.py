"""The slowest-first order of conftest's `_SLOW_FIRST` (scripts/test's worker balance) names
modules that exist: a renamed module would silently fall back to its usual place."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import _SLOW_FIRST

ROOT = Path(__file__).resolve().parents[1]


def test_every_slow_first_module_exists_once() -> None:
    assert len(set(_SLOW_FIRST)) == len(_SLOW_FIRST)
    assert [p for p in _SLOW_FIRST if not (ROOT / p).is_file()] == []


def test_the_slow_modules_are_collected_first(request: pytest.FixtureRequest) -> None:
    modules = [item.nodeid.split("::", 1)[0] for item in request.session.items]
    slow = [m for m in _SLOW_FIRST if m in modules]
    # Whatever part of the suite was collected: its slow modules lead, in the list's order.
    assert list(dict.fromkeys(modules))[: len(slow)] == slow
