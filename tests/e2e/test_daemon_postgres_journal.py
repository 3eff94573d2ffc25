"""The whole daemon on a PostgreSQL journal (`[journal] url`): it hedges with intents
journalled in PostgreSQL, `hedgerctl halt` and `hedgerctl events` work as on SQLite, and
`hedgerd journal export` reads the same database."""

from __future__ import annotations

import json

import pytest
from e2e_support import (
    daemon_config,
    hedgerctl,
    orders_received,
    short_dir,
    simulator,
    start_daemon,
    wait_for,
)

from hedgerd.cli import main as hedgerd_main
from hedgerd.execution.journal import JournalStore
from hedgerd.execution.journal_db import PostgresTarget

SPEED = 10.0


async def test_daemon_hedges_and_is_operated_on_a_postgres_journal(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with simulator(SPEED) as sim:
        values = daemon_config(work)
        values["journal"] = {"url": pg_url}
        run = await start_daemon(sim, values, SPEED)
        await wait_for(lambda: orders_received(sim) > 0, 20.0, "the first hedge")
        code, out = await hedgerctl(sock, "halt", "--reason", "pg-e2e")
        assert code == 0, out
        code, out = await hedgerctl(sock, "events")
        assert code == 0, out
        assert "halt  reason=pg-e2e" in out
        assert await run.shutdown() == 0
    assert not (work / "journal.sqlite").exists()  # the file journal was not used

    store = JournalStore(PostgresTarget(pg_url), readonly=True)
    try:
        assert store.count_intents_since(0) >= 1  # the hedge's intent went to PostgreSQL
        last = store.last_trading_state()
        assert last is not None and last.state == "halted"
    finally:
        store.close()

    capsys.readouterr()
    argv = ["journal", "export", "--journal", pg_url, "--since", "0", "--table", "audit"]
    assert hedgerd_main([*argv, "--format", "json"]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert [row["command"] for row in audit][:1] == ["halt"]
