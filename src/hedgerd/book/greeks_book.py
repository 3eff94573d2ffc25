"""GreeksBook: the live Greeks of an options book, per underlying and per expiry.

Layout (structure of arrays, one store per underlying):

- Options live in preallocated numpy arrays (capacity doubles when full), kept sorted by
  expiry so each expiry is a contiguous segment; an index maps instrument name → stable slot
  → row. Per row the book keeps coefficients that only change when the position, the mark vol
  or the expiry's forward ratio change (``q·b``, ``q·K``, ``q·b·σ``, ``q·b/σ``, ``σ/2``,
  ``ln(b/K)/2``), so an index tick costs about 25 numpy ufunc passes over that underlying's
  rows, into preallocated buffers, and one segment sum: ``d1``, ``d2``, one ``exp``, and the
  normal CDFs from a table plus a three-term Taylor series that reuses the ``exp``
  (`normal_cdf`; equal to ``scipy.special.ndtr`` within 4e-16, about three times cheaper).
  Per expiry, the sums are mixed into the snapshot's fields by one small matrix product.
  Nothing is rebuilt per tick; a position or vol change rewrites one row. The tick path is
  exact (a full reprice of every row, to rounding: tested against a row-by-row reference on
  random books and tick sequences); ``scripts/bench_greeks.py --sections book`` times it.
- Hedge instruments (inverse and linear perpetuals and futures, spot, coin collateral) have
  values affine in the index, ``V = α S + β`` (see `valuation`), so the book keeps ``α, β`` per
  expiry bucket and kind and values them in O(buckets) per tick.

Conventions: the index price ``S`` is USD per coin; option forwards are ``F = b S`` with the
expiry's forward ratio ``b`` (1 unless `set_forward` or a ticker's underlying price sets it)
held fixed as ``S`` moves; perpetuals, spot and collateral are valued at the index; zero
rates (Deribit prices options off the forward with no discounting); ACT/365 time in
milliseconds. Positions are in the venue's amount unit (USD for inverse perpetuals and
futures, coin otherwise). Balances are cash balances without floating P&L (Deribit's
``balance``): coin balances are collateral of that underlying, USDC/USD balances are reported
as ``cash_usd`` and carry no delta (in the coin numeraire they are not attributed to an
underlying).

Time: the book reads no clock; every valuation takes ``now_ms`` (UTC epoch ms). Deribit
settles at 08:00 UTC and decays expiring deltas to 0 over the 30 minutes before; inside that
window an expiry is flagged ``in_settlement_window`` and the projected deltas exclude it.
Contracts at or past expiry are excluded and reported as quarantined ("expired").

Bad input: a non-finite or non-positive index, forward or amount, an amount in the wrong
unit, or an unknown instrument raise `BookError` (nothing is changed). A missing or bad
option vol quarantines that option: it is left out of the Greeks and listed in
``UnderlyingGreeks.quarantined`` (``complete`` is then False), never priced with garbage.
An underlying with positions but no index price is listed in ``BookSnapshot.unpriced``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from hedgerd.book.valuation import (
    HEDGE_KINDS,
    MS_PER_YEAR,
    FloatArray,
    RowKind,
    affine_coefficients,
    option_value_usd,
    row_kind,
)
from hedgerd.hedging.kernel import OptionArrays
from hedgerd.model.instruments import AmountUnit, Instrument, PriceUnit
from hedgerd.model.market import IndexPrice, Ticker
from hedgerd.model.positions import Balance, Position
from hedgerd.pricing.black import black_scholes
from hedgerd.pricing.implied import implied_vol_with_reason
from hedgerd.pricing.normal_cdf import GRID, TABLE, split_grid, taylor_into
from hedgerd.pricing.reasons import Reason
from hedgerd.pricing.threads import WorkerPool

Numeraire = Literal["usd", "coin"]

SETTLEMENT_WINDOW_MS = 30 * 60 * 1000
"""Deribit decays expiring deltas to 0 over the 30 minutes before the 08:00 UTC settlement."""
DAYS_PER_YEAR = 365.0
SPOT_SHOCKS: tuple[float, ...] = (-0.20, -0.15, -0.10, -0.05, 0.0, 0.05, 0.10, 0.15, 0.20)
"""Scenario grid spot moves, fractions of the index."""
VOL_SHOCKS: tuple[float, ...] = (-0.10, -0.05, 0.0, 0.05, 0.10)
"""Scenario grid vol moves, per 1.00 of vol (−0.10 = −10 vol points), added to every mark."""
SCENARIO_VOL_FLOOR = 0.01
"""Shocked vols are floored at 1 %."""
MIN_VOL = 1e-4
MAX_VOL = 20.0
CASH_CURRENCIES = frozenset({"USD", "USDC", "USDT"})
NO_EXPIRY = int(np.iinfo(np.int64).max)
"""Bucket key of perpetuals, spot and collateral (sorts after every expiry)."""

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_MAX_FORWARD_RATIO = 2.0


class BookError(ValueError):
    """Input the book refuses (it is left unchanged)."""


class UnknownInstrumentError(BookError):
    """A position or mark for an instrument the book has no definition of."""


class BadMarketDataError(BookError):
    """A NaN, infinite or non-positive price."""


# ---- snapshot types ------------------------------------------------------------------------

GREEK_FIELDS: tuple[str, ...] = (
    "value_usd",
    "delta_usdnum_coin",
    "delta_coinnum_coin",
    "options_delta_usdnum_coin",
    "options_delta_coinnum_coin",
    "hedge_delta_usdnum_coin",
    "hedge_delta_coinnum_coin",
    "gamma_usdnum_coin_per_usd",
    "gamma_coinnum_coin_per_usd",
    "vega_usd_per_vol",
    "theta_usd_per_day",
    "vanna_usdnum_coin_per_vol",
)
(_VAL, _DU, _DC, _ODU, _ODC, _HDU, _HDC, _GU, _GC, _VEGA, _THETA, _VANNA) = range(len(GREEK_FIELDS))
# Per bucket the book keeps 8 inputs (`_Underlying.inputs`, columns of the mix matrix):
# the 6 per-segment option sums of `_OptionRows.reprice` and the hedges' V = alpha S + beta.
(_C_DU, _C_KN2, _C_VEGA, _C_THETA, _C_GU, _C_VANNA, _C_HA, _C_HB) = range(8)


def _mix_template() -> tuple[FloatArray, NDArray[np.intp]]:
    """The (fields x inputs) matrix ``M(S)`` with ``table = M(S) @ inputs``: every field is
    linear in the inputs with coefficients 1, S, 1/S or 1/S² (see `_mix`). Returns the
    S-free part and the flat positions of the S-dependent entries, in `_mix`'s order."""
    m = np.zeros((len(GREEK_FIELDS), 8))
    # value = S delta_opt - Σ qK N(d2) + alpha S + beta
    m[_VAL, _C_KN2], m[_VAL, _C_HB] = -1.0, 1.0
    m[_DU, _C_DU] = m[_DU, _C_HA] = 1.0
    m[_ODU, _C_DU] = 1.0
    m[_HDU, _C_HA] = 1.0
    m[_VANNA, _C_VANNA] = 1.0
    pos = [
        (_VAL, _C_DU),
        (_VAL, _C_HA),
        (_VEGA, _C_VEGA),
        (_THETA, _C_THETA),  # S
        (_DC, _C_KN2),
        (_ODC, _C_KN2),  # 1/S: coin delta of options = Σ qK N(d2) / S
        (_GU, _C_GU),
        (_GC, _C_GU),  # 1/S
        (_DC, _C_HB),
        (_HDC, _C_HB),  # -1/S
        (_GC, _C_KN2),  # -1/S²: gamma_coin = gamma_usd + (V/S - delta_usd)/S
        (_GC, _C_HB),  # 1/S²
    ]
    return m, np.array([r * 8 + c for r, c in pos], np.intp)


_MIX0, _MIX_POS = _mix_template()


def _mix(S: float) -> FloatArray:
    m = _MIX0.copy()
    i, i2 = 1.0 / S, 1.0 / (S * S)
    m.flat[_MIX_POS] = (S, S, S, S, i, i, i, i, -i, -i, -i2, i2)
    return m


@dataclass(frozen=True, slots=True)
class Greeks:
    """Sensitivities of one bucket (an underlying's total, or one expiry).

    ``usdnum`` = USD numeraire (USD P&L neutral: ``dV_usd/dS``; coin collateral counts),
    ``coinnum`` = coin numeraire (coin P&L neutral: ``dV_usd/dS − V_usd/S``; inverse options
    count Black-Scholes delta minus premium). Units are in the names: deltas in coin of the
    underlying, gammas in coin per USD of index move, vega in USD per 1.00 of vol (divide by
    100 for a vol point), theta in USD per calendar day, vanna in coin per 1.00 of vol, value
    in USD (options at mark, futures/spot floating P&L, coin collateral).
    ``options_*`` and ``hedge_*`` split the deltas: hedge = perpetuals, futures, spot, coin
    collateral.
    """

    value_usd: float
    delta_usdnum_coin: float
    delta_coinnum_coin: float
    options_delta_usdnum_coin: float
    options_delta_coinnum_coin: float
    hedge_delta_usdnum_coin: float
    hedge_delta_coinnum_coin: float
    gamma_usdnum_coin_per_usd: float
    gamma_coinnum_coin_per_usd: float
    vega_usd_per_vol: float
    theta_usd_per_day: float
    vanna_usdnum_coin_per_vol: float

    def delta_coin(self, numeraire: Numeraire) -> float:
        return self.delta_usdnum_coin if numeraire == "usd" else self.delta_coinnum_coin

    def gamma_coin_per_usd(self, numeraire: Numeraire) -> float:
        return (
            self.gamma_usdnum_coin_per_usd
            if numeraire == "usd"
            else self.gamma_coinnum_coin_per_usd
        )


@dataclass(frozen=True, slots=True)
class ExpiryTable:
    """Greeks per expiry bucket of one underlying, as read-only arrays (column ``i`` is bucket
    ``i``; buckets sorted by expiry, perpetual/spot/collateral last with key `NO_EXPIRY`).

    ``values[f, i]`` is field ``GREEK_FIELDS[f]`` of bucket ``i``; use `greeks(i)` or
    `field(name)`.
    """

    expiry_ms: NDArray[np.int64]
    in_settlement_window: NDArray[np.bool_]
    values: FloatArray

    def __len__(self) -> int:
        return int(self.expiry_ms.shape[0])

    def expiry(self, i: int) -> int | None:
        e = int(self.expiry_ms[i])
        return None if e == NO_EXPIRY else e

    def greeks(self, i: int) -> Greeks:
        return Greeks(*self.values[:, i].tolist())

    def field(self, name: str) -> FloatArray:
        row: FloatArray = self.values[GREEK_FIELDS.index(name)]
        return row

    def __iter__(self) -> Iterator[tuple[int | None, Greeks]]:
        for i in range(len(self)):
            yield self.expiry(i), self.greeks(i)


@dataclass(frozen=True, slots=True)
class HedgeDelta:
    """The hedge instruments of one kind in one underlying (all expiries together)."""

    kind: RowKind
    value_usd: float
    delta_usdnum_coin: float
    delta_coinnum_coin: float


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An instrument left out of the Greeks, and why."""

    instrument: str
    reason: str


@dataclass(frozen=True, slots=True)
class UnderlyingGreeks:
    """The Greeks of one underlying at ``valued_at_ms``.

    ``projected_*``: the deltas without expiries inside the settlement window (equal to the
    totals outside it); ``next_expiry_ms``: the nearest live expiry (options or futures);
    ``complete`` is False when some position was quarantined (a hedger should not trust the
    numbers then).
    """

    underlying: str
    index_price_usd: float
    valued_at_ms: int
    total: Greeks
    by_expiry: ExpiryTable
    hedges: tuple[HedgeDelta, ...]
    projected_delta_usdnum_coin: float
    projected_delta_coinnum_coin: float
    in_settlement_window: bool
    next_expiry_ms: int | None
    quarantined: tuple[Quarantined, ...]

    @property
    def complete(self) -> bool:
        return not self.quarantined

    def delta_coin(self, numeraire: Numeraire, projected: bool = True) -> float:
        """The delta to hedge, in coin: projected (settling expiries excluded) by default."""
        if not projected:
            return self.total.delta_coin(numeraire)
        return (
            self.projected_delta_usdnum_coin
            if numeraire == "usd"
            else self.projected_delta_coinnum_coin
        )

    def venue_delta_coin(self, numeraire: Numeraire) -> float:
        """The delta as Deribit reports it inside the settlement window: the expiring
        contracts' delta decayed linearly to 0 over the last 30 minutes (equal to the total
        outside the window). For cross-checks against the venue, not for hedging."""
        total = self.total.delta_coin(numeraire)
        if not self.in_settlement_window or self.next_expiry_ms is None:
            return total
        expiring = total - self.delta_coin(numeraire, projected=True)
        remaining = (self.next_expiry_ms - self.valued_at_ms) / SETTLEMENT_WINDOW_MS
        return total - expiring * (1.0 - min(max(remaining, 0.0), 1.0))


@dataclass(frozen=True, slots=True)
class ScenarioGrid:
    """Instantaneous P&L under joint spot and vol shocks (time and forward ratios fixed).

    ``pnl_usd[v, s]``: change of the underlying's USD value (options, futures/spot P&L, coin
    collateral) for vol shock ``vol_shocks[v]`` (per 1.00 of vol, added to every mark vol,
    floored at 1 %) and spot shock ``spot_shocks[s]`` (fraction of the index), in USD.
    ``pnl_coin[v, s]``: the same in coin of the underlying (``V'/S' − V/S``).
    ``by_expiry_pnl_usd[i, v, s]``: the USD P&L of expiry bucket ``expiry_ms[i]``.
    """

    underlying: str
    index_price_usd: float
    valued_at_ms: int
    spot_shocks: tuple[float, ...]
    vol_shocks: tuple[float, ...]
    pnl_usd: FloatArray
    pnl_coin: FloatArray
    expiry_ms: NDArray[np.int64]
    by_expiry_pnl_usd: FloatArray


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Every priced underlying at ``valued_at_ms``, plus USD/USDC cash, what could not be
    priced, and (``snapshot(..., with_scenarios=True)``) a scenario grid per underlying."""

    valued_at_ms: int
    underlyings: tuple[UnderlyingGreeks, ...]
    cash_usd: float
    unpriced: tuple[Quarantined, ...]
    scenarios: tuple[ScenarioGrid, ...] = ()

    def get(self, underlying: str) -> UnderlyingGreeks:
        for u in self.underlyings:
            if u.underlying == underlying:
                return u
        raise KeyError(underlying)

    def scenario(self, underlying: str) -> ScenarioGrid:
        for g in self.scenarios:
            if g.underlying == underlying:
                return g
        raise KeyError(f"{underlying}: no scenario grid (snapshot(with_scenarios=True))")


# ---- per-underlying stores ------------------------------------------------------------------


_A = TypeVar("_A", bound=np.generic)


def _frozen(a: NDArray[_A]) -> NDArray[_A]:
    a.flags.writeable = False
    return a


_COMPACT_MIN_DEAD = 256
"""Option rows without a position are dropped once there are this many and a quarter."""
_PARALLEL_MIN_ROWS = 4096
"""Below this many rows a thread hand-off costs more than it saves."""
_workers = WorkerPool(1, "hedgerd-book", caller_works=False)


def set_threads(n: int) -> None:
    """Threads an underlying's reprice is split over when it has >= 4096 option rows
    (default 1: no threads; a hand-off to a busy core costs more than it saves). Results do
    not depend on the thread count."""
    _workers.set_threads(n)


def _split(n: int) -> list[tuple[int, int]]:
    parts = min(_workers.threads, n // (_PARALLEL_MIN_ROWS // 2))
    if parts <= 1 or n < _PARALLEL_MIN_ROWS:
        return [(0, n)]
    per = -(-n // parts // 512) * 512  # multiples of 512 rows
    return [(i * per, min((i + 1) * per, n)) for i in range(parts) if i * per < n]


_LN_BOUND = 70.0
"""|ln S| and |ln(b/K)| are clamped here for d1/d2 only (prices beyond e^±70 USD are not
real), which bounds |G d| below `normal_cdf.U_MAX` for any σ >= MIN_VOL and τ >= 1 ms."""
_THETA_GAMMA = np.array([[-0.5 * _INV_SQRT_2PI / DAYS_PER_YEAR], [_INV_SQRT_2PI]])


def _clamp_ln(x: float) -> float:
    return min(max(x, -_LN_BOUND), _LN_BOUND)


class _RowViews:
    """Contiguous (rows, n) views of an `_OptionRows`' flat scratch for one reprice."""

    __slots__ = ("hg", "idx", "n", "prod", "u", "u2", "work")

    def __init__(self, rows: _OptionRows, n: int) -> None:
        self.n = n
        self.work = rows.work[: 2 * n].reshape(2, n)
        self.u = rows.u[: 2 * n].reshape(2, n)
        self.u2 = rows.u2[: 2 * n].reshape(2, n)
        self.hg = rows.hg[: 2 * n].reshape(2, n)
        self.idx = rows.idx[: 2 * n].reshape(2, n)
        self.prod = rows.prod[: 8 * n].reshape(8, n)


class _OptionRows:
    """Options of one underlying, sorted by expiry (see module docstring)."""

    # Coefficient rows: C1 = q b (N(d1) and vega), C2 = q K (N(d2)), C3 = q b σ (theta),
    # C4 = q b / σ (gamma, vanna). C1 is stored twice so rows 0..1 multiply (N(d1), N(d2))
    # and rows 2..4 multiply n(d1), each in one ufunc call.
    def __init__(self, capacity: int = 64) -> None:
        self.n = 0
        self.cap = capacity
        self.exp = np.zeros(capacity, np.int64)
        self.strike = np.ones(capacity)
        self.is_put = np.zeros(capacity, np.bool_)
        self.qty = np.zeros(capacity)
        self.vol = np.full(capacity, np.nan)
        self.ratio = np.ones(capacity)
        self.qeff = np.zeros(capacity)
        self.sigma = np.ones(capacity)
        # in grid units of `normal_cdf` (G = GRID, a power of 2: the scaling is exact)
        self.gsigma = np.full(capacity, 0.5 * GRID)  # G σ/2
        self.glnbk = np.zeros(capacity)  # G² ln(b/K)/2
        self.coef = np.zeros((5, capacity))
        self.row_slot = np.zeros(capacity, np.intp)
        self.slot_row = np.zeros(capacity, np.intp)
        self.seg_of_row = np.zeros(capacity, np.intp)
        self._alloc_scratch(capacity)
        self.slot_of: dict[str, int] = {}
        self.slot_names: list[str] = []
        self.bad: dict[str, str] = {}
        self.seg_exp = np.zeros(0, np.int64)
        self.seg_start = np.zeros(0, np.intp)
        self.seg_counts = np.zeros(0, np.intp)  # rows per segment
        self.put12 = np.zeros((2, 0))  # per segment: Σ over puts of (c1, c2)
        self.seg_sums = np.zeros((8, 0))
        self.seg_factor = np.zeros((4, 0))
        self.first_expiry_ms = NO_EXPIRY
        self.all_live = np.ones(0, np.bool_)
        self.seg_dirty = False
        self.put_dirty = False
        # Bumped by every change of a row (insert, compact, qty, vol, forward ratio): what
        # `GreeksBook.option_arrays` caches is valid while it stays (the index moves it not).
        self.version = 0

    _ROW_ARRAYS = (
        "exp",
        "strike",
        "is_put",
        "qty",
        "vol",
        "ratio",
        "qeff",
        "sigma",
        "gsigma",
        "glnbk",
        "row_slot",
        "seg_of_row",
    )

    def _alloc_scratch(self, cap: int) -> None:
        """Per-tick work arrays (rewritten by every reprice, so not kept on growth). Flat, so
        that `reprice` can view them as contiguous (rows, n) blocks: ``np.take`` copies
        non-contiguous index and output arrays."""
        self.work = np.zeros(2 * cap)  # exp(-d1²/2); G σ sqrt(tau)/2
        self.u = np.zeros(2 * cap)  # G d1, G d2
        self.u2 = np.zeros(2 * cap)
        self.hg = np.zeros(2 * cap)
        self.idx = np.zeros(2 * cap, np.int64)  # table indices
        self.prod = np.zeros(8 * cap)
        self.views: _RowViews | None = None

    def _grow(self) -> None:
        new = self.cap * 2
        for name in self._ROW_ARRAYS:
            old = getattr(self, name)
            arr = np.zeros(new, old.dtype)
            arr[: self.cap] = old
            setattr(self, name, arr)
        coef = np.zeros((self.coef.shape[0], new))
        coef[:, : self.cap] = self.coef
        self.coef = coef
        self._alloc_scratch(new)
        slot_row = np.zeros(new, np.intp)
        slot_row[: self.cap] = self.slot_row
        self.slot_row = slot_row
        self.strike[self.cap :] = 1.0
        self.ratio[self.cap :] = 1.0
        self.sigma[self.cap :] = 1.0
        self.gsigma[self.cap :] = 0.5 * GRID
        self.vol[self.cap :] = np.nan
        self.cap = new

    def row_of(self, name: str) -> int | None:
        slot = self.slot_of.get(name)
        return None if slot is None else int(self.slot_row[slot])

    def insert(self, name: str, expiry_ms: int, strike: float, is_put: bool, ratio: float) -> int:
        """A new option row at its expiry's place; later rows shift down by one."""
        if self.n == self.cap:
            self._grow()
        n = self.n
        pos = int(np.searchsorted(self.exp[:n], expiry_ms, side="right"))
        if pos < n:
            for attr in self._ROW_ARRAYS:
                a = getattr(self, attr)
                a[pos + 1 : n + 1] = a[pos:n]
            self.coef[:, pos + 1 : n + 1] = self.coef[:, pos:n]
            moved = self.slot_row[: len(self.slot_names)]
            moved[moved >= pos] += 1
        slot = len(self.slot_names)
        self.slot_names.append(name)
        self.slot_of[name] = slot
        self.slot_row[slot] = pos
        self.row_slot[pos] = slot
        self.exp[pos] = expiry_ms
        self.strike[pos] = strike
        self.is_put[pos] = is_put
        self.qty[pos] = 0.0
        self.vol[pos] = np.nan
        self.ratio[pos] = ratio
        self.n = n + 1
        self.derive_row(pos)
        self.seg_dirty = True
        return pos

    def compact(self) -> None:
        """Drop rows without a position (closed or settled options; their vols go too), so a
        long-running book does not keep repricing dead rows. Renumbers rows and slots."""
        n = self.n
        keep = np.flatnonzero(self.qty[:n] != 0.0)
        m = len(keep)
        self.version += 1
        for attr in self._ROW_ARRAYS:
            a = getattr(self, attr)
            a[:m] = a[keep]
        self.coef[:, :m] = self.coef[:, keep]
        names = [self.slot_names[int(slot)] for slot in self.row_slot[:m]]
        self.slot_names = names
        self.slot_of = {name: i for i, name in enumerate(names)}
        self.row_slot[:m] = np.arange(m)
        self.slot_row[:m] = np.arange(m)
        self.bad = {k: v for k, v in self.bad.items() if k in self.slot_of}
        self.n = m
        self.seg_dirty = True

    def derive_row(self, i: int) -> None:
        """Recompute row ``i``'s coefficients from qty, vol, ratio and strike."""
        self.version += 1
        q = float(self.qty[i])
        v = float(self.vol[i])
        b = float(self.ratio[i])
        K = float(self.strike[i])
        name = self.slot_names[int(self.row_slot[i])]
        ok = math.isfinite(v) and MIN_VOL <= v <= MAX_VOL
        if q != 0.0 and not ok:
            self.bad[name] = "no mark vol" if math.isnan(v) else f"bad mark vol {v!r}"
        else:
            self.bad.pop(name, None)
        qe = q if ok else 0.0
        s = v if ok else 1.0
        self.qeff[i] = qe
        self.sigma[i] = s
        self.gsigma[i] = (0.5 * GRID) * s
        self.glnbk[i] = (0.5 * GRID * GRID) * _clamp_ln(math.log(b / K))
        c1 = qe * b
        col = self.coef[:, i]
        if self.is_put[i] and (col[0] != c1 or col[1] != qe * K):
            self.put_dirty = True  # per-expiry put sums (parity terms) change
        col[0] = c1
        col[1] = qe * K
        col[2] = c1
        col[3] = c1 * s
        col[4] = c1 / s

    def derive_slice(self, lo: int, hi: int) -> None:
        for i in range(lo, hi):
            self.derive_row(i)

    def segment_rows(self, expiry_ms: int) -> tuple[int, int]:
        e = self.exp[: self.n]
        return (
            int(np.searchsorted(e, expiry_ms, side="left")),
            int(np.searchsorted(e, expiry_ms, side="right")),
        )

    def refresh_layout(self) -> None:
        n = self.n
        if self.seg_dirty:
            e = self.exp[:n]
            if n:
                start = np.concatenate(([0], np.flatnonzero(e[1:] != e[:-1]) + 1))
            else:
                start = np.zeros(0, np.intp)
            self.seg_start = start.astype(np.intp)
            self.seg_exp = e[self.seg_start].copy()
            self.first_expiry_ms = int(self.seg_exp[0]) if n else NO_EXPIRY
            self.all_live = np.ones(len(self.seg_start), np.bool_)
            counts = np.diff(np.append(self.seg_start, n))
            self.seg_counts = counts.astype(np.intp)
            self.seg_of_row[:n] = np.repeat(np.arange(len(self.seg_start)), counts)
            self.seg_sums = np.zeros((8, len(start)))
            self.seg_factor = np.full((4, len(start)), -_INV_SQRT_2PI / GRID)  # row 3: vanna
            self.seg_dirty = False
            self.put_dirty = True
        if self.put_dirty:
            if n:
                put = self.is_put[:n]
                self.put12 = np.add.reduceat(
                    np.where(put, self.coef[:2, :n], 0.0), self.seg_start, axis=1
                )
            else:
                self.put12 = np.zeros((2, 0))
            self.put_dirty = False

    def reprice(self, S: float, now_ms: int) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Per-segment sums at index ``S``: a (6, segments) array, rows (`_C_DU` ...):
        delta_usd, ``Σ q K N(d2)`` (value = ``S·delta_usd`` minus it), and vega, theta per
        day, gamma and vanna before their index factors (``S``, ``S``, ``1/S``, 1; `_mix`
        applies them); dead (expired) segments are zero. And the live mask. The array is
        scratch, valid until the next reprice."""
        self.refresh_layout()
        n = self.n
        if n == 0:
            return self.seg_sums[:6], self.all_live
        tau = np.multiply(self.seg_exp - now_ms, 1.0 / MS_PER_YEAR, dtype=np.float64)
        all_live = now_ms < self.first_expiry_ms
        if all_live:
            live = self.all_live
            sqt_seg = np.sqrt(tau)
        else:
            live = tau > 0.0
            sqt_seg = np.sqrt(np.where(live, tau, 1.0))
        lnS = (0.5 * GRID * GRID) * _clamp_ln(math.log(S))
        v = self.views
        if v is None or v.n != n:
            v = self.views = _RowViews(self, n)
        sqt = np.repeat(sqt_seg, self.seg_counts)  # per row (much cheaper than a take)
        parts = _split(n)
        if len(parts) == 1:
            self._rows(v, 0, n, lnS, sqt)
        else:
            pool = _workers.executor()
            futures = [pool.submit(self._rows, v, lo, hi, lnS, sqt) for lo, hi in parts[1:]]
            self._rows(v, *parts[0], lnS, sqt)
            for fut in futures:
                fut.result()
        sums = self.seg_sums
        np.add.reduceat(v.prod, self.seg_start, axis=1, out=sums)
        # N(d1) = table + e Q1, N(d2) = table + e(d2) Q2 with q K e(d2) = S q b e(d1)
        sums[7] *= S
        sums[:2] += sums[6:]
        sums[:2] -= self.put12  # put-call parity: puts are calls minus forwards
        f = self.seg_factor
        np.multiply(sqt_seg, _INV_SQRT_2PI, out=f[0])  # vega per 1.00 vol, / S
        np.divide(_THETA_GAMMA, sqt_seg, out=f[1:3])  # theta per day / S, gamma * S
        sums[2:6] *= f
        if not all_live:
            sums[:, ~live] = 0.0
        return sums[:6], live

    def _rows(self, v: _RowViews, lo: int, hi: int, lnS: float, sqt: FloatArray) -> None:
        """The per-row pass over rows [lo, hi) into ``v.prod`` (rows: c1 T(d1), c2 T(d2),
        c1 e, c3 e, c4 e, c4 e G d2, c1 e Q1, c1 e Q2 with ``e = exp(-d1²/2)``, ``T`` the
        table of `normal_cdf` and ``Q`` its Taylor terms). Elementwise, so row ranges may run
        on different threads and give the same numbers."""
        s = slice(lo, hi)
        c, p = self.coef, v.prod
        e, half, u, u2, hg = v.work[0, s], v.work[1, s], v.u[:, s], v.u2[:, s], v.hg[:, s]
        np.multiply(self.gsigma[s], sqt[s], out=half)  # G σ√τ/2
        np.add(self.glnbk[s], lnS, out=u[0])  # G² ln(F/K)/2
        np.divide(u[0], half, out=u[0])  # G ln(F/K)/(σ√τ)
        np.subtract(u[0], half, out=u[1])  # G d2
        np.add(u[0], half, out=u[0])  # G d1
        np.multiply(u, u, out=u2)
        np.multiply(u2[0], -0.5 / (GRID * GRID), out=e)
        np.exp(e, out=e)
        np.multiply(c[2:5, s], e, out=p[2:5, s])
        np.multiply(p[4, s], u[1], out=p[5, s])
        split_grid(u, hg, v.idx[:, s])
        np.take(TABLE, v.idx[:, s], out=p[0:2, s], mode="clip")
        np.multiply(p[0:2, s], c[0:2, s], out=p[0:2, s])
        taylor_into(u, u2, hg, p[6:8, s])
        np.multiply(p[6:8, s], p[2, s], out=p[6:8, s])

    def expired_names(self, now_ms: int) -> list[str]:
        hi = int(np.searchsorted(self.exp[: self.n], now_ms, side="right"))
        return [
            self.slot_names[int(s)]
            for s, q in zip(self.row_slot[:hi], self.qty[:hi], strict=True)
            if q != 0.0
        ]


@dataclass(slots=True)
class _HedgeRow:
    kind: RowKind
    qty: float
    entry_price_usd: float
    expiry_ms: int


def option_delta_change(
    is_call: bool,
    strike_usd: float,
    expiry_ms: int,
    qty_coin: float,
    index_usd: float,
    ratio: float,
    vol: float,
    at_ms: int,
) -> float | None:
    """The change of the book's options delta (coin, USD numeraire, per USD of index) that a
    change of `qty_coin` of one option makes at `at_ms`, priced at `vol` with the index and
    `ratio` = the expiry's forward over the index, as the book prices its options
    (`option_arrays`: strike over the ratio, quantity times it). None where it cannot be
    priced (no vol, expired, no index or ratio): its delta would be a guess. The one formula
    of the live flow (`take_option_trades`) and of its seed from the venue's trade history
    (`portfolio.flow_seed`)."""
    tau = (expiry_ms - at_ms) / MS_PER_YEAR
    if not (vol > 0.0 and tau > 0.0 and index_usd > 0.0 and ratio > 0.0):
        return None
    g = black_scholes(is_call, index_usd, strike_usd / ratio, tau, vol, 0.0)
    return qty_coin * ratio * float(g.delta)


#: Option position changes kept for `take_option_trades` (the newest): a book whose
#: underlying is never evaluated must not grow without bound.
_MAX_OPTION_TRADES = 10_000


class _Underlying:
    def __init__(self, name: str) -> None:
        self.name = name
        self.index_usd = math.nan
        self.options = _OptionRows()
        self.hedges: dict[str, _HedgeRow] = {}
        self.open_options = 0  # option rows with a non-zero position
        self.ratios: dict[int, float] = {}
        self.hedge_dirty = True
        self.layout_dirty = True
        self.buckets = np.zeros(0, np.int64)
        self.seg_bucket = np.zeros(0, np.intp)
        self.seg_cols: slice | NDArray[np.intp] = self.seg_bucket  # x[:, seg_cols]: options
        # alpha/beta per (bucket, hedge kind), V = alpha S + beta
        self.alpha = np.zeros((0, len(RowKind)))
        self.beta = np.zeros((0, len(RowKind)))
        self.bucket_list: list[int] = []
        # per bucket: the option sums (rewritten every tick) and the live hedges' alpha, beta
        self.inputs = np.zeros((8, 0))
        self.no_window = _frozen(np.zeros(0, np.bool_))
        # hedge aggregates over live buckets, valid for now_ms in [live_lo, live_hi)
        self.live_lo = 0
        self.live_hi = -1
        self.kinds: tuple[tuple[RowKind, float, float], ...] = ()  # (kind, alpha, beta)
        self.version = 0
        self.cache: UnderlyingGreeks | None = None
        self.cache_version = -1
        # `GreeksBook.option_arrays`' parts that do not move with time: (rows' version, the
        # time they were cut at, the first expiry among them, the arrays).
        self.arrays: tuple[int, int, int, _LiveOptions] | None = None
        # Option position changes not yet taken (`take_option_trades`): (name, change coin).
        self.option_trades: list[tuple[str, float]] = []

    def touch(self) -> None:
        self.version += 1

    def ratio(self, expiry_ms: int) -> float:
        return self.ratios.get(expiry_ms, 1.0)

    def has_positions(self) -> bool:
        return bool(self.hedges) or self.open_options > 0

    def refresh(self, now_ms: int) -> None:
        """Bring layout-dependent indexes and the hedge aggregates up to date (cheap when
        nothing changed: a few comparisons)."""
        opts = self.options
        if opts.seg_dirty:
            self.layout_dirty = True
        opts.refresh_layout()
        if self.layout_dirty or self.hedge_dirty:
            keys = set(opts.seg_exp.tolist())
            keys.update(h.expiry_ms for h in self.hedges.values())
            self.bucket_list = sorted(keys)
            self.buckets = np.array(self.bucket_list, np.int64)
            self.seg_bucket = np.searchsorted(self.buckets, opts.seg_exp).astype(np.intp)
            k = len(self.seg_bucket)
            # option buckets are usually the first k (hedge-only expiries and perpetuals after)
            contiguous = k > 0 and int(self.seg_bucket[-1]) - int(self.seg_bucket[0]) == k - 1
            lo = int(self.seg_bucket[0]) if contiguous else 0
            self.seg_cols = slice(lo, lo + k) if contiguous else self.seg_bucket
            _frozen(self.buckets)
            m = len(self.buckets)
            self.inputs = np.zeros((8, m))
            self.no_window = _frozen(np.zeros(m, np.bool_))
            self.alpha = np.zeros((m, len(RowKind)))
            self.beta = np.zeros((m, len(RowKind)))
            for h in self.hedges.values():
                i = int(np.searchsorted(self.buckets, h.expiry_ms))
                b = 1.0 if h.expiry_ms == NO_EXPIRY else self.ratio(h.expiry_ms)
                a_, b_ = affine_coefficients(h.kind, h.qty, h.entry_price_usd, b)
                self.alpha[i, h.kind] += float(a_)
                self.beta[i, h.kind] += float(b_)
            self.layout_dirty = False
            self.hedge_dirty = False
            self.live_hi = -1  # force the aggregates below
        if not self.live_lo <= now_ms < self.live_hi:
            i0 = bisect.bisect_right(self.bucket_list, now_ms)
            self.live_lo = self.bucket_list[i0 - 1] if i0 else -(2**63)
            self.live_hi = self.bucket_list[i0] if i0 < len(self.bucket_list) else NO_EXPIRY
            live = (self.buckets > now_ms)[:, None]
            alpha = self.alpha * live
            beta = self.beta * live
            self.inputs[_C_HA] = alpha.sum(axis=1)
            self.inputs[_C_HB] = beta.sum(axis=1)
            ka, kb = alpha.sum(axis=0).tolist(), beta.sum(axis=0).tolist()
            self.kinds = tuple(
                (k, ka[k], kb[k]) for k in HEDGE_KINDS if ka[k] != 0.0 or kb[k] != 0.0
            )


# ---- the book ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LiveOptions:
    """The live option rows of one underlying at one time, as `option_arrays` gives them
    (expiry in ms in place of the time to it). Read-only arrays."""

    is_call: NDArray[np.bool_]
    strike_usd: FloatArray
    exp: NDArray[np.int64]
    qty_coin: FloatArray
    vol: FloatArray


def _live_options(o: _OptionRows, now_ms: int) -> tuple[int, _LiveOptions]:
    """(first expiry among them, the rows) of the options with a position and a usable vol
    that have not expired at `now_ms`: the set stays until that first expiry."""
    n = o.n
    keep = (o.exp[:n] > now_ms) & (o.qeff[:n] != 0.0)
    b = o.ratio[:n][keep]
    exp = o.exp[:n][keep]
    live = _LiveOptions(
        is_call=_frozen(~o.is_put[:n][keep]),
        strike_usd=_frozen(o.strike[:n][keep] / b),
        exp=_frozen(exp),
        qty_coin=_frozen(o.qeff[:n][keep] * b),
        vol=_frozen(o.sigma[:n][keep].copy()),
    )
    return (int(exp.min()) if exp.size else NO_EXPIRY), live


def _check_price(what: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise BadMarketDataError(f"{what}: price must be finite and positive, got {value!r}")
    return v


class GreeksBook:
    """Live Greeks per underlying and expiry; see the module docstring for conventions.

    ``time_tolerance_ms``: `snapshot` reuses an underlying's last valuation when nothing in
    it changed and it was valued at most this long ago (0: revalue whenever time moved).
    """

    def __init__(self, instruments: Iterable[Instrument] = (), time_tolerance_ms: int = 0) -> None:
        self._instruments: dict[str, Instrument] = {}
        self._kinds: dict[str, RowKind] = {}
        self._und: dict[str, _Underlying] = {}
        self._cash_usd: dict[str, float] = {}
        self.time_tolerance_ms = int(time_tolerance_ms)
        for inst in instruments:
            self.add_instrument(inst)

    # -- definitions ---------------------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> None:
        """Register an instrument definition (idempotent)."""
        self._kinds[instrument.name] = row_kind(instrument)
        self._instruments[instrument.name] = instrument

    @property
    def instrument_count(self) -> int:
        """How many instruments the book holds (options, hedges, anything added)."""
        return len(self._instruments)

    def instrument(self, name: str) -> Instrument:
        try:
            return self._instruments[name]
        except KeyError:
            raise UnknownInstrumentError(f"unknown instrument {name!r}") from None

    @property
    def underlyings(self) -> tuple[str, ...]:
        return tuple(sorted(self._und))

    def _u(self, underlying: str) -> _Underlying:
        u = self._und.get(underlying)
        if u is None:
            u = self._und[underlying] = _Underlying(underlying)
        return u

    # -- positions -----------------------------------------------------------------------

    def apply_position(self, position: Position) -> None:
        self.set_position(
            position.instrument, position.amount, position.amount_unit, position.average_price
        )

    def set_position(
        self,
        name: str,
        amount: float,
        amount_unit: AmountUnit,
        average_price: float | None = None,
    ) -> None:
        """Set the signed position in ``name`` to ``amount`` (in ``amount_unit``, which must
        be the instrument's: USD for inverse perpetuals/futures, coin otherwise).

        ``average_price`` (USD per coin; perpetuals, futures and spot) is the entry price of
        the floating P&L; None means the current mark (floating P&L taken as zero, i.e.
        already in the balance), which needs the index price first.
        """
        inst = self.instrument(name)
        kind = self._kinds[name]
        amt = float(amount)
        if not math.isfinite(amt):
            raise BookError(f"{name}: amount must be finite, got {amount!r}")
        if amount_unit is not inst.amount_unit:
            raise BookError(
                f"{name}: amount is in {inst.amount_unit.value}, got {amount_unit.value}"
            )
        u = self._u(inst.underlying)
        if kind.is_option:
            self._set_option_qty(u, inst, amt)
        else:
            self._set_hedge(u, inst, kind, amt, average_price)
        u.touch()

    def _set_option_qty(self, u: _Underlying, inst: Instrument, qty_coin: float) -> None:
        opts = u.options
        row = opts.row_of(inst.name)
        if row is None:
            if qty_coin == 0.0:
                return
            assert inst.expiry_ms is not None and inst.strike_usd is not None
            row = opts.insert(
                inst.name,
                inst.expiry_ms,
                inst.strike_usd,
                not inst.is_call,
                u.ratio(inst.expiry_ms),
            )
            u.layout_dirty = True
        before = float(opts.qty[row])
        if qty_coin != before:
            u.option_trades.append((inst.name, qty_coin - before))
            if len(u.option_trades) > _MAX_OPTION_TRADES:  # nobody takes them: bounded
                del u.option_trades[: len(u.option_trades) - _MAX_OPTION_TRADES]
        u.open_options += (qty_coin != 0.0) - (before != 0.0)
        opts.qty[row] = qty_coin
        opts.derive_row(row)
        if qty_coin == 0.0 and opts.n - u.open_options > max(_COMPACT_MIN_DEAD, opts.n // 4):
            opts.compact()

    def _set_hedge(
        self,
        u: _Underlying,
        inst: Instrument,
        kind: RowKind,
        qty: float,
        average_price: float | None,
    ) -> None:
        if qty == 0.0:
            if u.hedges.pop(inst.name, None) is not None:
                u.hedge_dirty = True
            return
        expiry = NO_EXPIRY if inst.expiry_ms is None else inst.expiry_ms
        if average_price is None:
            if not math.isfinite(u.index_usd):
                raise BookError(
                    f"{inst.name}: no index price for {u.name} yet; give average_price or "
                    "set the index first"
                )
            b = 1.0 if expiry == NO_EXPIRY else u.ratio(expiry)
            entry = b * u.index_usd
        else:
            entry = _check_price(f"{inst.name} average_price", average_price)
        u.hedges[inst.name] = _HedgeRow(kind, qty, entry, expiry)
        u.hedge_dirty = True

    def set_balance(self, currency: str, amount: float) -> None:
        """Cash balance in ``currency`` (coin: collateral of that underlying; USD/USDC/USDT:
        cash in USD, no delta)."""
        amt = float(amount)
        if not math.isfinite(amt):
            raise BookError(f"{currency} balance must be finite, got {amount!r}")
        cur = currency.upper()
        if cur in CASH_CURRENCIES:
            self._cash_usd[cur] = amt
            return
        u = self._u(cur)
        name = f"{cur} balance"
        if amt == 0.0:
            u.hedges.pop(name, None)
        else:
            u.hedges[name] = _HedgeRow(RowKind.COLLATERAL, amt, math.nan, NO_EXPIRY)
        u.hedge_dirty = True
        u.touch()

    def apply_balance(self, balance: Balance) -> None:
        self.set_balance(balance.currency, balance.equity)

    def position(self, name: str) -> float:
        """The book's current position in ``name``, in its amount unit (0 if none)."""
        inst = self.instrument(name)
        u = self._und.get(inst.underlying)
        if u is None:
            return 0.0
        if self._kinds[name].is_option:
            row = u.options.row_of(name)
            return 0.0 if row is None else float(u.options.qty[row])
        h = u.hedges.get(name)
        return 0.0 if h is None else h.qty

    # -- market data ---------------------------------------------------------------------

    def set_index(self, underlying: str, price_usd: float) -> None:
        """The underlying's index price, USD per coin. Refuses NaN/inf/non-positive."""
        u = self._u(underlying)
        u.index_usd = _check_price(f"{underlying} index", price_usd)
        u.touch()

    def apply_index(self, index: IndexPrice) -> None:
        self.set_index(index.underlying, index.price_usd)

    def index_price(self, underlying: str) -> float:
        u = self._und.get(underlying)
        return math.nan if u is None else u.index_usd

    def set_forward(self, underlying: str, expiry_ms: int, forward_usd: float) -> None:
        """The forward (Deribit's ``underlying_price``) of an expiry, in USD per coin; stored
        as the ratio to the current index and held as the index moves."""
        u = self._u(underlying)
        if not math.isfinite(u.index_usd):
            raise BookError(f"{underlying}: set the index before forwards")
        self.set_forward_ratio(
            underlying, expiry_ms, _check_price(f"{underlying} forward", forward_usd) / u.index_usd
        )

    def forward_ratio(self, underlying: str, expiry_ms: int) -> float:
        """Forward / index of an expiry as the book holds it (1.0 when none was set)."""
        u = self._und.get(underlying)
        return u.ratio(expiry_ms) if u is not None else 1.0

    def set_forward_ratio(self, underlying: str, expiry_ms: int, ratio: float) -> None:
        """Forward / index of an expiry (1.0: no basis)."""
        if not (math.isfinite(ratio) and 1 / _MAX_FORWARD_RATIO < ratio < _MAX_FORWARD_RATIO):
            raise BadMarketDataError(f"{underlying}: implausible forward ratio {ratio!r}")
        u = self._u(underlying)
        if u.ratios.get(expiry_ms) == ratio:
            return
        u.ratios[expiry_ms] = ratio
        opts = u.options
        lo, hi = opts.segment_rows(expiry_ms)
        if hi > lo:
            opts.ratio[lo:hi] = ratio
            opts.derive_slice(lo, hi)
        if any(h.expiry_ms == expiry_ms for h in u.hedges.values()):
            u.hedge_dirty = True
        u.touch()

    def option_vol(self, name: str) -> float:
        """The option's vol as the book holds it (fraction; NaN when it has none)."""
        u = self._und.get(self.instrument(name).underlying)
        row = None if u is None else u.options.row_of(name)
        return math.nan if u is None or row is None else float(u.options.vol[row])

    def set_option_vol(self, name: str, vol: float) -> None:
        """The option's mark implied vol (0.6 = 60 %). NaN or out of (1e-4, 20) quarantines
        the option until a good vol arrives."""
        inst = self.instrument(name)
        if not inst.is_option:
            raise BookError(f"{name} is not an option")
        u = self._u(inst.underlying)
        opts = u.options
        row = opts.row_of(name)
        if row is None:
            # No position yet: create the row so the vol is ready when a position arrives.
            assert inst.expiry_ms is not None and inst.strike_usd is not None
            row = opts.insert(
                name, inst.expiry_ms, inst.strike_usd, not inst.is_call, u.ratio(inst.expiry_ms)
            )
            u.layout_dirty = True
        opts.vol[row] = float(vol)
        opts.derive_row(row)
        u.touch()

    def set_option_mark_price(self, name: str, mark_price: float, now_ms: int) -> float:
        """Set the option's vol implied from its mark price (in the instrument's price unit:
        coin for inverse options, converted at the index; USD for linear ones). Returns the
        vol (NaN, and the option quarantined, where the price carries no vol information)."""
        inst = self.instrument(name)
        if not inst.is_option:
            raise BookError(f"{name} is not an option")
        assert inst.expiry_ms is not None and inst.strike_usd is not None
        u = self._u(inst.underlying)
        if not math.isfinite(u.index_usd):
            raise BookError(f"{name}: no index price for {inst.underlying} yet")
        price = float(mark_price)
        price_usd = price * u.index_usd if inst.price_unit is PriceUnit.COIN else price
        tau = (inst.expiry_ms - now_ms) / MS_PER_YEAR
        vol_a, reason_a = implied_vol_with_reason(
            inst.is_call,
            price_usd,
            u.ratio(inst.expiry_ms) * u.index_usd,
            inst.strike_usd,
            max(tau, 0.0),
        )
        vol = float(vol_a)
        self.set_option_vol(name, vol)
        opts = u.options
        if math.isnan(vol) and name in opts.bad:
            why = Reason(int(reason_a)).name.lower()
            opts.bad[name] = f"no vol implied by mark price {mark_price!r} ({why})"
        return vol

    def apply_ticker(self, ticker: Ticker) -> None:
        """A venue ticker: option mark IV (or mark price, implied at the ticker's time) and
        the expiry's forward from ``underlying_price``; a future's mark sets its forward."""
        inst = self.instrument(ticker.instrument)
        if inst.expiry_ms is not None and ticker.index_price_usd > 0:
            fwd = ticker.underlying_price_usd if inst.is_option else ticker.mark_price
            if fwd is not None and math.isfinite(fwd) and fwd > 0:
                self.set_forward_ratio(
                    inst.underlying, inst.expiry_ms, fwd / ticker.index_price_usd
                )
        if inst.is_option:
            if ticker.mark_iv is not None:
                self.set_option_vol(inst.name, ticker.mark_iv)
            else:
                self.set_option_mark_price(inst.name, ticker.mark_price, ticker.ts_ms)

    # -- valuation -----------------------------------------------------------------------

    def snapshot(self, now_ms: int, with_scenarios: bool = False) -> BookSnapshot:
        """Greeks of every underlying with positions and an index price, at ``now_ms``.

        ``with_scenarios``: also the scenario grid of each (a full revaluation per shock:
        milliseconds for a large book, so not for every tick)."""
        out: list[UnderlyingGreeks] = []
        unpriced: list[Quarantined] = []
        for name in sorted(self._und):
            u = self._und[name]
            if not u.has_positions():
                continue
            if not math.isfinite(u.index_usd):
                unpriced.append(Quarantined(name, "no index price"))
                continue
            out.append(self._value(u, now_ms))
        grids = (
            tuple(self.scenario_grid(u.underlying, now_ms) for u in out) if with_scenarios else ()
        )
        return BookSnapshot(
            now_ms, tuple(out), sum(self._cash_usd.values()), tuple(unpriced), grids
        )

    def underlying_snapshot(self, underlying: str, now_ms: int) -> UnderlyingGreeks:
        """Greeks of one underlying (reprices only its rows)."""
        u = self._und.get(underlying)
        if u is None:
            raise UnknownInstrumentError(f"no positions in {underlying!r}")
        if not math.isfinite(u.index_usd):
            raise BookError(f"{underlying}: no index price")
        return self._value(u, now_ms)

    def option_arrays(self, underlying: str, now_ms: int) -> OptionArrays:
        """The live options of `underlying` at `now_ms` as arrays (read-only), for a band that
        averages the gamma over the spot range ahead (`hedging.kernel.horizon_gamma`).

        Per option: strike over its expiry's forward ratio b and quantity times b, so that
        Black–Scholes on the index gives the USD-numeraire gamma per USD of index move (the
        book holds F = b S fixed in ratio: d2V/dS2 = b2 Gamma_F(bS, K) = b Gamma_S(S, K/b));
        its mark vol; quarantined options (no usable vol) and expired ones are left out.

        Cached: all but the time to expiry is kept until an option row changes (a position,
        a mark vol, a forward: `options_version`) or the first kept option expires; the
        arrays of one version are the same objects (callers key on them)."""
        u = self._u(underlying)
        o = u.options
        c = u.arrays
        if c is None or c[0] != o.version or not c[1] <= now_ms < c[2]:
            c = (o.version, now_ms, *_live_options(o, now_ms))
            u.arrays = c
        live = c[3]
        return OptionArrays(
            is_call=live.is_call,
            strike_usd=live.strike_usd,
            tau_years=(live.exp - now_ms) / MS_PER_YEAR,
            qty_coin=live.qty_coin,
            vol=live.vol,
        )

    def take_option_trades(self, underlying: str, now_ms: int) -> list[float]:
        """The change of the options' delta (coin, USD numeraire, per USD of index) of each
        option position change of `underlying` since the last call, priced now at the
        option's mark vol (the option flow's delta jumps: `hedging.flow`); forgets them.
        A change of an option with no mark vol, an expired one or without an index is left
        out (it cannot be priced; its delta would be a guess)."""
        return [d for _, _, d in self.take_option_changes(underlying, now_ms) if d is not None]

    def take_option_changes(
        self, underlying: str, now_ms: int
    ) -> list[tuple[str, float, float | None]]:
        """`take_option_trades` with each change's option and quantity (coin): (name,
        quantity change, delta change or None where it cannot be priced)."""
        u = self._u(underlying)
        pending, u.option_trades = u.option_trades, []
        out: list[tuple[str, float, float | None]] = []
        s = u.index_usd
        o = u.options
        for name, dq in pending:
            row = o.row_of(name)
            d = None
            if row is not None:
                d = option_delta_change(
                    not bool(o.is_put[row]),
                    float(o.strike[row]),
                    int(o.exp[row]),
                    dq,
                    s,
                    float(o.ratio[row]),
                    float(o.vol[row]),
                    now_ms,
                )
            out.append((name, dq, d))
        return out

    def options_version(self, underlying: str) -> int:
        """A counter that changes whenever `option_arrays` may (other than by time)."""
        return self._u(underlying).options.version

    def _value(self, u: _Underlying, now_ms: int) -> UnderlyingGreeks:
        c = u.cache
        if (
            c is not None
            and u.cache_version == u.version
            and 0 <= now_ms - c.valued_at_ms <= self.time_tolerance_ms
        ):
            return c
        result = self._compute(u, now_ms)
        u.cache = result
        u.cache_version = u.version
        return result

    def _compute(self, u: _Underlying, now_ms: int) -> UnderlyingGreeks:
        u.refresh(now_ms)
        S = u.index_usd
        x = u.inputs
        if u.options.n:
            sums, seg_live = u.options.reprice(S, now_ms)
            x[:_C_HA, u.seg_cols] = sums
        else:
            seg_live = np.zeros(0, np.bool_)
        t = np.dot(_mix(S), x)  # (fields, buckets): a fresh array, frozen into the snapshot
        totals = np.add.reduce(t, axis=1).tolist()
        # At most one expiry settles at a time (they are all at 08:00 UTC on distinct days).
        buckets = u.bucket_list
        m = len(buckets)
        i0 = bisect.bisect_right(buckets, now_ms)
        window = u.no_window
        proj_du, proj_dc = totals[_DU], totals[_DC]
        next_expiry: int | None = None
        in_window = False
        if i0 < m and buckets[i0] != NO_EXPIRY:
            next_expiry = buckets[i0]
            if next_expiry - now_ms <= SETTLEMENT_WINDOW_MS:
                in_window = True
                window = np.zeros(m, np.bool_)
                window[i0] = True
                _frozen(window)
                proj_du -= float(t[_DU, i0])
                proj_dc -= float(t[_DC, i0])
        hedges = tuple(HedgeDelta(k, a * S + b, a, -b / S) for k, a, b in u.kinds)
        if u.options.bad or i0 > 0:
            quarantined = self._quarantined(u, now_ms, seg_live, u.buckets > now_ms)
        else:
            quarantined = ()
        return UnderlyingGreeks(
            underlying=u.name,
            index_price_usd=S,
            valued_at_ms=now_ms,
            total=Greeks(*totals),
            by_expiry=ExpiryTable(u.buckets, window, _frozen(t)),
            hedges=hedges,
            projected_delta_usdnum_coin=proj_du,
            projected_delta_coinnum_coin=proj_dc,
            in_settlement_window=in_window,
            next_expiry_ms=next_expiry,
            quarantined=quarantined,
        )

    @staticmethod
    def _quarantined(
        u: _Underlying, now_ms: int, seg_live: NDArray[np.bool_], bucket_live: NDArray[np.bool_]
    ) -> tuple[Quarantined, ...]:
        bad = u.options.bad
        if not bad and seg_live.all() and bucket_live.all():
            return ()
        out = [Quarantined(n, r) for n, r in sorted(bad.items())]
        if not seg_live.all():
            out += [Quarantined(n, "expired") for n in u.options.expired_names(now_ms)]
        out += [
            Quarantined(n, "expired") for n, h in sorted(u.hedges.items()) if h.expiry_ms <= now_ms
        ]
        return tuple(out)

    # -- scenarios -----------------------------------------------------------------------

    def scenario_grid(
        self,
        underlying: str,
        now_ms: int,
        spot_shocks: Sequence[float] = SPOT_SHOCKS,
        vol_shocks: Sequence[float] = VOL_SHOCKS,
    ) -> ScenarioGrid:
        """Full revaluation of one underlying under every (vol, spot) shock pair; see
        `ScenarioGrid`. Costs ``len(spot_shocks) · len(vol_shocks)`` option repricings, so it
        is computed on demand, not on every tick."""
        u = self._und.get(underlying)
        if u is None or not math.isfinite(u.index_usd):
            raise BookError(f"{underlying}: no positions or no index price")
        u.refresh(now_ms)
        S = u.index_usd
        ds = np.asarray(spot_shocks, np.float64)
        dv = np.asarray(vol_shocks, np.float64)
        S1 = S * (1.0 + ds)
        if not np.all(S1 > 0):
            raise BookError("spot shocks must keep the index positive")
        buckets = u.buckets
        m = len(buckets)
        live = buckets > now_ms
        nv, ns = len(dv), len(ds)
        base = np.zeros(m)
        shocked = np.zeros((m, nv, ns))
        opts = u.options
        n = opts.n
        if n:
            seg_tau = (opts.seg_exp - now_ms) / MS_PER_YEAR
            seg_ok = seg_tau > 0
            tau = np.where(seg_ok, seg_tau, 1.0)[opts.seg_of_row[:n]]
            qty = opts.qeff[:n] * seg_ok[opts.seg_of_row[:n]]
            is_call = ~opts.is_put[:n]
            K = opts.strike[:n]
            b = opts.ratio[:n]
            sig = opts.sigma[:n]
            v0 = option_value_usd(is_call, qty, S, K, tau, sig, b)
            base[u.seg_bucket] = np.add.reduceat(v0, opts.seg_start)
            for j, shock in enumerate(dv):
                vol = np.maximum(sig + shock, SCENARIO_VOL_FLOOR)
                v = option_value_usd(is_call, qty, S1[:, None], K, tau, vol, b)  # (ns, n)
                shocked[u.seg_bucket, j, :] = np.add.reduceat(v, opts.seg_start, axis=1).T
        a_b = (u.alpha * live[:, None]).sum(axis=1)
        b_b = (u.beta * live[:, None]).sum(axis=1)
        base += a_b * S + b_b
        shocked += (a_b[:, None] * S1[None, :] + b_b[:, None])[:, None, :]
        by_exp = shocked - base[:, None, None]
        total_shocked = shocked.sum(axis=0)
        total_base = float(base.sum())
        return ScenarioGrid(
            underlying=underlying,
            index_price_usd=S,
            valued_at_ms=now_ms,
            spot_shocks=tuple(float(x) for x in ds),
            vol_shocks=tuple(float(x) for x in dv),
            pnl_usd=total_shocked - total_base,
            pnl_coin=total_shocked / S1[None, :] - total_base / S,
            expiry_ms=buckets.copy(),
            by_expiry_pnl_usd=by_exp,
        )
