"""`hedgerd journal export`: the journal as CSV or JSON for analysis.

    hedgerd journal export --journal var/hedgerd.sqlite --since 2026-11-20T00:00Z \\
        [--until 1763683200000] [--table decisions|orders|fills|events|state|audit] \\
        [--format csv|json|jsonl] [--out FILE] [--plot OUT.png]
    hedgerd journal export --journal postgresql://hedgerd@db1/hedgerd --since ...

`--journal` is a SQLite file or a PostgreSQL URL without a password; the password comes from
HEDGERD_JOURNAL__PASSWORD or the file HEDGERD_JOURNAL__PASSWORD_FILE names (as for the
daemon), else from libpq's PGPASSWORD or ~/.pgpass.

`--since`/`--until` take ISO 8601 (a time without a zone is UTC) or UTC epoch milliseconds;
rows are selected by their time column (decisions, fills, events, state, audit: `ts_ms`;
orders: `created_ms`) in [since, until). Every row gets a leading `time_utc` (ISO 8601) next to
the epoch-ms columns. JSON columns (payload, reasons, args) are nested objects in json/jsonl and
JSON text in csv. The journal is opened read-only, so exporting from a running daemon's journal
is safe. `--out` files are created owner-only, like the journal.

`--plot OUT.png` draws, per underlying, the delta against its band at each journalled decision
with the hedge fills marked, and the cumulative hedge cost (`execution.journal_series`; needs
matplotlib, the `plot` extra). With `--plot`, rows are written only when `--out` is given.

Exit codes: 0 done, 1 the journal cannot be read, 2 bad arguments (or nothing to draw, or no
matplotlib, for `--plot`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from hedgerd.execution.journal import FILE_MODE, JournalError, JournalStore
from hedgerd.execution.journal_db import (
    JournalLocation,
    JournalUrlError,
    journal_location,
    location_name,
)
from hedgerd.execution.journal_schema import JournalVersionError
from hedgerd.execution.journal_series import JOURNAL_COST_LABEL, load_journal_series
from hedgerd.ops.plots import PlotUnavailableError, write_hedge_plot
from hedgerd.secret_files import env_secret
from hedgerd.textfmt import utc_iso as _iso

if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_JOURNAL = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class _Table:
    sql_name: str
    time_column: str
    json_columns: tuple[str, ...]
    #: Breaks ties in time: insertion order (`rowid` is SQLite's implicit one, which the
    #: PostgreSQL schema makes explicit; `seq` is the rowid itself where a table has one).
    order_column: str


TABLES: dict[str, _Table] = {
    "decisions": _Table("decisions", "ts_ms", ("payload",), "rowid"),
    "orders": _Table("orders", "created_ms", (), "rowid"),
    "fills": _Table("fills", "ts_ms", (), "seq"),
    "events": _Table("events", "ts_ms", ("payload",), "seq"),
    "state": _Table("trading_state_history", "ts_ms", ("reasons",), "seq"),
    # (account, seq) is the key: rowid (explicit on PostgreSQL) keeps insertion order
    "account_state": _Table("account_trading_state_history", "ts_ms", ("reasons",), "rowid"),
    "audit": _Table("audit_log", "ts_ms", ("args",), "seq"),
    # the vol-of-vol samples the hedge loop seeds its estimate from (`portfolio.volvol_seed`)
    "volvol": _Table("volvol_samples", "ts_ms", (), "rowid"),
}
FORMATS = ("csv", "json", "jsonl")


class TimeArgError(ValueError):
    pass


def parse_time_ms(text: str) -> int:
    """UTC epoch milliseconds from epoch milliseconds or ISO 8601 (no zone: UTC)."""
    text = text.strip()
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TimeArgError(
            f"{text!r} is neither ISO 8601 (2026-11-21T13:00:00Z) nor epoch milliseconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def add_parser(sub: SubParsers) -> None:
    """Register `journal` (with its `export` subcommand) on the `hedgerd` subparsers."""
    journal = sub.add_parser("journal", help="read the journal (export for analysis)")
    journal_sub = journal.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    export = journal_sub.add_parser(
        "export",
        help="write journal rows as CSV or JSON",
        description="Export journal rows in [--since, --until) as CSV or JSON. Times are ISO "
        "8601 (UTC when no zone is given) or UTC epoch milliseconds.",
    )
    export.add_argument(
        "--journal",
        required=True,
        help="journal: a SQLite file or a postgresql:// URL (no password in it)",
    )
    export.add_argument("--since", required=True, help="start, inclusive (ISO 8601 or epoch ms)")
    export.add_argument("--until", help="end, exclusive (ISO 8601 or epoch ms); default: no end")
    export.add_argument("--table", choices=tuple(TABLES), default="events", help="what to export")
    export.add_argument("--format", choices=FORMATS, default="csv", help="output format")
    export.add_argument("--out", type=Path, help="write here (owner-only) instead of stdout")
    export.add_argument(
        "--plot",
        type=Path,
        help="also draw delta vs band with the hedges, and cumulative hedge cost, per "
        "underlying (PNG); rows then go to --out only",
    )
    journal.set_defaults(func=run)
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "journal_command", None) != "export":
        print("usage: hedgerd journal export ...", file=sys.stderr)
        return EXIT_USAGE
    try:
        since_ms = parse_time_ms(args.since)
        until_ms = parse_time_ms(args.until) if args.until is not None else None
    except TimeArgError as exc:
        print(f"hedgerd journal export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if until_ms is not None and until_ms <= since_ms:
        print("hedgerd journal export: --until must be after --since", file=sys.stderr)
        return EXIT_USAGE
    try:
        location = _location(str(args.journal))
    except (JournalUrlError, ValueError) as exc:
        print(f"hedgerd journal export: --journal: {exc}", file=sys.stderr)
        return EXIT_USAGE
    name = location_name(location)
    db_errors = _db_errors()
    open_errors: tuple[type[Exception], ...] = (JournalError, JournalVersionError, *db_errors)
    try:
        store = JournalStore(location, readonly=True)
    except open_errors as exc:
        print(f"hedgerd journal export: {name}: {exc}", file=sys.stderr)
        return EXIT_JOURNAL
    try:
        if args.plot is not None:
            status = _plot(store, args.plot, since_ms, until_ms)
            if status != EXIT_OK or args.out is None:
                return status
        table = TABLES[args.table]
        columns = _columns(store, table)
        rows = _rows(store, table, since_ms, until_ms)
        if args.out is not None:
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with open(fd, "w", encoding="utf-8", newline="") as out:
                count = _write(rows, args.format, out, columns)
        else:
            count = _write(rows, args.format, sys.stdout, columns)
            sys.stdout.flush()
    except db_errors as exc:
        print(f"hedgerd journal export: {name}: {exc}", file=sys.stderr)
        return EXIT_JOURNAL
    except BrokenPipeError:  # `... | head`: the reader is gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    finally:
        store.close()
    print(f"exported {count} {args.table} rows", file=sys.stderr)
    return EXIT_OK


def _location(text: str) -> JournalLocation:
    """The journal the command names; a PostgreSQL password from the daemon's variables."""
    password = env_secret("HEDGERD_JOURNAL__PASSWORD", "HEDGERD_JOURNAL__PASSWORD_FILE")
    return journal_location(text, password)


def _db_errors() -> tuple[type[Exception], ...]:
    """The engines' own errors (psycopg's only where it is installed)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def _plot(store: JournalStore, path: Path, since_ms: int, until_ms: int | None) -> int:
    series = load_journal_series(store, since_ms, until_ms)
    span = f"[{_iso(since_ms)}, {_iso(until_ms) if until_ms is not None else 'end'})"
    if not series:
        print(
            f"hedgerd journal export: no hedge decisions in {span}: nothing to draw",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        write_hedge_plot(
            path,
            series,
            title=f"hedgerd journal {_short_name(store)}: {span}",
            cost_label=JOURNAL_COST_LABEL,
        )
    except PlotUnavailableError as exc:
        print(f"hedgerd journal export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the picture's file cannot be written
        print(f"hedgerd journal export: --plot {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    names = ", ".join(s.underlying for s in series)
    print(f"wrote {path} ({names})", file=sys.stderr)
    return EXIT_OK


def _short_name(store: JournalStore) -> str:
    return store.path.name if store.path is not None else store.name


def _rows(
    store: JournalStore, table: _Table, since_ms: int, until_ms: int | None
) -> Iterator[dict[str, Any]]:
    # Table and column names come from TABLES and the schema, never from the command line.
    columns = store.columns(table.sql_name)
    sql = (
        f"SELECT {', '.join(columns)} FROM {table.sql_name} WHERE {table.time_column} >= ? "
        f"AND {table.time_column} < ? ORDER BY {table.time_column}, {table.order_column}"
    )
    for row in store.iter_rows(sql, (since_ms, until_ms if until_ms is not None else 2**62)):
        out: dict[str, Any] = {"time_utc": _iso(row[table.time_column])}
        for key in columns:
            value = row[key]
            if key in table.json_columns and isinstance(value, str):
                value = json.loads(value)
            out[key] = value
        yield out


def _columns(store: JournalStore, table: _Table) -> list[str]:
    return ["time_utc", *store.columns(table.sql_name)]


def _write(rows: Iterator[dict[str, Any]], fmt: str, out: IO[str], columns: list[str]) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
                    for k, v in row.items()
                }
            )
            count += 1
        return count
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row) + "\n")
            count += 1
        return count
    out.write("[")
    for row in rows:
        out.write(("\n" if count == 0 else ",\n") + json.dumps(row))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


__all__ = ["FORMATS", "TABLES", "add_parser", "parse_time_ms", "run"]
