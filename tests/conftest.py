"""Shared test configuration (each domain's tests keep their helpers beside them).

Hypothesis runs derandomized by default: the same examples on every run and machine, so a
red CI is a defect and not a draw. `HEDGERD_HYPOTHESIS=explore` runs fresh random examples
(and keeps the failure database) for a local bug hunt; pin what it finds with `@example`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog
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


# The modules with the longest tests (seconds to a minute each: drills, `hedgerd` processes),
# slowest first. scripts/test runs them first: pytest-xdist's `worksteal` hands each of its
# workers an equal run of the list in order (scripts/test's three, HEDGERD_TEST_WORKERS: the
# first third to the first worker, and so on), and a worker that runs out takes the tail half
# of the longest queue left, so the long tests start at once and the short ones fill in
# around them; a long test at the end of the list would run alone while the other workers
# idle. Whole modules move, so their module-scoped fixtures stay shared. A module missing
# here only runs in its usual place.
_SLOW_FIRST = (
    "tests/drills/test_drill_failover.py",
    "tests/e2e/test_paper_and_run.py",
    "tests/drills/test_drill_crash.py",
    "tests/e2e/test_secrets_not_leaked.py",
    "tests/e2e/test_two_accounts_e2e.py",
    "tests/execution/test_executor_sigkill.py",
    "tests/e2e/test_two_venues_e2e.py",
    "tests/e2e/test_delta_breach_e2e.py",
    "tests/e2e/test_ha_failover_e2e.py",
    "tests/e2e/test_daemon_control.py",
    "tests/backtest/test_backtest_exact_band.py",
    "tests/e2e/test_ctl_paper_e2e.py",
    "tests/e2e/test_kill_switches_e2e.py",
    "tests/drills/test_drill_chaos.py",
    "tests/drills/test_drill_soak.py",
    "tests/backtest/test_backtest_harness.py",
    "tests/venues/test_venue_positions_command.py",
    "tests/e2e/test_divergence_refresh_e2e.py",
    "tests/e2e/test_flatten_e2e.py",
    "tests/execution/test_journal.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `calendar` every test of a module that takes anything from `pinned_clock` or the
    e2e helpers (which start simulators at `TEST_START_MS`): marked by what it uses, a test
    cannot be left out of the calendar check by forgetting a decorator. Then order the
    modules of `_SLOW_FIRST` ahead of the rest (the same order on every xdist worker)."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and uses_pinned_calendar(vars(module)):
            item.add_marker(pytest.mark.calendar)
    rank = {path: i for i, path in enumerate(_SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def uses_pinned_calendar(namespace: dict[str, object]) -> bool:
    """Whether a module's globals hold something from the pinned-calendar helpers."""
    return (
        any(
            getattr(value, "__module__", None) in _CALENDAR_MODULES
            or getattr(value, "__name__", None) in _CALENDAR_MODULES
            for value in namespace.values()
        )
        or "TEST_START_MS" in namespace
    )


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


@pytest.fixture
def patient_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first decision after a start waits for the history seeds (option flow,
    vol-of-vol) `SEED_WAIT_S` (2 s, wall) at most; a loaded test machine may take longer to
    page them. Tests about what the seeds hold wait until they land instead (a fetch that
    lands ends the wait at once)."""
    from hedgerd.portfolio import flow_seed, volvol_seed

    monkeypatch.setattr(flow_seed, "SEED_WAIT_S", 60.0)
    monkeypatch.setattr(volvol_seed, "SEED_WAIT_S", 60.0)


@pytest.fixture
def default_logging() -> Iterator[None]:
    """structlog's defaults for a test that asserts on its logs (`capture_logs`): another
    test may have configured a level filter (configure_logging) that drops info events
    before capture_logs sees them."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)
