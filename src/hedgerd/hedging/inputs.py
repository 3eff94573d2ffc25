"""The controller's inputs: small frozen records, independent of the book's internals.

A thin adapter builds them from the GreeksBook snapshot and the venues' market data. Deltas are
in coin of the underlying in the configured numeraire; prices in USD per coin unless a field
says otherwise; times are UTC epoch milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hedgerd.hedging.jumps import JUMP_SKEW_MAX
from hedgerd.model import HedgeStyle, Instrument, InstrumentKind, OrderBookSnapshot, Quote
from hedgerd.model.fast_init import fast_frozen_init

# Enum members bound once: `Enum.MEMBER` is a class attribute lookup through the enum's
# metaclass (~0.15 us on Python 3.11), made several times on every decision.
_PERPETUAL = InstrumentKind.PERPETUAL
_FUTURE = InstrumentKind.FUTURE


@fast_frozen_init  # built on every evaluation (the portfolio's sum: issue 17's latency)
@dataclass(frozen=True, slots=True)
class UnderlyingRisk:
    """The book's risk in one underlying.

    - `net_delta_coin`: the account's net delta, filled hedge positions included, in-flight
      orders excluded (they come separately).
    - `expiring_delta_coin`: the part of it from options settling at `next_settlement_ms`
      (None: no settlement coming), for the projected delta inside the settlement window.
    - `gamma_coin_per_usd`: d(net delta)/dS; `vanna_coin_per_vol`: d(net delta)/d(vol) per
      1.00 of vol (moves the centre of the Zakamouline/hedgerd bands; 0 if unknown).
    - `options_delta_coin`: the options' own delta (hedge positions excluded), for the unwind
      shift of the hedgerd policy (0 if unknown: no shift).
    - `vol`, `tau_years`: the book's representative (gamma-weighted) implied vol and time to
      expiry; `rate`: continuously compounded, per year.
    - `gamma_ahead_coin_per_usd`: the book's gamma averaged over the spot range ahead
      (`kernel.gamma_ahead`, at the policy's horizon), for the hedgerd band's gamma term
      (None: not computed; the band then uses `gamma_coin_per_usd`).
    - `flow_var_coin2_per_year`, `flow_jump_coin`: the delta motion of the book's own option
      trades (`hedging.flow.FlowEstimator`): variance rate (coin^2/year) and rms jump (coin),
      for the hedgerd band's `flow_weight` (0, 0: none seen).
    - `vol_of_vol_per_sqrt_year`: the marks' realised vol-of-vol (`hedging.volvol`,
      1/sqrt(year)), for the hedgerd band's vol-of-vol weight (`vov_ref`; 0: the marks
      constant or not tracked).
    - `gamma_coherence`: |net gamma| / gross gamma of the book's options
      (`kernel.book_gamma_coherence`, in [0, 1]), for the hedgerd band's `shift_coherence`
      (None: not computed; the centre shift is not scaled).
    - `jump_var_ratio`: the index's variance over the marks' (`hedging.jumps`: 1 + the
      jumps' part of its realised variance over the marks' variance, >= 1), for the hedgerd
      band's `jump_shift_power` (1: no jumps seen or not tracked).
    - `jump_skew`: the jumps' lean (`hedging.jumps`' skew: the window's sum r^3 over its
      variance where a jump is found), a signed log return, dimensionless, within
      +-`JUMP_SKEW_MAX` (0.2), for the hedgerd band's `jump_skew_weight` (0: no jump found
      or not tracked).
    - `jump_rate_per_year`: the jumps counted in the window a year (`hedging.jumps`, >= 0),
      for the hedgerd band's `jump_life_weight` (0: no jump found or not tracked).
    """

    underlying: str
    spot_usd: float
    net_delta_coin: float
    gamma_coin_per_usd: float
    vol: float
    tau_years: float
    vanna_coin_per_vol: float = 0.0
    rate: float = 0.0
    expiring_delta_coin: float = 0.0
    next_settlement_ms: int | None = None
    options_delta_coin: float = 0.0
    gamma_ahead_coin_per_usd: float | None = None
    flow_var_coin2_per_year: float = 0.0
    flow_jump_coin: float = 0.0
    vol_of_vol_per_sqrt_year: float = 0.0
    gamma_coherence: float | None = None
    jump_var_ratio: float = 1.0
    jump_skew: float = 0.0
    jump_rate_per_year: float = 0.0

    def __post_init__(self) -> None:
        if (
            self.spot_usd > 0
            and self.vol > 0
            and math.isfinite(
                self.spot_usd
                + self.vol
                + self.net_delta_coin
                + self.gamma_coin_per_usd
                + self.tau_years
                + self.vanna_coin_per_vol
                + self.rate
                + self.expiring_delta_coin
                + self.options_delta_coin
                + (0.0 if self.gamma_ahead_coin_per_usd is None else self.gamma_ahead_coin_per_usd)
                + self.flow_var_coin2_per_year
                + self.flow_jump_coin
                + self.vol_of_vol_per_sqrt_year
                + (0.5 if self.gamma_coherence is None else self.gamma_coherence)
                + self.jump_var_ratio
                + self.jump_skew
                + self.jump_rate_per_year
            )
            and (self.gamma_coherence is None or 0.0 <= self.gamma_coherence <= 1.0)
            and self.flow_var_coin2_per_year >= 0.0
            and self.flow_jump_coin >= 0.0
            and self.vol_of_vol_per_sqrt_year >= 0.0
            and self.jump_rate_per_year >= 0.0
            and self.jump_var_ratio >= 1.0
            and -JUMP_SKEW_MAX <= self.jump_skew <= JUMP_SKEW_MAX
        ):
            # The usual case, one test (built on every evaluation): a sum of floats is finite
            # only if every term is (an infinity or a NaN carries through), and a sum that
            # overflows falls to the field-by-field checks below, which pass it. (The averaged
            # gamma is in the sum: the former early return let a NaN one through.)
            return
        for name in ("spot_usd", "vol"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{self.underlying}: {name} must be positive, got {v}")
        for name in (
            "net_delta_coin",
            "gamma_coin_per_usd",
            "tau_years",
            "vanna_coin_per_vol",
            "rate",
            "expiring_delta_coin",
            "options_delta_coin",
        ):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"{self.underlying}: {name} must be finite, got {v}")
        g = self.gamma_ahead_coin_per_usd
        if g is not None and not math.isfinite(g):
            raise ValueError(f"{self.underlying}: gamma_ahead_coin_per_usd must be finite, got {g}")
        c = self.gamma_coherence
        if c is not None and not 0.0 <= c <= 1.0:  # NaN fails too
            raise ValueError(f"{self.underlying}: gamma_coherence must be in [0, 1], got {c}")
        for name in (
            "flow_var_coin2_per_year",
            "flow_jump_coin",
            "vol_of_vol_per_sqrt_year",
            "jump_rate_per_year",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"{self.underlying}: {name} must be finite and >= 0, got {v}")
        j = self.jump_var_ratio
        if not (math.isfinite(j) and j >= 1.0):
            raise ValueError(f"{self.underlying}: jump_var_ratio must be finite and >= 1, got {j}")
        k = self.jump_skew
        if not -JUMP_SKEW_MAX <= k <= JUMP_SKEW_MAX:  # NaN fails too
            raise ValueError(
                f"{self.underlying}: jump_skew must be finite and within +-{JUMP_SKEW_MAX}, got {k}"
            )


@dataclass(frozen=True, slots=True)
class HedgeVenueState:
    """One candidate hedge instrument on one venue, as the router sees it.

    `delta_coin_per_amount` converts the instrument's amount unit into coin delta (1 for a
    coin-sized linear contract of size 1; 1/F for an inverse contract sized in USD).
    `position_amount` is the current signed position in the amount unit; `max_position_amount`
    the limit on its absolute value (None: none). `funding_8h` (perpetuals) is the fraction of
    notional a long pays per 8 h; `basis_annual` (dated futures) the annualised premium of the
    future over the index, which a long loses as it converges. `margin_available_usd` and
    `initial_margin_frac` bound the exposure a trade may add (None: unchecked).
    """

    instrument: Instrument
    quote: Quote
    delta_coin_per_amount: float
    position_amount: float = 0.0
    book: OrderBookSnapshot | None = None
    funding_8h: float | None = None
    basis_annual: float | None = None
    max_position_amount: float | None = None
    margin_available_usd: float | None = None
    initial_margin_frac: float = 0.0

    @property
    def venue(self) -> str:
        return self.instrument.venue

    @property
    def name(self) -> str:
        return self.instrument.name

    @property
    def carry_annual(self) -> float:
        """Annual carry a long position pays, as a fraction of notional (funding or basis)."""
        if self.instrument.kind is _PERPETUAL and self.funding_8h is not None:
            return self.funding_8h * 3.0 * 365.0
        if self.instrument.kind is _FUTURE and self.basis_annual is not None:
            return self.basis_annual
        return 0.0


@dataclass(frozen=True, slots=True)
class InFlightOrder:
    """An order sent and not yet terminal: its remaining `delta_coin` counts as hedged.

    `label` is its client order id; `placed_ms` when it was sent; `style` maker or taker.
    """

    venue: str
    instrument: str
    label: str
    delta_coin: float
    style: HedgeStyle
    placed_ms: int


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What a policy remembers between evaluations (the caller keeps it; see `after`)."""

    last_hedge_ms: int | None = None
    last_hedge_spot_usd: float | None = None
