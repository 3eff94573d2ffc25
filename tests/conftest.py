"""Shared test configuration (each domain's tests keep their helpers beside them).

Hypothesis runs derandomized by default: the same examples on every run and machine, so a
red CI is a defect and not a draw. `HEDGERD_HYPOTHESIS=explore` runs fresh random examples
(and keeps the failure database) for a local bug hunt; pin what it finds with `@example`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from journal_backends import JournalBackend
from pg_server import PgServer, find_binaries, running_server, scratch_schema

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("HEDGERD_HYPOTHESIS") == "explore" else "ci")


# Modules whose names mean "this test runs on the simulator's calendar" (see pinned_clock).
_CALENDAR_MODULES = frozenset({"pinned_clock", "e2e_support"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "calendar: runs on a simulated calendar pinned by HEDGERD_TEST_START "
        "(scripts/calendar_check runs these at several start dates)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `calendar` every test of a module that takes anything from `pinned_clock` or the
    e2e helpers (which start simulators at `TEST_START_MS`): marked by what it uses, a test
    cannot be left out of the calendar check by forgetting a decorator."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and uses_pinned_calendar(vars(module)):
            item.add_marker(pytest.mark.calendar)


def uses_pinned_calendar(namespace: dict[str, object]) -> bool:
    """Whether a module's globals hold something from the pinned-calendar helpers."""
    return any(
        getattr(value, "__module__", None) in _CALENDAR_MODULES
        or getattr(value, "__name__", None) in _CALENDAR_MODULES
        for value in namespace.values()
    ) or "TEST_START_MS" in namespace


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL for the whole session (tests/pg_server.py); the tests that ask
    for it skip, saying why, where PostgreSQL or psycopg is not installed."""
    binaries = find_binaries()
    if isinstance(binaries, str):
        pytest.skip(binaries)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    with running_server(binaries) as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A connection URL to an empty schema of the throwaway PostgreSQL, dropped afterwards."""
    with scratch_schema(pg_server) as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def journal_backend(request: pytest.FixtureRequest) -> JournalBackend:
    """Each journal test once per engine (tests/journal_backends.py); the PostgreSQL run
    skips, saying why, where PostgreSQL is not installed."""
    if request.param == "postgresql":
        return JournalBackend("postgresql", request.getfixturevalue("pg_server"))
    return JournalBackend("sqlite")
