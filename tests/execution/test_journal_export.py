"""`hedgerd journal export`: tables, time windows, formats, owner-only output, exit codes; from
a SQLite file and from a PostgreSQL URL (`journal_backend`)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hedgerd.execution import journal_command
from hedgerd.execution.client_ids import client_label
from hedgerd.execution.journal import DecisionRecord, JournalStore
from hedgerd.execution.journal_command import add_parser, parse_time_ms
from hedgerd.execution.journal_db import JournalLocation
from hedgerd.execution.order_state import OrderStyle, Sent, new_order
from hedgerd.model.instruments import AmountUnit
from hedgerd.model.orders import Fill, OrderSide
from journal_backends import JournalBackend
from pg_server import PgServer

T0 = 1_763_730_000_000  # 2025-11-21T13:00:00Z


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hedgerd")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def export(journal: JournalLocation, *extra: str) -> argparse.Namespace:
    return parse(["journal", "export", "--journal", str(journal), *extra])


@pytest.fixture
def journal(journal_backend: JournalBackend) -> Iterator[JournalLocation]:
    with journal_backend.fresh() as location:
        _write_journal(location)
        yield location


def _write_journal(path: JournalLocation) -> None:
    store = JournalStore(path)
    for i in range(3):
        did = f"d{i}"
        order = new_order(
            label=client_label(did, 0),
            decision_id=did,
            venue="deribit",
            instrument="BTC-PERPETUAL",
            side=OrderSide.BUY,
            amount=100.0,
            amount_unit=AmountUnit.USD,
            limit_price=50_000.0,
            style=OrderStyle.IOC_LIMIT,
            reduce_only=False,
            created_ms=T0 + i * 60_000,
        )
        store.record_intent(
            order, DecisionRecord(did, T0 + i * 60_000, "BTC", "band", {"i": i, "why": "band"})
        )
        store.apply_event(order.label, Sent(T0 + i * 60_000 + 1))
        store.record_fill(
            Fill(
                venue="deribit",
                instrument="BTC-PERPETUAL",
                trade_id=f"t{i}",
                order_id=f"o{i}",
                label=order.label,
                side=OrderSide.BUY,
                amount=100.0,
                price=50_000.0 + i,
                fee=0.0,
                fee_currency="BTC",
                ts_ms=T0 + i * 60_000 + 2,
            )
        )
    store.record_operator_command(ts_ms=T0, uid=1000, command="halt", args={"reason": "x"})
    store.close()


def test_parse_time() -> None:
    assert parse_time_ms(str(T0)) == T0
    assert parse_time_ms("2025-11-21T13:00:00Z") == T0
    assert parse_time_ms("2025-11-21T13:00:00") == T0  # no zone: UTC
    assert parse_time_ms("2025-11-21T14:00:00+01:00") == T0
    with pytest.raises(ValueError):
        parse_time_ms("yesterday")


def test_csv_fills_in_a_window(
    journal: JournalLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    args = export(
        journal, "--table", "fills", "--since", "2025-11-21T13:01:00Z", "--until", str(T0 + 120_000)
    )
    assert args.func(args) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [r["trade_id"] for r in rows] == ["t1"]  # t0 before since, t2 at/after until
    assert rows[0]["time_utc"] == "2025-11-21T13:01:00.002+00:00"
    assert float(rows[0]["price"]) == 50_001.0
    assert "exported 1 fills rows" in captured.err


def test_json_events_with_nested_payload(
    journal: JournalLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(
        ["journal", "export", "--journal", str(journal), "--since", "0", "--format", "json"]
    )
    assert args.func(args) == 0
    events = json.loads(capsys.readouterr().out)
    kinds = [e["kind"] for e in events]
    assert kinds.count("decision") == 3 and kinds.count("fill") == 0  # fills update orders
    assert "operator" in kinds and kinds.count("order") == 6
    decision = next(e for e in events if e["kind"] == "decision")
    assert decision["payload"] == {"reason": "band", "underlying": "BTC"}


@pytest.mark.parametrize("table", list(journal_command.TABLES))
def test_every_table_exports_in_every_format(
    journal: JournalLocation, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in journal_command.FORMATS:
        args = export(journal, "--since", "0", "--table", table, "--format", fmt)
        assert args.func(args) == 0
        out = capsys.readouterr().out
        if fmt == "json":
            json.loads(out)
        elif fmt == "jsonl":
            for line in out.splitlines():
                json.loads(line)
        else:
            assert out.startswith("time_utc,")


def test_decisions_keep_their_payload(
    journal: JournalLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    args = export(journal, "--since", "0", "--table", "decisions", "--format", "jsonl")
    assert args.func(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["payload"]["i"] for r in rows] == [0, 1, 2]


def test_out_file_is_owner_only(journal: JournalLocation, tmp_path: Path) -> None:
    out = tmp_path / "orders.csv"
    args = export(journal, "--since", "0", "--table", "orders", "--out", str(out))
    assert args.func(args) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["filled"] * 3


def test_export_while_the_daemon_holds_the_journal(
    journal: JournalLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = JournalStore(journal)  # holds the writer lock, like a running daemon
    try:
        args = parse(["journal", "export", "--journal", str(journal), "--since", "0"])
        assert args.func(args) == 0
    finally:
        writer.close()


def test_exit_codes(
    tmp_path: Path, journal: JournalLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = parse(["journal", "export", "--journal", str(tmp_path / "no.sqlite"), "--since", "0"])
    assert missing.func(missing) == 1
    bad_time = parse(["journal", "export", "--journal", str(journal), "--since", "soon"])
    assert bad_time.func(bad_time) == 2
    backwards = parse(
        ["journal", "export", "--journal", str(journal), "--since", "10", "--until", "5"]
    )
    assert backwards.func(backwards) == 2
    assert "must be after" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["journal", "export", "--journal", str(journal), "--since", "0", "--table", "x"])


def test_postgresql_url_errors(pg_server: PgServer, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "pw-5d1e9c"
    with_password = pg_server.url().replace("hedgerd@", f"hedgerd:{secret}@")
    args = parse(["journal", "export", "--journal", with_password, "--since", "0"])
    assert args.func(args) == 2  # refused before connecting: it would show in ps and logs
    err = capsys.readouterr().err
    assert "must not contain a password" in err and secret not in err
    empty = parse(["journal", "export", "--journal", pg_server.url(), "--since", "0"])
    assert empty.func(empty) == 1
    assert "no journal there" in capsys.readouterr().err
    nowhere = pg_server.url().replace(f":{pg_server.port}/", ":1/")
    down = parse(["journal", "export", "--journal", nowhere, "--since", "0"])
    assert down.func(down) == 1
