"""The jump variance seed's venue proxy (`portfolio.volvol_seed`): where the journal's index
samples do not reach back over the jump window, the venue's index history (Deribit's index
chart, through the real ccxt client against the simulator on 127.0.0.1) fills the part
before them, each point with the vol known nearest before it; the hedge loop's seed
(`HedgeLoop._apply_volvol_seed`) rebuilds the estimator from both."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from hedgerd.execution.drill import DRILL_KEY, DRILL_SECRET, sim_rig, sim_scenario
from hedgerd.execution.journal import JournalStore
from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.jumps import JUMP_MAX_GAP_MS, JUMP_WINDOW_MS, JumpVarianceEstimator
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
    loop = _loop(seed.cut_ms)
    HedgeLoop._apply_volvol_seed(loop, seed)  # type: ignore[arg-type]
    return float(loop._jumps["BTC"].ratio(seed.cut_ms, NOISE_SD))


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
    ratio = _seeded_ratio(seed)
    want = JumpVarianceEstimator.seeded(truth, cut).ratio(cut, NOISE_SD)
    assert ratio == pytest.approx(want, rel=1e-12)
    assert ratio > 1.3, ratio


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
    assert loop._jump_proxy == {}
