"""Market processes: index prices (GBM with jumps and volatility regimes, or a CSV replay),
the implied volatility surface, futures basis, perpetual premium and funding, and option marks
through `hedgerd.pricing.black76`.

All randomness comes from one seeded `numpy.random.Generator` per underlying, stepped on a
fixed time grid, so the path does not depend on how often the engine is advanced.
"""

from __future__ import annotations

import csv
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hedgerd.sim.deribit.instruments import DAY_MS, SimInstrument
from hedgerd.sim.scenario import FundingSpec, UnderlyingSpec

YEAR_MS = 365.0 * DAY_MS
EIGHT_HOURS_MS = 8 * 3_600_000
MIN_TAU_YEARS = 60_000 / YEAR_MS  # price expiring options as if a minute were left

FloatArray = npt.NDArray[np.float64]


def _local_black76(
    is_call: Any, forward: Any, strike: Any, tau: Any, vol: Any, discount: Any = 1.0
) -> Any:
    """Black-76 with Greeks (vega per 1.00 vol, theta per year); used only until
    `hedgerd.pricing.black76` is importable."""
    from types import SimpleNamespace

    from scipy.special import ndtr

    c = np.asarray(is_call, dtype=bool)
    f = np.asarray(forward, dtype=float)
    k = np.asarray(strike, dtype=float)
    t = np.asarray(tau, dtype=float)
    v = np.asarray(vol, dtype=float)
    sq = v * np.sqrt(t)
    d1 = (np.log(f / k) + 0.5 * sq * sq) / sq
    d2 = d1 - sq
    pdf = np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    call = discount * (f * ndtr(d1) - k * ndtr(d2))
    put = discount * (k * ndtr(-d2) - f * ndtr(-d1))
    delta = np.where(c, discount * ndtr(d1), discount * (ndtr(d1) - 1.0))
    gamma = discount * pdf / (f * sq)
    vega = discount * f * pdf * np.sqrt(t)
    theta = -discount * f * pdf * v / (2 * np.sqrt(t))
    return SimpleNamespace(
        price=np.where(c, call, put), delta=delta, gamma=gamma, vega=vega, theta=theta
    )


def _find_black76() -> Callable[..., Any]:
    for module, attr in (("hedgerd.pricing", "black76"), ("hedgerd.pricing.black76", "black76")):
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return _local_black76


black76: Callable[..., Any] = _find_black76()


def load_replay_csv(path: Path, start_ms: int) -> tuple[list[int], list[float]]:
    """Rows of `timestamp_ms,price` (a header row is skipped), shifted so the first row falls
    on `start_ms`. Returns (times_ms, prices_usd) sorted by time."""
    rows: list[tuple[int, float]] = []
    with path.open(newline="") as f:
        for rec in csv.reader(f):
            if not rec or rec[0].strip().startswith("#"):
                continue
            try:
                ts, px = int(float(rec[0])), float(rec[1])
            except (ValueError, IndexError):
                continue  # header or junk
            if math.isfinite(px) and px > 0:
                rows.append((ts, px))
    if not rows:
        raise ValueError(f"replay CSV {path} has no `timestamp_ms,price` rows")
    rows.sort()
    shift = start_ms - rows[0][0]
    return [t + shift for t, _ in rows], [p for _, p in rows]


class IndexProcess:
    """One underlying's index price in USD, moved by `step(now_ms, dt_ms)`."""

    def __init__(
        self, spec: UnderlyingSpec, start_ms: int, rng: np.random.Generator, base_dir: str | None
    ) -> None:
        self.spec = spec
        self.rng = rng
        self.price = float(spec.spot)
        self.regime = 0
        self._regime_until_ms = start_ms
        self._replay: tuple[list[int], list[float]] | None = None
        self._replay_pos = 0
        if spec.regimes:
            self._regime_until_ms = start_ms + self._holding_ms(0)
        if spec.replay_csv is not None:
            p = Path(spec.replay_csv)
            if not p.is_absolute() and base_dir is not None:
                p = Path(base_dir) / p
            self._replay = load_replay_csv(p, start_ms)
            self.price = self._replay[1][0]

    @property
    def vol(self) -> float:
        """Annualised vol of the current regime."""
        if self.spec.regimes:
            return self.spec.regimes[self.regime].vol
        return self.spec.vol

    @property
    def regime_name(self) -> str:
        return self.spec.regimes[self.regime].name if self.spec.regimes else "single"

    def _holding_ms(self, regime: int) -> int:
        mean_s = self.spec.regimes[regime].mean_duration_s
        return max(1, int(self.rng.exponential(mean_s) * 1000))

    def step(self, now_ms: int, dt_ms: int) -> None:
        """Advance to `now_ms`, `dt_ms` after the previous step."""
        if self._replay is not None:
            times, prices = self._replay
            while self._replay_pos + 1 < len(times) and times[self._replay_pos + 1] <= now_ms:
                self._replay_pos += 1
            self.price = prices[self._replay_pos]
            return
        if self.spec.regimes and now_ms >= self._regime_until_ms and len(self.spec.regimes) > 1:
            others = [i for i in range(len(self.spec.regimes)) if i != self.regime]
            self.regime = others[int(self.rng.integers(len(others)))]
            self._regime_until_ms = now_ms + self._holding_ms(self.regime)
        dt_y = dt_ms / YEAR_MS
        sigma = self.vol
        z = float(self.rng.standard_normal())
        log_ret = (self.spec.drift - 0.5 * sigma * sigma) * dt_y + sigma * math.sqrt(dt_y) * z
        jumps = self.spec.jumps
        if jumps.intensity_per_day > 0:
            n = int(self.rng.poisson(jumps.intensity_per_day * dt_ms / DAY_MS))
            if n:
                log_ret += float(self.rng.normal(jumps.mean * n, jumps.std * math.sqrt(n)))
        self.price *= math.exp(log_ret)

    def gap(self, pct: float) -> None:
        """Move the index by `pct` percent at once (the `price_gap` fault)."""
        self.price *= 1.0 + pct / 100.0


@dataclass(frozen=True, slots=True)
class OptionMarks:
    """Marks of one currency's active options at one tick, in arrays aligned with `names`.

    `price_coin` is the premium in coin per coin of underlying; `price_usd` per coin; `iv` a
    fraction; delta per coin; gamma per USD; vega USD per 1.00 vol; theta USD per year."""

    ts_ms: int
    names: tuple[str, ...]
    index_of: dict[str, int]
    forward: FloatArray
    iv: FloatArray
    price_usd: FloatArray
    price_coin: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray


class UnderlyingMarket:
    """One underlying's market state at the current tick: index, forwards, vol surface,
    perpetual premium and funding, and (lazily, once per tick) the marks of its options."""

    def __init__(
        self,
        spec: UnderlyingSpec,
        funding: FundingSpec,
        start_ms: int,
        rng: np.random.Generator,
        base_dir: str | None,
    ) -> None:
        self.spec = spec
        self.currency = spec.currency
        self.funding_spec = funding
        self.index = IndexProcess(spec, start_ms, rng, base_dir)
        self.rng = rng
        self.now_ms = start_ms
        self.premium = funding.premium_mean_bps * 1e-4  # perpetual mark / index - 1
        self._marks: OptionMarks | None = None
        self.set_options([])
        # the index at the start of the current rolling day (the ticker's price_change);
        # an instrument's high and low come from its own trades (hedgerd.sim.stats)
        self.open_24h = self.index.price
        self._stats_day_ms = start_ms

    # -- time -----------------------------------------------------------------------------
    def step(self, now_ms: int, dt_ms: int) -> None:
        """Move the index and the perpetual premium one tick; invalidates option marks."""
        self.index.step(now_ms, dt_ms)
        f = self.funding_spec
        if f.premium_vol_bps > 0:
            a = math.exp(-dt_ms / 1000.0 / f.reversion_s)
            stat = f.premium_vol_bps * 1e-4
            self.premium = (
                f.premium_mean_bps * 1e-4
                + (self.premium - f.premium_mean_bps * 1e-4) * a
                + stat * math.sqrt(max(0.0, 1 - a * a)) * float(self.rng.standard_normal())
            )
        self.now_ms = now_ms
        self._marks = None
        if now_ms - self._stats_day_ms >= DAY_MS:
            self._stats_day_ms = now_ms
            self.open_24h = self.index.price

    def invalidate(self) -> None:
        """Forget this tick's option marks (after an out-of-band index move)."""
        self._marks = None

    def set_options(self, options: list[SimInstrument]) -> None:
        """The active options to mark (call after listing or expiry)."""
        self._options = list(options)
        n = len(options)
        self._strike = np.fromiter((o.strike or 0.0 for o in options), float, n)
        self._expiry = np.fromiter((o.expiry_ms for o in options), float, n)
        self._is_call = np.fromiter((o.is_call for o in options), bool, n)
        self._names = tuple(o.name for o in options)
        self._index_of = {nm: i for i, nm in enumerate(self._names)}
        self._marks = None

    # -- prices ---------------------------------------------------------------------------
    @property
    def index_price(self) -> float:
        return self.index.price

    def tau_years(self, expiry_ms: int) -> float:
        return max(0.0, (expiry_ms - self.now_ms) / YEAR_MS)

    def forward(self, expiry_ms: int) -> float:
        """Futures price for `expiry_ms` (USD): S * (1 + basis * T)."""
        return self.index.price * (1.0 + self.spec.basis_per_year * self.tau_years(expiry_ms))

    def perpetual_mark(self) -> float:
        return self.index.price * (1.0 + self.premium)

    def funding_8h(self) -> float:
        """Funding rate per 8 hours (fraction): the premium beyond the ±dead zone."""
        dz = self.funding_spec.dead_zone
        p = self.premium
        if abs(p) <= dz:
            return 0.0
        return p - dz if p > 0 else p + dz

    def atm_vol(self, tau: float) -> float:
        s = self.spec.surface
        base = s.atm_vol if s.atm_vol is not None else self.index.vol
        return base + s.term_slope * (math.sqrt(max(tau, 0.0)) - math.sqrt(30 / 365))

    def surface_iv(self, strike: FloatArray, forward: FloatArray, tau: FloatArray) -> FloatArray:
        """Implied vol (fraction) at strikes/forwards/taus (arrays of one shape)."""
        s = self.spec.surface
        t = np.maximum(tau, MIN_TAU_YEARS)
        k = np.log(strike / forward) / np.sqrt(np.maximum(t, 1.0 / 365))
        base = s.atm_vol if s.atm_vol is not None else self.index.vol
        atm = base + s.term_slope * (np.sqrt(t) - math.sqrt(30 / 365))
        iv = atm + s.skew * k + s.curvature * k * k
        return np.clip(iv, s.min_vol, s.max_vol)

    def option_marks(self) -> OptionMarks:
        """Marks of all active options, computed at most once per tick."""
        if self._marks is not None:
            return self._marks
        n = len(self._options)
        strike, expiry, is_call = self._strike, self._expiry, self._is_call
        tau = np.maximum((expiry - self.now_ms) / YEAR_MS, MIN_TAU_YEARS)
        fwd = self.index.price * (1.0 + self.spec.basis_per_year * tau)
        iv = self.surface_iv(strike, fwd, tau)
        if n:
            r = black76(is_call, fwd, strike, tau, iv)
            price = np.asarray(r.price, float)
            delta = np.asarray(r.delta, float)
            gamma = np.asarray(r.gamma, float)
            vega = np.asarray(r.vega, float)
            theta = np.asarray(r.theta, float)
        else:
            price = delta = gamma = vega = theta = np.zeros(0)
        self._marks = OptionMarks(
            ts_ms=self.now_ms,
            names=self._names,
            index_of=self._index_of,
            forward=fwd,
            iv=iv,
            price_usd=price,
            price_coin=price / self.index.price,
            delta=delta,
            gamma=gamma,
            vega=vega,
            theta=theta,
        )
        return self._marks
