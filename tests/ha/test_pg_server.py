"""The throwaway PostgreSQL the HA and journal tests run against (tests/pg_server.py)."""

from __future__ import annotations

import os

import psycopg

from pg_server import PgServer, scratch_schema


def test_server_runs_unprivileged_on_loopback(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('port')::int, current_user"
        ).fetchone()
    assert row == ("127.0.0.1", pg_server.port, "hedgerd")
    assert (pg_server.socket_dir / f".s.PGSQL.{pg_server.port}").is_socket()
    assert os.stat(f"/proc/{pg_server.pid}").st_uid != 0  # initdb/postgres refuse root


def test_scratch_schemas_are_separate_and_dropped(pg_server: PgServer) -> None:
    with scratch_schema(pg_server) as first, scratch_schema(pg_server) as second:
        with psycopg.connect(first, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
            schema = conn.execute("SELECT current_schema()").fetchone()
        with psycopg.connect(second, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s",
            (schema[0],),  # type: ignore[index]
        ).fetchone()
    assert left == (0,)
