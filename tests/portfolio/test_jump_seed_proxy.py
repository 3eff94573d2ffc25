"""The jump variance seed's venue proxy (`portfolio.volvol_seed`): where the journal's index
samples do not reach back over the jump window, the venue's index history (Deribit's index
chart, through the real ccxt client against the simulator on 127.0.0.1) fills the part
before them, each point with the vol known nearest before it; the hedge loop's seed
(`HedgeLoop._apply_volvol_seed`) rebuilds the estimator from both. The jumps' lean
(`jump_skew`) goes with the ratio into the risk the decision takes, and a restart on the
journal's samples gives the lean the live estimator had."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from hedgerd.execution.drill import DRILL_KEY, DRILL_SECRET, sim_rig, sim_scenario
from hedgerd.execution.journal import Journal, JournalStore
from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.jumps import (
    JUMP_MAX_GAP_MS,
    JUMP_SKEW_MAX,
    JUMP_WINDOW_MS,
    JumpVarianceEstimator,
)
from hedgerd.hedging.volvol import VOLVOL_WINDOW_MS, VolOfVolEstimator
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.portfolio.volvol_seed import VolOfVolSeed, VolOfVolSeeds, read_seed
from hedgerd.sim.command import running_simulator
from hedgerd.sim.scenario import Scenario
from hedgerd.venues.base import ErrorClass, VenueError

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
NOISE_SD = 3.0
POLICY = HedgerdPolicy(jump_noise_sd=NOISE_SD)


def _scenario(jumps_per_day: float) -> Scenario:
    """The drills' world (BTC at 80 % a year; DVOL before the start a walk from 80 at 80 %
    a year) with `jumps_per_day` compound-Poisson jumps of 3 % (log sd) in the index."""
    sc: Scenario = sim_scenario()
    btc = sc.underlyings[0]
    jumps = btc.jumps.model_copy(update={"intensity_per_day": jumps_per_day, "std": 0.03})
    surface = btc.surface.model_copy(update={"history_vol_of_vol": 0.8})
    btc = btc.model_copy(update={"jumps": jumps, "surface": surface})
    return sc.model_copy(update={"underlyings": [btc]})


def _loop(cut: int) -> SimpleNamespace:
    """The hedge loop's seed parts, its vol-of-vol estimator started at `cut`."""
    return SimpleNamespace(
        _volvol={"BTC": VolOfVolEstimator(cut, VOLVOL_WINDOW_MS)},
        _volvol_live={},
        _volvol_seeds=VolOfVolSeeds(),
        _jumps={"BTC": JumpVarianceEstimator()},
        _jump_proxy={},
        _keep_volvol_sample=lambda *a: None,
        clocks=SimpleNamespace(clock_ms=lambda: cut),
        policies=SimpleNamespace(policy_for=lambda u: ("p", POLICY)),
    )


def _seeded_ratio(seed: VolOfVolSeed) -> float:
    return _seeded(seed)[0]


def _seeded(seed: VolOfVolSeed) -> tuple[float, float]:
    """The seeded estimator's ratio and skew at the cut."""
    loop = _loop(seed.cut_ms)
    HedgeLoop._apply_volvol_seed(loop, seed)  # type: ignore[arg-type]
    est = loop._jumps["BTC"]
    return est.ratio(seed.cut_ms, NOISE_SD), est.skew(seed.cut_ms, NOISE_SD)


async def _first_start_seed(
    tmp_path: Path, jumps_per_day: float, journal_from_ms: int | None = None
) -> tuple[VolOfVolSeed | None, list[tuple[int, float, float]], int]:
    """The seed read at the simulator's start with the journal empty (or holding 10-minute
    index samples from `journal_from_ms` before the start), and the truth: the engine's
    index every hour over the jump window and the hour before it, each with the DVOL close
    stamped then."""
    async with running_simulator(
        scenario=_scenario(jumps_per_day), stepped=True, accounts=[(DRILL_KEY, DRILL_SECRET)]
    ) as sim:
        r = await sim_rig(sim, tmp_path / "journal.sqlite")
        await r.start()
        try:
            engine: Any = sim.engine
            cut = sim.now_ms()
            if journal_from_ms is not None:
                for t in range(cut - journal_from_ms, cut + 1, 600_000):
                    await r.journal.run(
                        JournalStore.record_volvol_sample,
                        "BTC",
                        t,
                        0.75,
                        t - VOLVOL_WINDOW_MS,
                        index_usd=engine.index_at("BTC", t),
                    )
            seed = await read_seed(
                r.journal, r.venue, "BTC", VOLVOL_WINDOW_MS, cut, index_venue=r.venue
            )
            first = (cut - JUMP_WINDOW_MS - JUMP_MAX_GAP_MS) // HOUR_MS * HOUR_MS
            truth = [
                (t, engine.index_at("BTC", t), round(engine.vol_index("BTC", t), 2) / 100.0)
                for t in range(first, cut + 1, HOUR_MS)
            ]
        finally:
            await r.close()
    return seed, truth, cut


async def test_a_first_start_seeds_the_jump_ratio_from_the_venues_index(
    tmp_path: Path,
) -> None:
    """Jumps in the simulator's history before the start (four a day of 3 %): with an empty
    journal the seeded ratio is above 1 at once (it was 1, ramping in over a day, before
    the proxy), and it is the estimator seeded with the engine's own hourly index, each
    point at the DVOL close stamped then. (Hourly returns, a sixth of the live estimator's
    count: the 3-sd noise threshold is sqrt(6) times wider against them, and two jumps a
    day of 2.5 % at 80 % vol stay under it.)"""
    seed, truth, cut = await _first_start_seed(tmp_path, jumps_per_day=4.0)
    assert seed is not None and seed.index == ()
    assert [t for t, _ in seed.index_proxy] == [t for t, _, _ in truth]
    ratio, skew = _seeded(seed)
    want = JumpVarianceEstimator.seeded(truth, cut)
    assert ratio == pytest.approx(want.ratio(cut, NOISE_SD), rel=1e-12)
    assert ratio > 1.3, ratio
    # The jumps' lean likewise (the simulator's jumps are symmetric: a lean, of either sign).
    assert skew == pytest.approx(want.skew(cut, NOISE_SD), rel=1e-12, abs=1e-15)
    assert skew != 0.0


async def test_without_jumps_the_proxy_stays_below_the_noise_threshold(
    tmp_path: Path,
) -> None:
    seed, truth, cut = await _first_start_seed(tmp_path, jumps_per_day=0.0)
    assert seed is not None and len(seed.index_proxy) == len(truth) > 24 * 7
    assert _seeded_ratio(seed) == 1.0
    # Seeded (the window covered), not empty: the diffusion's noise alone, under 3 sd.
    assert 1.0 < JumpVarianceEstimator.seeded(truth, cut).ratio(cut, 0.0) < 1.15


async def test_the_proxy_stops_strictly_before_the_journals_first_index_sample(
    tmp_path: Path,
) -> None:
    """The journal holds two days of samples: the venue's index fills the five before, its
    points each with the vol known nearest (DVOL is not fetched: the journal's marks reach
    back over no vol-of-vol window either, so DVOL is; the first journal mark is later)."""
    seed, truth, cut = await _first_start_seed(tmp_path, 4.0, journal_from_ms=2 * DAY_MS)
    assert seed is not None and seed.index[0][0] == cut - 2 * DAY_MS
    assert seed.index_proxy[-1][0] < seed.index[0][0]
    assert [t for t, _ in seed.index_proxy] == [t for t, _, _ in truth if t < seed.index[0][0]]
    proxy = [p for p in truth if p[0] < seed.index[0][0]]
    want = JumpVarianceEstimator.seeded([*proxy, *seed.index], cut).ratio(cut, NOISE_SD)
    assert _seeded_ratio(seed) == pytest.approx(want, rel=1e-12)


class _FailingIndexVenue:
    async def fetch_index_history(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float]]:
        raise VenueError("down", error_class=ErrorClass.RETRYABLE, venue="x")


async def test_a_failed_fetch_is_logged_and_the_journal_seeds_alone(tmp_path: Path) -> None:
    async with running_simulator(
        scenario=_scenario(4.0), stepped=True, accounts=[(DRILL_KEY, DRILL_SECRET)]
    ) as sim:
        r = await sim_rig(sim, tmp_path / "journal.sqlite")
        await r.start()
        try:
            cut = sim.now_ms()
            samples = [(cut - (6 - i) * 600_000, 90_000.0 * (1.0 + 0.01 * (i == 3)), 0.8)
                       for i in range(7)]  # fmt: skip
            for t, s, v in samples:
                await r.journal.run(
                    JournalStore.record_volvol_sample, "BTC", t, v, t - VOLVOL_WINDOW_MS,
                    index_usd=s,
                )  # fmt: skip
            with capture_logs() as logs:
                seed = await read_seed(
                    r.journal, r.venue, "BTC", VOLVOL_WINDOW_MS, cut, _FailingIndexVenue()
                )
        finally:
            await r.close()
    assert seed is not None and seed.index_proxy == ()
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "daemon.jump_index_history_failed"
    ]
    assert seed.index == tuple(samples)
    loop = _loop(cut)
    HedgeLoop._apply_volvol_seed(loop, seed)  # type: ignore[arg-type]
    want = JumpVarianceEstimator.seeded(samples, cut)
    assert loop._jumps["BTC"].ratio(cut, 0.0) == want.ratio(cut, 0.0) > 1.0


def test_a_last_index_sample_long_before_the_window_does_not_stop_the_proxy() -> None:
    """(Pure: `read_seed`'s trim.) The journal's last run ended 45 days ago: its last samples
    are at or before the window's start but joined by no return to the next, so the window
    is the venue's. Samples joined to the window's first are kept, their run's start too."""
    from hedgerd.portfolio.volvol_seed import _joined

    cut = 1_790_000_000_000
    old = [(cut - 45 * DAY_MS - 600_000, 1.0, 0.5), (cut - 45 * DAY_MS, 1.0, 0.5)]
    recent = [(cut - 3_600_000, 1.0, 0.5), (cut, 1.0, 0.5)]
    assert _joined([*old, *recent], cut - JUMP_WINDOW_MS) == recent
    since = cut - JUMP_WINDOW_MS
    near = [(since - 1_200_000, 1.0, 0.5), (since - 600_000, 1.0, 0.5), (since + 1, 1.0, 0.5)]
    assert _joined([*old, *near, *recent], since) == [*near, *recent]
    assert _joined([*old], since) == []


def test_with_no_vol_known_the_proxy_waits_for_the_first_evaluations_mark_vol() -> None:
    """An OKX-only first start: no journal marks, no DVOL. The index history is seeded at
    the first evaluation, each point with the book's mark vol then, before its own sample."""
    cut = 1_790_000_000_000
    ln = np.cumsum(np.random.default_rng(3).normal(0.0, 0.006, 7 * 24))  # 60 % a year
    ln[100:] += 0.05  # a jump of 5 %
    pts = [(cut - JUMP_WINDOW_MS + i * HOUR_MS, 90_000.0 * math.exp(x)) for i, x in enumerate(ln)]
    seed = VolOfVolSeed("BTC", (), VOLVOL_WINDOW_MS, cut, index_proxy=tuple(pts))
    loop = _loop(cut)
    HedgeLoop._apply_volvol_seed(loop, seed)  # type: ignore[arg-type]
    assert loop._jump_proxy == {"BTC": pts}
    risk = UnderlyingRisk("BTC", 91_000.0, -0.2, -1e-5, 0.6, 20 / 365)
    now = cut + 60_000
    got = HedgeLoop._with_vol_of_vol(loop, "BTC", POLICY, risk, now)  # type: ignore[arg-type]
    want = JumpVarianceEstimator.seeded([*((t, s, 0.6) for t, s in pts), (now, 91_000.0, 0.6)], now)
    assert got.jump_var_ratio == pytest.approx(want.ratio(now, NOISE_SD), rel=1e-12)
    assert got.jump_var_ratio is not None and got.jump_var_ratio > 1.0
    # The jump was up: the lean the decision takes is up too.
    assert got.jump_skew == pytest.approx(want.skew(now, NOISE_SD), rel=1e-12)
    assert got.jump_skew > 0.0
    assert loop._jump_proxy == {}


def _live_loop(start: int, journal: Journal) -> SimpleNamespace:
    """`_loop`, its samples kept in `journal` by the hedge loop's own `_keep_volvol_sample`
    (queued, as live)."""
    loop = _loop(start)
    loop.shared = SimpleNamespace(journal=journal)
    loop._volvol_writes = set()
    loop._keep_volvol_sample = lambda *a: HedgeLoop._keep_volvol_sample(loop, *a)  # type: ignore[arg-type]
    return loop


@pytest.mark.usefixtures("default_logging")
@pytest.mark.parametrize("jump", [0.06, -0.06])
async def test_a_one_sided_jump_leans_the_risk_and_a_restart_keeps_the_lean(
    tmp_path: Path, jump: float
) -> None:
    """Two days of 10-minute index samples at 60 % a year (marks constant) with one jump of
    6 % (either way) after 32 hours: before it the risk the decision takes has no lean (and
    no ratio: the diffusion stays under the 3-sd threshold); after it a lean of the jump's
    sign, the estimator's on the same samples (a few per cent: the jump's cube over the
    window's variance). The samples went to the journal as live; a hedge loop started again
    on it (`read_seed`, `_apply_volvol_seed`) logs and carries the same lean and ratio, at
    the cut and at its next evaluation."""
    start = 1_790_000_000_000
    step = 600_000
    n, at = 288, 192
    sd = 0.6 * math.sqrt(step / (365 * DAY_MS))
    ln = np.cumsum(np.random.default_rng(11).normal(0.0, sd, n + 1))
    ln[at:] += jump
    spots = 90_000.0 * np.exp(ln)
    journal = await Journal.open(tmp_path / "journal.sqlite")
    try:
        live = _live_loop(start, journal)
        got: list[UnderlyingRisk] = []
        for i, s in enumerate(spots):
            risk = UnderlyingRisk("BTC", float(s), -0.2, 1e-5, 0.6, 20 / 365)
            got.append(HedgeLoop._with_vol_of_vol(live, "BTC", POLICY, risk, start + i * step))  # type: ignore[arg-type]
        cut = start + n * step
        before, after = got[at - 1], got[-1]
        assert (before.jump_skew, before.jump_var_ratio) == (0.0, 1.0)
        assert after.jump_var_ratio > 1.5
        truth = [(start + i * step, float(s), 0.6) for i, s in enumerate(spots)]
        want = JumpVarianceEstimator.seeded(truth, cut).skew(cut, NOISE_SD)
        assert after.jump_skew == pytest.approx(want, rel=1e-12)
        assert math.copysign(1.0, after.jump_skew) == math.copysign(1.0, jump)
        assert 0.02 < abs(after.jump_skew) < JUMP_SKEW_MAX
        # Every sample written (the journal's thread runs its calls in order).
        await asyncio.gather(*live._volvol_writes)
        seed = await read_seed(journal, None, "BTC", VOLVOL_WINDOW_MS, cut)
    finally:
        await journal.close()
    assert seed is not None and len(seed.index) == n + 1 and seed.index_proxy == ()
    restarted = _loop(cut)
    with capture_logs() as logs:
        HedgeLoop._apply_volvol_seed(restarted, seed)  # type: ignore[arg-type]
    (seeded,) = [e for e in logs if e["event"] == "daemon.vol_of_vol_seeded"]
    assert seeded["jump_skew"] == round(after.jump_skew, 6) != 0.0
    assert seeded["jump_var_ratio"] == round(after.jump_var_ratio, 6)
    est, was = restarted._jumps["BTC"], live._jumps["BTC"]
    assert est.skew(cut, NOISE_SD) == was.skew(cut, NOISE_SD) == after.jump_skew
    assert est.ratio(cut, NOISE_SD) == after.jump_var_ratio
    # The next evaluation, on both: the same risk for the decision.
    risk = UnderlyingRisk("BTC", float(spots[-1]), -0.2, 1e-5, 0.6, 20 / 365)
    nxt = cut + step
    a = HedgeLoop._with_vol_of_vol(restarted, "BTC", POLICY, risk, nxt)  # type: ignore[arg-type]
    live._keep_volvol_sample = lambda *a: None
    b = HedgeLoop._with_vol_of_vol(live, "BTC", POLICY, risk, nxt)  # type: ignore[arg-type]
    assert (a.jump_skew, a.jump_var_ratio) == (b.jump_skew, b.jump_var_ratio)
    assert a.jump_skew == pytest.approx(after.jump_skew, rel=0.05)
