"""The leader lease's tables, in the PostgreSQL database that holds the journal (the fenced
intent write checks the lease and inserts the intent in one transaction, so both must live in
one database).

`leader_lease`: one row per trading account (`name`, e.g. 'deribit:main'): the holder, the
epoch (the fencing token: +1 on every grant, never reused), and the times, all on the database
server's clock. `lease_history`: one row per grant, for audits and drills.

Created idempotently (IF NOT EXISTS) under a transaction-level advisory lock, so any number of
nodes may start at once. Columns are only ever added, never changed: a change to this schema
adds a statement here with IF NOT EXISTS.
"""

from __future__ import annotations

from typing import Any

import psycopg

#: Advisory-lock key (namespace "hl", second key: the schema) serialising the CREATEs.
SCHEMA_LOCK = 0x686C

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS leader_lease (
        name        TEXT PRIMARY KEY,
        holder      TEXT NOT NULL DEFAULT '',
        epoch       BIGINT NOT NULL DEFAULT 0 CHECK (epoch >= 0),
        acquired_at TIMESTAMPTZ,
        renewed_at  TIMESTAMPTZ,
        expires_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
    )""",
    """CREATE TABLE IF NOT EXISTS lease_history (
        name        TEXT NOT NULL,
        epoch       BIGINT NOT NULL,
        holder      TEXT NOT NULL,
        acquired_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (name, epoch)
    )""",
)


def ensure_lease_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the lease tables where missing (on an autocommit connection)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (SCHEMA_LOCK,))
        for statement in STATEMENTS:
            conn.execute(statement)


__all__ = ["STATEMENTS", "ensure_lease_schema"]
