"""Short HA failover drill: two `hedgerd run` processes on one throwaway PostgreSQL, the active
failed once by each fault kind (SIGKILL, SIGSTOP past its lease then SIGCONT,
`pg_terminate_backend`, a proxy that silently drops its database traffic): every failover
completes, nothing is sent twice, no fill is lost or doubled, no older epoch's order is
accepted after a takeover. The full run is `scripts/failover_drill.py --cycles 100`
(docs/ha.md). It keeps the production lease (6 s): `--lease-ms 3000` halves each failover but,
on a loaded two-core machine, fenced new leaders over and over and tripped clock-skew and
stale-data halts (tried).

Skips, saying why, without PostgreSQL's server binaries, psycopg or libfaketime."""

from __future__ import annotations

import math

import pytest
from drill_support import load_script

from hedgerd.sim.wall_clock import FaketimeMissingError
from pg_server import find_binaries

failover_drill = load_script("failover_drill")


async def test_short_failover_drill() -> None:
    binaries = find_binaries()
    if isinstance(binaries, str):
        pytest.skip(binaries)
    pytest.importorskip(
        "psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')"
    )
    try:
        r = await failover_drill.drill_processes(
            cycles=1, seed=5, kinds=failover_drill.KINDS, until=math.inf
        )
    except FaketimeMissingError as exc:
        pytest.skip(f"{exc}; .ci/run installs it")
    assert r["errors"] == [], r["errors"]
    for kind in failover_drill.KINDS:
        assert r["by_kind"][kind]["failovers"] == 1, r["by_kind"]
        assert r["by_kind"][kind]["stale_epoch_orders_accepted"] == 0, r["by_kind"]
    assert r["duplicate_orders"] == 0, r
    assert r["lost_fills"] == 0, r
    assert r["double_fills"] == 0, r
    assert r["stale_epoch_orders_accepted"] == 0, r
    assert r["woken_accepted"] == 0, r  # the paused leader sent nothing accepted on waking
    # Issue #18 asks p99 ≤ 10 s over 100 failovers per kind (the full run, docs/ha.md: not
    # met on the shared two-core machine). One failover per kind there took 8.5-14.4 s, and
    # 22.3 s when a new leader fenced itself once (an acquire answered too late under load)
    # and waited out its own lease: the bound allows that once.
    assert r["failover_s_p99"] <= 30.0, r
