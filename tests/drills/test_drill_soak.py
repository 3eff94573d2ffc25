"""Soak drill smoke run: a few simulated minutes against `hedgerd exchange-sim` in a child
process; RSS is sampled and the growth printed. The full run is
`scripts/soak.py --sim-hours 24` (the 10 % target is judged there, not on this short run)."""

from __future__ import annotations

from drill_support import load_script

soak = load_script("soak")


async def test_soak_smoke_run_samples_rss_and_prints_figures() -> None:
    r = await soak.run_soak(
        sim_hours=0.05, speed=60.0, seed=2, evaluate_s=5.0, samples=4, warmup_frac=0.25
    )
    assert len(r["rss_mb"]) == 5
    assert all(mb > 10 for _, mb in r["rss_mb"])
    assert r["evaluations"] > 0
    assert r["errors"] == 0, r["first_error"]
    # Not the target (too short to judge), only a sanity bound: no runaway in 3 minutes.
    assert r["growth_after_warmup_pct"] < 50
    text = soak.render(r)
    assert "RSS over time" in text and "growth" in text
