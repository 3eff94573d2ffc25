"""Load drill smoke run: a small book at a few hundred updates per second; the coalescing
queue stays bounded by the number of keys and every figure is printed. The full run is
`scripts/load.py --options 10000 --rate 1000`."""

from __future__ import annotations

from drill_support import load_script

load = load_script("load")


async def test_load_smoke_run_is_bounded_and_prints_figures() -> None:
    r = await load.run_load(n_options=400, rate=400.0, seconds=1.5, seed=2)
    assert r["updates_produced"] >= 400
    assert r["decisions"] > 0
    assert 0 < r["max_queue_depth"] <= r["queue_bound"] == 402
    assert r["updates_applied"] + r["updates_coalesced"] == r["updates_produced"]
    assert r["decision_latency_ms"]["p99"] is not None
    text = load.render(r)
    for word in ("CPU", "decision latency", "event lag", "max depth"):
        assert word in text


def test_coalescer_keeps_one_entry_per_key_and_the_oldest_arrival() -> None:
    q = load.Coalescer()
    for i in range(1000):
        q.put("index", "BTC", float(i), 10.0 + i)
    q.put("vol", "BTC-X", 0.5, 3.0)
    assert q.max_depth == 2 and q.coalesced == 999 and q.produced == 1001
    batch = q.take()
    assert batch[("index", "BTC")] == (999.0, 10.0)
    assert not q.pending
