"""The controller's math as vectorised pure functions: bands, triggers, sizing, depth, routing.

The live controller (`controller.decide`) calls these on one underlying (0-d arrays, a handful
of candidate instruments); the backtest calls the very same functions on arrays of shape
(parameter sets, paths). There is one implementation of every rule.

Units: deltas and band widths in coin; spot in USD; gamma in coin/USD; vanna in coin per 1.00
of vol; vol annualised; tau and rates in years; costs (lambda, fees, offsets, carry) as
fractions of notional; times in seconds unless named `_ms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hedgerd.hedging.config import (
    FixedBandPolicy,
    HedgerdPolicy,
    PolicyConfig,
    TimerPolicy,
    WhalleyWilmottPolicy,
    ZakamoulinePolicy,
)

Arr = NDArray[np.float64]

# Trigger codes (int8 arrays); match model.HedgeTrigger names.
TRIG_NONE = 0
TRIG_BAND = 1
TRIG_TIMER = 2
TRIG_SAFETY = 3
TRIG_MAKER = 4

_TAU_FLOOR = 1e-9  # years; avoids division by zero at expiry

# Element-wise operations that take either Python/numpy scalars or arrays. The live
# controller evaluates one underlying with plain floats (math: ~0.1 us an operation, where a
# numpy call on a scalar costs ~1 us); the backtest passes arrays (numpy). The formulas below
# are written once against these.
_SCALAR = frozenset((float, int, bool, np.float64, np.bool_))
# Each helper tests its operands' types inline (a frozenset: one hash lookup): a decision
# makes a few dozen of these calls, and a nested call would be most of the cost of one.


def _where(c: Any, a: Any, b: Any) -> Any:
    if type(c) in _SCALAR:
        return a if c else b
    return np.where(c, a, b)


def _maximum(a: Any, b: Any) -> Any:
    if type(a) in _SCALAR and type(b) in _SCALAR:
        return a if a >= b else b
    return np.maximum(a, b)


def _minimum(a: Any, b: Any) -> Any:
    if type(a) in _SCALAR and type(b) in _SCALAR:
        return a if a <= b else b
    return np.minimum(a, b)


def _clip(x: Any, lo: Any, hi: Any) -> Any:
    if type(x) in _SCALAR and type(lo) in _SCALAR and type(hi) in _SCALAR:
        return lo if x < lo else (hi if x > hi else x)
    return np.clip(x, lo, hi)


def _abs(x: Any) -> Any:
    return abs(x) if type(x) in _SCALAR else np.abs(x)


def _sqrt(x: Any) -> Any:
    return math.sqrt(x) if type(x) in _SCALAR else np.sqrt(x)


def _cbrt(x: Any) -> Any:
    return math.copysign(abs(x) ** (1.0 / 3.0), x) if type(x) in _SCALAR else np.cbrt(x)


def _exp(x: Any) -> Any:
    return math.exp(x) if type(x) in _SCALAR else np.exp(x)


def _isnan(x: Any) -> Any:
    return math.isnan(x) if type(x) in _SCALAR else np.isnan(x)


def _not(x: Any) -> Any:
    return (not x) if type(x) in _SCALAR else ~x


def _sign(x: Any) -> Any:
    if type(x) in _SCALAR:
        return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)
    return np.sign(x)


def _floor(x: Any) -> Any:
    return float(math.floor(x)) if type(x) in _SCALAR else np.floor(x)


@dataclass(frozen=True, slots=True)
class OptionArrays:
    """The book's options of one underlying, for `horizon_gamma`: arrays of shape
    (..., options). `strike_usd` is the strike over the expiry's forward ratio (F / S), and
    `qty_coin` the position times that ratio, so that Black–Scholes on the index gives the
    gamma per USD of index move; `vol` each option's mark vol (None: the band's vol)."""

    is_call: Any
    strike_usd: Any
    tau_years: Any
    qty_coin: Any
    vol: Any = None


@dataclass(slots=True)  # not frozen: built on every decision, frozen init is slow
class BandContext:
    """Market and book state the bands depend on; every field broadcasts with the others
    (all plain floats for one underlying, or arrays of paths in the backtest)."""

    spot_usd: Any
    gamma_coin_per_usd: Any
    vanna_coin_per_vol: Any
    vol: Any
    tau_years: Any
    rate: Any
    lam: Any  # one-way proportional cost (fee + half spread) of the cheapest instrument
    carry_annual: Any = 0.0  # what a long hedge in that instrument pays a year (fraction)
    options_delta_coin: Any = 0.0  # the options' own delta (hedges excluded), coin
    # The book's gamma averaged over the spot range ahead (`horizon_gamma` at the policy's
    # `gamma_horizon_s` and `gamma_average`), coin/USD; None: not computed (the band of a
    # policy with `gamma_horizon_s > 0` then uses the gamma at spot).
    gamma_ahead_coin_per_usd: Any = None
    # The option flow's delta motion (`hedging.flow.FlowEstimator`): the variance rate of the
    # book's delta from its own option trades, coin^2/year, and their rms delta jump, coin
    # (0, 0: no trades seen; the band is then the plain one).
    flow_var_coin2_per_year: Any = 0.0
    flow_jump_coin: Any = 0.0
    # The marks' realised vol-of-vol (`hedging.volvol`), 1/sqrt(year), for the vol-of-vol
    # weight (`vov_weight`; 0: marks constant).
    vol_of_vol_per_sqrt_year: Any = 0.0
    # The coherence of the book's gamma, |net gamma| / sum of |qty x gamma| over its options
    # (`gamma_coherence`, in [0, 1]; 1: all of one sign), for the centre shift's
    # `shift_coherence`; None: not known (the shift is not scaled).
    gamma_coherence: Any = None
    # The index's variance over the marks' (`hedging.jumps`: 1 + the jumps' part of its
    # realised variance over the marks' variance; 1: the marks' vol is the index's), for the
    # centre's `jump_shift_power`.
    jump_var_ratio: Any = 1.0
    # The jumps' lean (`hedging.jumps`' skew: sum r^3 over the window's variance, a signed
    # return; 0: no jump found), for the centre's `jump_skew_weight`.
    jump_skew: Any = 0.0
    # The jumps' rate (`hedging.jumps`: the window's jumps counted, per year; 0: no jump
    # found), for the centre's `jump_life_weight`.
    jump_rate_per_year: Any = 0.0


@dataclass(slots=True)  # not frozen: built on every decision, frozen init is slow
class Band:
    """Net-delta band: trade when net < centre - lower or net > centre + upper (coin)."""

    centre: Any
    lower: Any
    upper: Any


def ww_halfwidth(
    ctx: BandContext, risk_aversion: float, gamma_exponent: float = 2 / 3, gamma: Any = None
) -> Any:
    """Whalley–Wilmott: (3 e^{-r tau} lambda S Gamma^2 / (2 gamma))^{1/3} (coin).

    `gamma_exponent` other than 2/3 replaces Gamma^2 by |Gamma|^(3 x exponent) (a shape knob
    of the hedgerd policy; Whalley–Wilmott's own band uses 2/3). `gamma` replaces the
    context's gamma at spot (the hedgerd policy's averaged gamma).
    """
    disc = _exp(-ctx.rate * ctx.tau_years)
    g = ctx.gamma_coin_per_usd if gamma is None else gamma
    g2 = g * g if gamma_exponent == 2 / 3 else _abs(g) ** (3.0 * gamma_exponent)
    return _cbrt(1.5 * disc * ctx.lam * ctx.spot_usd * g2 / risk_aversion)


def flow_gamma(
    ctx: BandContext, risk_aversion: float, gamma_exponent: float, gamma: Any, weight: float
) -> Any:
    """The band's gamma with the option flow's delta motion added (coin/USD).

    The book's own option trades jump its delta independently of the spot: a variance rate
    v (coin^2/year) of delta motion is what a gamma of sqrt(v) / (S sigma) would give, so the
    gamma term takes sqrt(Gamma^2 + w v g / (S sigma)^2). g = min(1, (H_ww / J)^2), H_ww the
    gamma term's half-width at `gamma` and J the rms jump (coin): a jump much wider than the
    band is traded back at once whatever the width, so only its part inside the band acts as
    diffusion (issue 19, docs/backtest.md "Option flow"). Where v = 0 `gamma` is returned as
    it is (bit for bit the plain band)."""
    v = ctx.flow_var_coin2_per_year
    if type(v) in _SCALAR and not v > 0.0:
        return gamma
    sv = ctx.spot_usd * ctx.vol
    add = weight * v / (sv * sv)
    j = ctx.flow_jump_coin
    h = ww_halfwidth(ctx, risk_aversion, gamma_exponent, gamma)
    h2 = h * h
    # min(1, h^2 / J^2), and 1 where J = 0 (no jump size known: plain diffusion).
    gate = h2 / _maximum(_maximum(h2, j * j), 1e-300)
    gate = _where(j > 0.0, gate, 1.0)
    return _where(v > 0.0, _sqrt(gamma * gamma + add * gate), gamma)


def vov_weight(ctx: BandContext, risk_aversion: float, ref: float, horizon_years: float) -> Any:
    """The weight in (0, 1] of the band's constant-vol refinements under vol-of-vol.

    w = 1 / (1 + R / ref), R = gamma |Gamma| S^2 sigma^2 xi h^1.5: the risk aversion times the
    scale of the book's vol P&L over a horizon h. |Gamma| S^2 sigma^2 is what the book's P&L
    changes by, a year, per unit of relative change of the variance, and a mark moving at xi
    per sqrt(year) changes it by about xi sqrt(h) over h (at the money at h before expiry,
    Gamma S^2 sigma h is the vega, so R is gamma |vega| sigma xi sqrt(h)). The centre shift
    and the horizon term are gains when the vol is known; their P&L covaries with the vol
    P&L when it is not, which matters where the risk aversion is high (near the vega floor)
    and not at the loose end. A fixed h, not the time to expiry: the covariance is with the
    vol P&L the book has made as well as the one ahead, which does not vanish near expiry
    where the horizon term is widest (measured: the vega over the time to expiry in place of
    h fades the terms too little, docs/backtest.md, sixth round). xi = 0 (marks constant):
    exactly 1. Short gamma only: a long-gamma book is long vol, the refinements' P&L then
    offsets its vol P&L instead of adding to it, and fading them cost 10 % against
    Zakamouline on long books with moving marks (docs/backtest.md, cross-family
    combinations): Gamma >= 0 gives R = 0, w = 1."""
    xi = ctx.vol_of_vol_per_sqrt_year
    if type(xi) in _SCALAR and not xi > 0.0:
        return 1.0
    short = _maximum(-ctx.gamma_coin_per_usd, 0.0)
    return 1.0 / (1.0 + vol_pnl_scale(ctx, short, risk_aversion, horizon_years) / ref)


def vol_pnl_scale(
    ctx: BandContext, gamma_part: Any, risk_aversion: float, horizon_years: float
) -> Any:
    """R = gamma |Gamma| S^2 sigma^2 xi h^1.5 (dimensionless) of `vov_weight`, for the part of
    the book's gamma `gamma_part` (coin/USD, >= 0: its short or its long side): the risk
    aversion (1/USD) times the scale of that gamma's vol P&L over h (`horizon_years`)."""
    cash = gamma_part * ctx.spot_usd * ctx.spot_usd * ctx.vol * ctx.vol
    return risk_aversion * cash * ctx.vol_of_vol_per_sqrt_year * horizon_years**1.5


def long_cap_factor(
    ctx: BandContext, risk_aversion: float, ref: float, horizon_years: float
) -> Any:
    """The factor (>= 1) on a long-gamma book's centre-shift cap (`shift_cap_vov_ref`):
    1 + R / ref, R the vol P&L scale of `vov_weight` with the book's long gamma. A long-gamma
    book is long vol: where its marks move, the modified-vol shift's P&L offsets its vol P&L
    (the reason `vov_weight` leaves long books alone) and the cap (`shift_cap_hw`), set on short and
    mixed books whose shift left the band at high risk aversion, held back the part of the
    shift that reached the std floor of long options under vol regimes and stochastic vol
    (docs/backtest.md). Marks that never change (xi = 0), or a short book: exactly 1, so the
    cap is the plain one where jumps or option flow argue against a larger long shift."""
    xi = ctx.vol_of_vol_per_sqrt_year
    if type(xi) in _SCALAR and not xi > 0.0:
        return 1.0
    long = _maximum(ctx.gamma_coin_per_usd, 0.0)
    return 1.0 + vol_pnl_scale(ctx, long, risk_aversion, horizon_years) / ref


def flow_fade_weight(
    ctx: BandContext, risk_aversion: float, ref: float, horizon_years: float
) -> Any:
    """The weight in (0, 1] of the option flow's term in the band (`flow_weight` x it).

    w_f = 1 / (1 + R_f / ref), R_f = gamma S sigma sqrt(v) h (dimensionless): gamma the risk
    aversion (1/USD), S the spot (USD), sigma the vol (1/sqrt(year)), v the flow's delta
    variance rate (coin^2/year, `BandContext.flow_var_coin2_per_year`), h the horizon (years,
    the policy's `vov_horizon_s`): the risk aversion times the USD scale of the unhedged
    delta P&L the flow's delta motion makes over h (sqrt(v h) coin x S sigma sqrt(h) USD per
    coin). The flow term widens the band by the flow's delta motion as if it were diffusion;
    at high risk aversion (the tight end) that width cost against Whalley-Wilmott's plain
    band (issue 19, heldout-31 short call 110 with flow), at the loose end it is a gain.
    v = 0 (no flow seen): exactly 1."""
    v = ctx.flow_var_coin2_per_year
    if type(v) in _SCALAR and not v > 0.0:
        return 1.0
    r = risk_aversion * ctx.spot_usd * ctx.vol * _sqrt(_maximum(v, 0.0)) * horizon_years / ref
    return 1.0 / (1.0 + r)


def zak_h0(ctx: BandContext, risk_aversion: float, cap: float) -> Any:
    """Zakamouline's horizon term lambda / (gamma S sigma^2 tau), capped (coin)."""
    tau = _maximum(ctx.tau_years, _TAU_FLOOR)
    h0 = ctx.lam / (risk_aversion * ctx.spot_usd * ctx.vol * ctx.vol * tau)
    return _minimum(h0, cap)


def zak_hw(ctx: BandContext, risk_aversion: float) -> Any:
    """Zakamouline's gamma term 1.12 l^0.31 tau^0.05 (e^{-r tau}/sigma)^0.25 (|G|/gamma)^0.5."""
    tau = _maximum(ctx.tau_years, _TAU_FLOOR)
    disc = _exp(-ctx.rate * tau)
    return (
        1.12
        * ctx.lam**0.31
        * tau**0.05
        * (disc / ctx.vol) ** 0.25
        * _sqrt(_abs(ctx.gamma_coin_per_usd) / risk_aversion)
    )


def modified_delta_shift(ctx: BandContext, risk_aversion: float, prefactor: float) -> Any:
    """Change of the book delta when priced at Zakamouline's modified vol (coin).

    sigma_m^2 = sigma^2 (1 - K) for short gamma, (1 + K) for long, K = -prefactor l^0.78
    tau^-0.02 (e^{-r tau}/sigma)^0.25 (gamma S^2 |Gamma|)^0.15; first order in vanna.
    """
    if prefactor == 0.0 or (
        type(ctx.vanna_coin_per_vol) in _SCALAR and ctx.vanna_coin_per_vol == 0
    ):
        return 0.0 * ctx.spot_usd
    tau = _maximum(ctx.tau_years, _TAU_FLOOR)
    disc = _exp(-ctx.rate * tau)
    g = _abs(ctx.gamma_coin_per_usd)
    k = (
        -prefactor
        * ctx.lam**0.78
        * tau**-0.02
        * (disc / ctx.vol) ** 0.25
        * (risk_aversion * ctx.spot_usd * ctx.spot_usd * g) ** 0.15
    )
    factor = _where(ctx.gamma_coin_per_usd < 0, 1.0 - k, 1.0 + k)
    vol_m = ctx.vol * _sqrt(_maximum(factor, 0.05))
    return ctx.vanna_coin_per_vol * (vol_m - ctx.vol)


def jump_life_weight(ctx: BandContext) -> Any:
    """1 - exp(-lambda tau) (dimensionless, in [0, 1]): the chance of at least one jump before
    the book's horizon, lambda = `ctx.jump_rate_per_year`, tau = `ctx.tau_years`. The jump
    terms' weight under `jump_life_weight`: a book that expires before the next jump is
    likely hedges the diffusion the marks price, whatever the jumps add a year (with the true
    rate unweighted, two 3-day long puts went from 0.998 and 1.007 to 1.152 and 1.080 of
    Whalley–Wilmott; weighted, 0.998 and 1.011: docs/backtest.md "The jump term weighed by a
    jump within the book's life")."""
    return 1.0 - _exp(-ctx.jump_rate_per_year * ctx.tau_years)


def jump_shift(
    ctx: BandContext, power: float, skew_weight: float = 0.0, life_weight: bool = False
) -> Any:
    """Change of a long-gamma book's delta where the index jumps (coin), two parts:
    - priced at the index's realised vol sigma sqrt(r^power) instead of the marks' sigma
      (first order in vanna), r = `ctx.jump_var_ratio` (`hedging.jumps`: the jumps'
      variance the marks do not carry): a long-gamma book's delta moves as at a higher vol,
      not the lower one Zakamouline's modified vol takes;
    - `skew_weight` x Gamma S k / 2, k = `ctx.jump_skew` (the jumps' third moment over the
      index's variance, a return): the minimum-variance hedge where the jumps lean one way
      (a long-gamma book gains on a jump either way; the hedge that offsets the gain's
      covariance with the move holds Gamma S E[J^3] / (2 E[J^2]) less where they fall).
    With `life_weight`, r's excess and k are weighed by `jump_life_weight` (r becomes
    1 + w (r - 1), k becomes w k).
    Exactly 0 where no jump was found (r = 1, k = 0) or the book's gamma is not positive: a
    short-gamma book's modified vol is already the higher one, and on mixed books both signs
    cost (issue 19, docs/backtest.md "The jump ratio in the daemon", "The jumps' lean")."""
    r = ctx.jump_var_ratio
    k = ctx.jump_skew
    if life_weight:
        w = jump_life_weight(ctx)
        r = 1.0 + w * (r - 1.0)
        k = w * k
    term = ctx.vanna_coin_per_vol * ctx.vol * (_sqrt(r**power) - 1.0)
    if skew_weight != 0.0:
        term = term + skew_weight * 0.5 * ctx.gamma_coin_per_usd * ctx.spot_usd * k
    return _where(ctx.gamma_coin_per_usd > 0, term, 0.0)


def cap_shift(shift: Any, cap: Any) -> Any:
    """`shift` clipped to [-cap, cap] (coin): the modified-vol centre shift kept within a
    multiple of the band's gamma term (`shift_cap_hw`). Zakamouline's K was fitted where the
    shift lies inside the band; at high risk aversion K grows as (gamma S^2 |Gamma|)^0.15
    while the band shrinks as gamma^-1/3, and beyond the band the fit extrapolates (measured:
    it floors the std of books with a large vanna, docs/backtest.md)."""
    return _minimum(_maximum(shift, -cap), cap)


def gamma_coherence(net_gamma: Any, gross_gamma: Any) -> Any:
    """|net| / gross of a book's gamma, in [0, 1]: `net_gamma` the sum of qty x gamma over its
    options, `gross_gamma` the sum of |qty x gamma| (coin/USD). 1 where every option's gamma
    has one sign (exactly: |a + b| = |a| + |b| in floating point for a and b of one sign) and
    where there is no gamma (gross 0)."""
    has = gross_gamma > 0.0
    ratio = _minimum(_abs(net_gamma) / _where(has, gross_gamma, 1.0), 1.0)
    return _where(has, ratio, 1.0)


def book_gamma_coherence(options: OptionArrays, spot_usd: float, vol: float) -> float:
    """`gamma_coherence` of the options of one underlying (the live hedge loop; the backtest
    sums the same from its greeks): Black–Scholes on the index at each option's own vol
    (`vol`, the band's, where it has none), options with tau <= 0 gone."""
    from hedgerd.pricing.black import black_scholes  # numba: on first use (`horizon_gamma`)

    tau = np.asarray(options.tau_years, dtype=np.float64)
    alive = tau > 0.0
    ov = vol if options.vol is None else options.vol
    with np.errstate(all="ignore"):
        g = black_scholes(
            options.is_call, spot_usd, options.strike_usd, np.where(alive, tau, 1.0), ov
        ).gamma
    qg = np.where(alive & np.isfinite(g), np.asarray(options.qty_coin) * g, 0.0)
    return float(gamma_coherence(float(np.sum(qg)), float(np.sum(np.abs(qg)))))


def shift_coherence(ctx: BandContext, power: float) -> Any:
    """The factor in [0, 1] of the modified-volatility centre shift on a book of mixed gamma:
    c^p, c = |net gamma| / gross gamma (`ctx.gamma_coherence`), p = `shift_coherence`.
    Zakamouline's shift, vanna x (sigma_m - sigma), was fitted for one option, whose vanna is
    its gamma times -S sqrt(tau) d2: the two come together. On a book whose strikes and
    expiries cancel each other's gamma the net vanna does not cancel with it (a long far
    put's vanna beside a short near strangle's), while the sign of the vol modification
    follows the small net gamma that is left: the shift takes its size from one part of the
    book and its sign from another (on `strangle v 3.5 far put` at the start the per-option
    shifts sum to the other sign than the net one; docs/backtest.md). A book of one sign
    (every single option): c = 1, the factor exactly 1. c unknown (None) or p = 0: 1."""
    c = ctx.gamma_coherence
    if power == 0.0 or c is None:
        return 1.0
    return c if power == 1.0 else c**power


def carry_shift(ctx: BandContext, risk_aversion: float) -> Any:
    """Mean-variance optimal net delta under carry: holding x coin costs x S c a year and
    risks (gamma/2) x^2 S^2 sigma^2, so the best x is -c / (gamma S sigma^2) (coin); returned
    with the sign convention of a delta shift (centre = target - shift)."""
    return ctx.carry_annual / (risk_aversion * ctx.spot_usd * ctx.vol * ctx.vol)


def unwind_shift(ctx: BandContext, risk_aversion: float) -> Any:
    """Centre shift for the hedge's unwind at settlement (coin, delta-shift convention).

    A cash-settled option's hedge is sold when it settles, so near expiry each unit of hedge
    bought costs lambda twice and each unit not bought saves the unwind. Holding s units less
    for the remaining tau risks (gamma/2) s^2 S^2 sigma^2 tau and saves lambda S s: the best
    s is lambda / (gamma S sigma^2 tau) (Zakamouline's H0), toward a smaller hedge, at most the
    options' delta (the hedge never flips).
    """
    tau = _maximum(ctx.tau_years, _TAU_FLOOR)
    s = ctx.lam / (risk_aversion * ctx.spot_usd * ctx.vol * ctx.vol * tau)
    d = ctx.options_delta_coin
    return -_sign(d) * _minimum(s, _abs(d))


def horizon_sides(
    h_gamma: Any, h_horizon: Any, options_delta_coin: Any, policy: HedgerdPolicy
) -> tuple[Any, Any]:
    """The (lower, upper) half-widths of the hedgerd band from its gamma term `h_gamma` and
    its horizon term `h_horizon` (coin), floored at `min_halfwidth_coin`.

    `horizon_side = "both"` widens both sides by the horizon term (Zakamouline's H0).
    `"under"` widens only the under-hedged side: the one where the hedge covers less of the
    options' delta than the centre (net delta of the options' sign), and by at most the
    options' delta, so the term never takes the hedge past zero. Why: the horizon term prices
    the unwind of the hedge when the options settle. A unit of hedge held then costs the
    cost twice, a unit not held saves it, so the unwind argues for a smaller hedge and never
    for a larger one. The exact dynamic-programming band of a single option (`exact_band`)
    has that shape: near expiry it runs from no hedge to a little beyond the full hedge.
    With the options' delta unknown (exactly 0) the band stays symmetric.
    """
    floor = policy.min_halfwidth_coin
    if policy.horizon_side == "both":
        both = _maximum(h_gamma + h_horizon, floor)
        return both, both
    side = _maximum(h_gamma, floor)
    d = options_delta_coin
    under = side + _minimum(h_horizon, _abs(d))
    sym = _maximum(h_gamma + h_horizon, floor)
    # d > 0 (options long delta, hedge short): under-hedged means net above the centre.
    lower = _where(d < 0, under, _where(d > 0, side, sym))
    upper = _where(d > 0, under, _where(d < 0, side, sym))
    return lower, upper


def band_for(policy: PolicyConfig, ctx: BandContext) -> Band:
    """The no-trade band of `policy` around its target (net-delta terms, coin).

    A timer has a zero-width band (it trades to the target whenever its timer fires).
    """
    if (
        type(policy) is HedgerdPolicy
        and type(ctx.spot_usd) in _SCALAR
        and type(ctx.gamma_coin_per_usd) in _SCALAR
        and type(ctx.vanna_coin_per_vol) in _SCALAR
        and type(ctx.vol) in _SCALAR
        and type(ctx.tau_years) in _SCALAR
        and type(ctx.rate) in _SCALAR
        and type(ctx.lam) in _SCALAR
        and type(ctx.carry_annual) in _SCALAR
        and type(ctx.options_delta_coin) in _SCALAR
        and (ctx.gamma_ahead_coin_per_usd is None or type(ctx.gamma_ahead_coin_per_usd) in _SCALAR)
        and type(ctx.flow_var_coin2_per_year) in _SCALAR
        and type(ctx.flow_jump_coin) in _SCALAR
        and type(ctx.vol_of_vol_per_sqrt_year) in _SCALAR
        and (ctx.gamma_coherence is None or type(ctx.gamma_coherence) in _SCALAR)
        and type(ctx.jump_var_ratio) in _SCALAR
        and type(ctx.jump_rate_per_year) in _SCALAR
    ):
        return _hedgerd_band_scalar(policy_numbers(policy), ctx)
    target = policy.target_delta_coin
    zero = 0.0 * ctx.spot_usd
    if isinstance(policy, TimerPolicy):
        return Band(target + zero, zero, zero)
    if isinstance(policy, FixedBandPolicy):
        hw = policy.halfwidth_coin
        lo = policy.lower_halfwidth_coin if policy.lower_halfwidth_coin is not None else hw
        up = policy.upper_halfwidth_coin if policy.upper_halfwidth_coin is not None else hw
        scaled = _abs(ctx.gamma_coin_per_usd) * ctx.spot_usd * policy.gamma_move_frac
        return Band(target + zero, _maximum(scaled, lo), _maximum(scaled, up))
    if isinstance(policy, WhalleyWilmottPolicy):
        h = _maximum(ww_halfwidth(ctx, policy.risk_aversion_per_usd), policy.min_halfwidth_coin)
        return Band(target + zero, h, h)
    if isinstance(policy, ZakamoulinePolicy):
        g = policy.risk_aversion_per_usd
        h = zak_h0(ctx, g, policy.h0_cap_coin) + zak_hw(ctx, g)
        h = _maximum(h, policy.min_halfwidth_coin)
        shift = modified_delta_shift(ctx, g, policy.k_prefactor)
        # Hedging the delta at the modified vol moves the net-delta centre by -shift.
        return Band(target - shift, h, h)
    if isinstance(policy, HedgerdPolicy):
        g = policy.risk_aversion_per_usd
        band_gamma = ctx.gamma_ahead_coin_per_usd if policy.gamma_horizon_s > 0.0 else None
        w_vov = 1.0
        if policy.vov_ref > 0.0:
            w_vov = vov_weight(ctx, g, policy.vov_ref, policy.vov_horizon_s / _YEAR_S)
            if policy.vov_scope == "all" and band_gamma is not None:
                # 1 x ahead + 0 x spot: the averaged gamma bit for bit where w = 1. The
                # magnitude's average moves toward the magnitude at spot.
                g_s = ctx.gamma_coin_per_usd
                g_s = _abs(g_s) if policy.gamma_average == "abs" else g_s
                band_gamma = w_vov * band_gamma + (1.0 - w_vov) * g_s
        if policy.flow_weight > 0.0:
            g_b = ctx.gamma_coin_per_usd if band_gamma is None else band_gamma
            fw = policy.flow_weight
            if policy.flow_fade_ref > 0.0:
                years = policy.vov_horizon_s / _YEAR_S
                fw = fw * flow_fade_weight(ctx, g, policy.flow_fade_ref, years)
            band_gamma = flow_gamma(ctx, g, policy.gamma_exponent, g_b, fw)
        h = policy.ww_weight * ww_halfwidth(ctx, g, policy.gamma_exponent, band_gamma)
        h0 = zero
        if policy.h0_weight > 0.0:
            h0 = policy.h0_weight * zak_h0(ctx, g, policy.h0_cap_coin)
            if policy.vov_ref > 0.0 and policy.vov_scope != "shift":
                h0 = h0 * w_vov
        lower, upper = horizon_sides(h, h0, ctx.options_delta_coin, policy)
        shift = modified_delta_shift(ctx, g, policy.k_prefactor)
        jump_cap = policy.jump_cap_hw if policy.jump_shift_power > 0.0 else None
        if policy.jump_shift_power > 0.0 and jump_cap is None:
            # Under Zakamouline's shift's weight, coherence and cap.
            shift = shift + jump_shift(
                ctx, policy.jump_shift_power, policy.jump_skew_weight, policy.jump_life_weight
            )
        if policy.vov_ref > 0.0 and policy.vov_scope != "horizon":
            shift = shift * w_vov
        if policy.shift_coherence > 0.0 and ctx.gamma_coherence is not None:
            shift = shift * shift_coherence(ctx, policy.shift_coherence)
        if policy.shift_cap_hw > 0.0:
            cap = policy.shift_cap_hw * _abs(h)
            if policy.shift_cap_vov_ref > 0.0:
                years = policy.vov_horizon_s / _YEAR_S
                cap = cap * long_cap_factor(ctx, g, policy.shift_cap_vov_ref, years)
            shift = cap_shift(shift, cap)
        if jump_cap is not None:
            # After the cap, with its own: that cap holds Zakamouline's extrapolated K.
            jump = jump_shift(
                ctx, policy.jump_shift_power, policy.jump_skew_weight, policy.jump_life_weight
            )
            jc = jump_cap * _abs(h)
            if policy.shift_coherence > 0.0 and ctx.gamma_coherence is not None:
                jump = jump * shift_coherence(ctx, policy.shift_coherence)
                jc = jc * ctx.gamma_coherence**2  # mixed books, where the term costs
            shift = shift + cap_shift(jump, jc)
        if policy.carry_weight > 0.0:
            shift = shift + policy.carry_weight * carry_shift(ctx, g)
        if policy.unwind_weight > 0.0:
            shift = shift + policy.unwind_weight * unwind_shift(ctx, g)
        if policy.asymmetry != 0.0:
            # Over-hedged side of a short-gamma book is net > centre (hedge beyond -delta).
            a = _where(ctx.gamma_coin_per_usd < 0, policy.asymmetry, -policy.asymmetry)
            return Band(target - shift, lower * (1.0 - a), upper * (1.0 + a))
        return Band(target - shift, lower, upper)
    raise TypeError(f"unknown policy {type(policy).__name__}")


@dataclass(frozen=True, slots=True)
class MakerNumbers:
    """`MakerSettings`' numbers (see `PolicyNumbers`)."""

    enabled: bool
    band_fraction: float
    target_fraction: float
    timeout_s: float


@dataclass(frozen=True, slots=True)
class PolicyNumbers:
    """A policy's settings that one decision reads (`controller.decide`, the scalar band and
    plan), under the same names, copied once per policy object into slots: an attribute read
    on a pydantic model takes the generic path (the model class defines `__getattr__`), about
    30 ns more than a slot's, and a decision makes some thirty (issue 17's latency). The
    hedgerd band's fields keep their defaults for other kinds (read on its path only).
    Built by `policy_numbers`, which keeps one per policy object: policies are frozen."""

    target_delta_coin: float
    hedge_ratio: float
    rebalance_to: str
    max_interval_s: float | None
    price_move_filter_frac: float
    settlement_window_s: float
    min_trade_coin: float
    maker: MakerNumbers
    risk_aversion_per_usd: float = 1.0
    ww_weight: float = 0.0
    gamma_exponent: float = 2.0 / 3.0
    h0_weight: float = 0.0
    horizon_side: str = "under"
    h0_cap_coin: float = 1.0
    k_prefactor: float = 0.0
    shift_cap_hw: float = 0.0
    shift_cap_vov_ref: float = 0.0
    shift_coherence: float = 0.0
    min_halfwidth_coin: float = 0.0
    gamma_horizon_s: float = 0.0
    asymmetry: float = 0.0
    unwind_weight: float = 0.0
    carry_weight: float = 0.0
    flow_weight: float = 0.0
    vov_ref: float = 0.0
    vov_scope: str = "both"
    vov_horizon_s: float = 0.0
    flow_fade_ref: float = 0.0
    gamma_average: str = "abs"
    jump_shift_power: float = 0.0
    jump_skew_weight: float = 0.0
    jump_cap_hw: float | None = None
    jump_life_weight: bool = False


_HEDGERD_NUMBERS = (
    "risk_aversion_per_usd",
    "ww_weight",
    "gamma_exponent",
    "h0_weight",
    "horizon_side",
    "h0_cap_coin",
    "k_prefactor",
    "shift_cap_hw",
    "shift_cap_vov_ref",
    "shift_coherence",
    "min_halfwidth_coin",
    "gamma_horizon_s",
    "asymmetry",
    "unwind_weight",
    "carry_weight",
    "flow_weight",
    "vov_ref",
    "vov_scope",
    "vov_horizon_s",
    "flow_fade_ref",
    "gamma_average",
    "jump_shift_power",
    "jump_skew_weight",
    "jump_cap_hw",
    "jump_life_weight",
)
# id(policy) -> (policy, its numbers): the policy is kept so that its id is not reused while
# cached (as `controller`'s fingerprints); a frozen policy's numbers never change.
_numbers: dict[int, tuple[PolicyConfig, PolicyNumbers]] = {}


def policy_numbers(policy: PolicyConfig) -> PolicyNumbers:
    """`policy`'s `PolicyNumbers` (built once per policy object, then reused)."""
    hit = _numbers.get(id(policy))
    if hit is not None and hit[0] is policy:
        return hit[1]
    m = policy.maker
    extra: dict[str, Any] = {}
    if isinstance(policy, HedgerdPolicy):
        extra = {name: getattr(policy, name) for name in _HEDGERD_NUMBERS}
    numbers = PolicyNumbers(
        target_delta_coin=policy.target_delta_coin,
        hedge_ratio=policy.hedge_ratio,
        rebalance_to=policy.rebalance_to,
        max_interval_s=policy.max_interval_s,
        price_move_filter_frac=policy.price_move_filter_frac,
        settlement_window_s=policy.settlement_window_s,
        min_trade_coin=policy.min_trade_coin,
        maker=MakerNumbers(m.enabled, m.band_fraction, m.target_fraction, m.timeout_s),
        **extra,
    )
    if len(_numbers) > 256:
        _numbers.clear()
    _numbers[id(policy)] = (policy, numbers)
    return numbers


def band_for_floats(policy: PolicyConfig, ctx: BandContext) -> Band:
    """`band_for` of one decision, whose context holds plain floats (`controller.decide`):
    the hedgerd policy's scalar branch without `band_for`'s check of every field's type."""
    if type(policy) is HedgerdPolicy:
        return _hedgerd_band_scalar(policy_numbers(policy), ctx)
    return band_for(policy, ctx)


def _hedgerd_band_scalar(policy: PolicyNumbers, ctx: BandContext) -> Band:
    """`band_for` of the hedgerd policy for one decision (plain floats): the same operations
    in the same order as `ww_halfwidth`, `zak_h0`, `horizon_sides`, `modified_delta_shift`,
    `carry_shift` and `unwind_shift`, written out (the element-wise helpers cost a call each,
    about twenty per band). Equality with the general path is tested bit for bit
    (tests/hedging/test_hedging_fast_paths.py)."""
    target = policy.target_delta_coin
    g = policy.risk_aversion_per_usd
    spot, gamma, vol, lam = ctx.spot_usd, ctx.gamma_coin_per_usd, ctx.vol, ctx.lam
    tau, rate = ctx.tau_years, ctx.rate
    # ww_halfwidth
    disc = math.exp(-rate * tau)
    band_gamma = ctx.gamma_ahead_coin_per_usd if policy.gamma_horizon_s > 0.0 else None
    # vov_weight
    w_vov = 1.0
    ref = policy.vov_ref
    if ref > 0.0:
        xi = ctx.vol_of_vol_per_sqrt_year
        if xi > 0.0:
            short = -gamma if -gamma >= 0.0 else 0.0  # _maximum(-gamma, 0): short gamma only
            cash = short * spot * spot * vol * vol
            r = g * cash * xi * (policy.vov_horizon_s / _YEAR_S) ** 1.5 / ref
            w_vov = 1.0 / (1.0 + r)
        if policy.vov_scope == "all" and band_gamma is not None:
            g_s = abs(gamma) if policy.gamma_average == "abs" else gamma
            band_gamma = w_vov * band_gamma + (1.0 - w_vov) * g_s
    gg = gamma if band_gamma is None else band_gamma
    e = policy.gamma_exponent
    g2 = gg * gg if e == 2 / 3 else abs(gg) ** (3.0 * e)
    x = 1.5 * disc * lam * spot * g2 / g
    v = ctx.flow_var_coin2_per_year
    if policy.flow_weight > 0.0 and v > 0.0:
        # flow_gamma: the gate from the plain gamma term, then the effective gamma.
        sv = spot * vol
        fw = policy.flow_weight
        if policy.flow_fade_ref > 0.0:
            # flow_fade_weight
            years = policy.vov_horizon_s / _YEAR_S
            r = g * spot * vol * math.sqrt(v) * years / policy.flow_fade_ref
            fw = fw * (1.0 / (1.0 + r))
        add = fw * v / (sv * sv)
        j = ctx.flow_jump_coin
        hg = math.copysign(abs(x) ** (1.0 / 3.0), x)
        h2 = hg * hg
        if j > 0.0:
            jj = j * j
            m = h2 if h2 >= jj else jj
            add = add * (h2 / (m if m >= 1e-300 else 1e-300))
        gg = math.sqrt(gg * gg + add)
        g2 = gg * gg if e == 2 / 3 else abs(gg) ** (3.0 * e)
        x = 1.5 * disc * lam * spot * g2 / g
    h = policy.ww_weight * math.copysign(abs(x) ** (1.0 / 3.0), x)
    # zak_h0 (and unwind_shift's s: the same expression)
    tau_f = tau if tau >= _TAU_FLOOR else _TAU_FLOOR
    s = lam / (g * spot * vol * vol * tau_f)
    h0 = 0.0 * spot
    if policy.h0_weight > 0.0:
        cap = policy.h0_cap_coin
        h0 = policy.h0_weight * (s if s <= cap else cap)
        if ref > 0.0 and policy.vov_scope != "shift":
            h0 = h0 * w_vov
    # horizon_sides
    floor = policy.min_halfwidth_coin
    d = ctx.options_delta_coin
    both = h + h0
    sym = both if both >= floor else floor
    if policy.horizon_side == "both":
        lower = upper = sym
    else:
        side = h if h >= floor else floor
        ad = abs(d)
        under = side + (h0 if h0 <= ad else ad)
        lower = under if d < 0 else (side if d > 0 else sym)
        upper = under if d > 0 else (side if d < 0 else sym)
    # modified_delta_shift
    prefactor = policy.k_prefactor
    vanna = ctx.vanna_coin_per_vol
    if prefactor == 0.0 or vanna == 0:
        shift = 0.0 * spot
    else:
        disc_f = math.exp(-rate * tau_f)
        k = (
            -prefactor
            * lam**0.78
            * tau_f**-0.02
            * (disc_f / vol) ** 0.25
            * (g * spot * spot * abs(gamma)) ** 0.15
        )
        factor = 1.0 - k if gamma < 0 else 1.0 + k
        vol_m = vol * math.sqrt(factor if factor >= 0.05 else 0.05)
        shift = vanna * (vol_m - vol)
    jp = policy.jump_shift_power
    jcap = policy.jump_cap_hw
    jump = 0.0
    if jp > 0.0 and gamma > 0:
        # jump_shift (long gamma only)
        jr = ctx.jump_var_ratio
        jk = ctx.jump_skew
        if policy.jump_life_weight:
            # jump_life_weight
            wl = 1.0 - math.exp(-ctx.jump_rate_per_year * tau)
            jr = 1.0 + wl * (jr - 1.0)
            jk = wl * jk
        jump = vanna * vol * (math.sqrt(jr**jp) - 1.0)
        sw = policy.jump_skew_weight
        if sw != 0.0:
            jump = jump + sw * 0.5 * gamma * spot * jk
        if jcap is None:
            shift = shift + jump
    if ref > 0.0 and policy.vov_scope != "horizon":
        shift = shift * w_vov
    p = policy.shift_coherence
    coherence = ctx.gamma_coherence
    if p > 0.0 and coherence is not None:
        # shift_coherence
        shift = shift * (coherence if p == 1.0 else coherence**p)
    c = policy.shift_cap_hw
    if c > 0.0:
        # cap_shift, as min(max(shift, -cap), cap)
        cap = c * abs(h)
        ref_c = policy.shift_cap_vov_ref
        xi_c = ctx.vol_of_vol_per_sqrt_year
        if ref_c > 0.0 and xi_c > 0.0:
            # long_cap_factor
            lg = gamma if gamma >= 0.0 else 0.0  # _maximum(gamma, 0): long gamma only
            cash = lg * spot * spot * vol * vol
            r_c = g * cash * xi_c * (policy.vov_horizon_s / _YEAR_S) ** 1.5
            cap = cap * (1.0 + r_c / ref_c)
        lo = shift if shift >= -cap else -cap
        shift = lo if lo <= cap else cap
    if jp > 0.0 and jcap is not None:
        # the jump terms' own cap, after the shared one (0 where the gamma is not positive)
        jc = jcap * abs(h)
        if p > 0.0 and coherence is not None:
            jump = jump * (coherence if p == 1.0 else coherence**p)
            jc = jc * coherence**2
        lo = jump if jump >= -jc else -jc
        shift = shift + (lo if lo <= jc else jc)
    if policy.carry_weight > 0.0:
        shift = shift + policy.carry_weight * (ctx.carry_annual / (g * spot * vol * vol))
    if policy.unwind_weight > 0.0:
        sign = 1.0 if d > 0 else (-1.0 if d < 0 else 0.0)
        ad = abs(d)
        shift = shift + policy.unwind_weight * (-sign * (s if s <= ad else ad))
    if policy.asymmetry != 0.0:
        a = policy.asymmetry if gamma < 0 else -policy.asymmetry
        return Band(target - shift, lower * (1.0 - a), upper * (1.0 + a))
    return Band(target - shift, lower, upper)


_YEAR_S = 365.0 * 86400.0


AheadKey = tuple[float, str] | tuple[float, str, float]


def gamma_ahead_key(policy: PolicyConfig) -> AheadKey | None:
    """(horizon s, mode[, shortest tau s]) of the averaged gamma a policy's band takes, or None
    (gamma at spot). Policies with the same key take the same number: compute it once for all
    of them. The third element only where `gamma_min_tau_s` > 0."""
    if isinstance(policy, HedgerdPolicy) and policy.gamma_horizon_s > 0.0:
        if policy.gamma_min_tau_s > 0.0:
            return policy.gamma_horizon_s, policy.gamma_average, policy.gamma_min_tau_s
        return policy.gamma_horizon_s, policy.gamma_average
    return None


def gamma_ahead(key: AheadKey, options: OptionArrays, spot_usd: Any, vol: Any) -> Any:
    """The book's gamma averaged over the spot range ahead, as `key` (`gamma_ahead_key`) asks
    (coin/USD; a float for one underlying, an array of paths in the backtest). With a shortest
    tau (the key's third element, s), each live option's time to expiry counts as at least
    that: the gamma peak of a strike about to expire is not the width's."""
    tau = options.tau_years
    if len(key) > 2:
        t = np.asarray(tau, dtype=np.float64)
        tau = np.where(t > 0.0, np.maximum(t, key[2] / _YEAR_S), t)
    g = horizon_gamma(
        options.is_call,
        options.strike_usd,
        tau,
        options.qty_coin,
        spot_usd,
        vol,
        key[0] / _YEAR_S,
        key[1],
        options.vol,
    )
    return float(g) if type(spot_usd) in _SCALAR else g


# Gauss–Hermite nodes and weights for E[f(Z)], Z standard normal (probabilists' form).
_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(7)
_GH_W = _GH_W / math.sqrt(2.0 * math.pi)


def horizon_gamma(
    is_call: Any,
    strike_usd: Any,
    tau_years: Any,
    qty_coin: Any,
    spot_usd: Any,
    vol: Any,
    horizon_years: Any,
    mode: str = "signed",
    option_vol: Any = None,
) -> Any:
    """The book's gamma averaged over the spot range `horizon_years` of diffusion span (coin/USD).

    Options along the last axis (`is_call`, `strike_usd`, `tau_years`, `qty_coin`, shape
    (..., m); options with tau <= 0 count as gone); `spot_usd`, `vol` and `horizon_years`
    broadcast to shape (...); `option_vol` (..., m), each option's vol for its gamma (None:
    `vol`, which always sets the spot's spread). The average is over the spot
    S' = S exp(vol sqrt(h) Z - vol^2 h / 2) that the delta will see before the next
    rebalance, weighted by (S'/S)^2 (dollar gamma). With `mode = "signed"` it
    is the net gamma, computed exactly as the gamma of the same options at tau + h: dollar
    gamma S^2 Gamma solves the pricing equation (zero rate), so its expectation h ahead at tau
    is its value now at tau + h. With `mode = "abs"` it is the magnitude of the net gamma,
    averaged by Gauss–Hermite quadrature (7 nodes): strikes of opposite sign do not cancel.
    A book whose quantities all have one sign cannot cancel, so its magnitude average is the
    magnitude of the signed one, taken from the closed form (exact: 7 nodes are off by several
    per cent for a strike far from spot with the horizon past its expiry).
    Why: the band's width is set by the gamma the delta will travel through; a near short
    strike's gamma peak (or the zero between a short and a long strike) at the current spot
    is not what the next hours see.
    """
    # Imported on first use: `hedgerd.pricing` loads numba, which what imports the kernel
    # for the controller's other rules (config checks, the CLI) should not pay for.
    from hedgerd.pricing.black import black_scholes

    tau = np.asarray(tau_years, dtype=np.float64)
    alive = tau > 0.0
    q = np.where(alive, qty_coin, 0.0)
    s = np.asarray(spot_usd, dtype=np.float64)[..., None]
    v = np.asarray(vol, dtype=np.float64)[..., None]
    ov = v if option_vol is None else np.asarray(option_vol, dtype=np.float64)
    h = np.maximum(np.asarray(horizon_years, dtype=np.float64), 0.0)[..., None]
    with np.errstate(all="ignore"):
        # The spot spreads by v^2 h; an option marked at its own vol ov sees that as
        # h (v / ov)^2 of its own time (equal to h without a smile).
        th = tau + h * (v / ov) ** 2
        g = black_scholes(is_call, s, strike_usd, np.where(alive, th, 1.0), ov).gamma
        signed = np.sum(q * np.where(np.isfinite(g), g, 0.0), axis=-1)
        if mode == "signed":
            return signed
        one_sign = np.all(q >= 0.0, axis=-1) | np.all(q <= 0.0, axis=-1)
        if np.all(one_sign):
            return np.abs(signed)
        total = 0.0 * s[..., 0]
        sd = v * np.sqrt(h)
        t = np.where(alive, tau, 1.0)
        # All nodes in one pricing call (one pass of the kernel's per-call overhead).
        ratios = np.stack([np.exp(sd * z - 0.5 * sd * sd) for z in _GH_Z])
        gs = black_scholes(is_call, s * ratios, strike_usd, t, ov).gamma
        for k, w in enumerate(_GH_W):
            g = gs[k]
            net = np.sum(q * np.where(np.isfinite(g), g, 0.0), axis=-1)
            total = total + w * np.abs(net) * ratios[k][..., 0] ** 2
        return np.where(one_sign, np.abs(signed), total)


@dataclass(slots=True)  # not frozen: built on every decision, frozen init is slow
class TradePlan:
    """Wanted trades (coin delta, signed) before routing and lot rounding."""

    taker_coin: Any
    maker_coin: Any
    trigger: Any  # TRIG_* codes (int, or int8 array)


def plan_trades(
    policy: PolicyConfig,
    band: Band,
    net_delta_coin: Any,
    now_s: Any,
    last_hedge_s: Any,
    spot_usd: Any,
    last_hedge_spot_usd: Any,
    maker_allowed: bool,
    maker_drift_coin: Any = 0.0,
) -> TradePlan:
    """Apply the policy's triggers and sizing to the net delta (in-flight orders included).

    `last_hedge_s`/`last_hedge_spot_usd` are NaN where there was no hedge yet (timers fire,
    the price filter passes). Trades smaller than `min_trade_coin` become 0 (carried).
    Maker orders are planned only where the band leaves time: the room left to the taker
    band's edge must exceed `maker_drift_coin`, the delta's expected drift while a post-only
    order waits for its fill (|Gamma| S sigma sqrt(fill delay)); elsewhere the inner band
    trades as taker.
    """
    if (
        type(net_delta_coin) in _SCALAR
        and type(band.centre) in _SCALAR
        and type(band.lower) in _SCALAR
        and type(band.upper) in _SCALAR
        and type(now_s) in _SCALAR
        and type(last_hedge_s) in _SCALAR
        and type(spot_usd) in _SCALAR
        and type(last_hedge_spot_usd) in _SCALAR
        and type(maker_drift_coin) in _SCALAR
        and not isinstance(policy, TimerPolicy)
    ):
        return _plan_trades_scalar(
            policy_numbers(policy),
            band,
            net_delta_coin,
            now_s,
            last_hedge_s,
            spot_usd,
            last_hedge_spot_usd,
            maker_allowed,
            maker_drift_coin,
        )
    net = net_delta_coin
    centre = band.centre
    lo = centre - band.lower
    hi = centre + band.upper
    ratio = policy.hedge_ratio
    elapsed = now_s - last_hedge_s
    never = _isnan(elapsed)
    min_trade = max(policy.min_trade_coin, 1e-12)

    if isinstance(policy, TimerPolicy):
        due = never | (elapsed >= policy.interval_s - 1e-9)
        taker = _where(due, (centre - net) * ratio, 0.0 * net)
        trigger = _where(due & (taker != 0.0), TRIG_TIMER, TRIG_NONE)
    else:
        outside = (net < lo) | (net > hi)
        if policy.price_move_filter_frac > 0.0:
            moved = _abs(spot_usd / last_hedge_spot_usd - 1.0) >= policy.price_move_filter_frac
            outside = outside & (moved | _isnan(last_hedge_spot_usd))
        dest = _clip(net, lo, hi) if policy.rebalance_to == "edge" else centre
        taker = _where(outside, (dest - net) * ratio, 0.0 * net)
        trigger = _where(outside, TRIG_BAND, TRIG_NONE)
        if policy.max_interval_s is not None:
            due = _not(outside) & _not(never) & (elapsed >= policy.max_interval_s)
            taker = _where(due, (centre - net) * ratio, taker)
            trigger = _where(due & (taker != 0.0), TRIG_SAFETY, trigger)

    taker = _where(_abs(taker) >= min_trade, taker, 0.0 * net)
    maker = 0.0 * net
    if maker_allowed and policy.maker.enabled and not isinstance(policy, TimerPolicy):
        m = policy.maker
        mlo = centre - band.lower * m.band_fraction
        mhi = centre + band.upper * m.band_fraction
        in_zone = (taker == 0.0) & ((net < mlo) | (net > mhi))
        mdest = _where(
            net < mlo,
            centre - band.lower * (m.band_fraction * m.target_fraction),
            centre + band.upper * (m.band_fraction * m.target_fraction),
        )
        want = _where(in_zone, (mdest - net) * ratio, 0.0 * net)
        want = _where(_abs(want) >= min_trade, want, 0.0 * net)
        room = _where(net < centre, net - lo, hi - net)
        has_time = room > maker_drift_coin
        maker = _where(has_time, want, 0.0 * net)
        taker = _where(has_time, taker, taker + want)
        trigger = _where(want != 0.0, _where(has_time, TRIG_MAKER, TRIG_BAND), trigger)
    if type(trigger) not in _SCALAR:
        trigger = np.asarray(trigger, dtype=np.int8)
    return TradePlan(taker, maker, trigger)


def plan_trades_floats(
    policy: PolicyConfig,
    band: Band,
    net_delta_coin: float,
    now_s: float,
    last_hedge_s: float,
    spot_usd: float,
    last_hedge_spot_usd: float,
    maker_allowed: bool,
    maker_drift_coin: float = 0.0,
    numbers: PolicyNumbers | None = None,
) -> TradePlan:
    """`plan_trades` of one decision, all plain floats (`controller.decide`): the scalar
    branch without `plan_trades`' check of every argument's type. `numbers`:
    `policy_numbers(policy)`, when the caller has it."""
    args = (band, net_delta_coin, now_s, last_hedge_s, spot_usd, last_hedge_spot_usd)
    if isinstance(policy, TimerPolicy):
        return plan_trades(policy, *args, maker_allowed, maker_drift_coin)
    if numbers is None:
        numbers = policy_numbers(policy)
    return _plan_trades_scalar(numbers, *args, maker_allowed, maker_drift_coin)


def _plan_trades_scalar(
    policy: PolicyNumbers,
    band: Band,
    net: Any,
    now_s: Any,
    last_hedge_s: Any,
    spot_usd: Any,
    last_hedge_spot_usd: Any,
    maker_allowed: bool,
    maker_drift_coin: Any,
) -> TradePlan:
    """`plan_trades` for one decision (scalars, a band policy): the same rule, step for step,
    as plain conditionals (the element-wise helpers cost a call each, a dozen per decision).
    Equality with the array path is tested (tests/hedging/test_hedging_fast_paths.py)."""
    centre = band.centre
    lo = centre - band.lower
    hi = centre + band.upper
    ratio = policy.hedge_ratio
    elapsed = now_s - last_hedge_s
    min_trade = max(policy.min_trade_coin, 1e-12)
    outside = net < lo or net > hi
    if policy.price_move_filter_frac > 0.0 and outside:
        moved = abs(spot_usd / last_hedge_spot_usd - 1.0) >= policy.price_move_filter_frac
        outside = moved or math.isnan(last_hedge_spot_usd)
    if outside:
        if policy.rebalance_to == "edge":
            dest = lo if net < lo else (hi if net > hi else net)
        else:
            dest = centre
        taker = (dest - net) * ratio
        trigger = TRIG_BAND
    else:
        taker = 0.0 * net
        trigger = TRIG_NONE
    if (
        policy.max_interval_s is not None
        and not outside
        and not math.isnan(elapsed)
        and elapsed >= policy.max_interval_s
    ):
        taker = (centre - net) * ratio
        if taker != 0.0:
            trigger = TRIG_SAFETY
    if not abs(taker) >= min_trade:
        taker = 0.0 * net
    maker = 0.0 * net
    m = policy.maker
    if maker_allowed and m.enabled:
        bf = m.band_fraction
        mlo = centre - band.lower * bf
        mhi = centre + band.upper * bf
        want = 0.0 * net
        if taker == 0.0 and (net < mlo or net > mhi):
            if net < mlo:
                mdest = centre - band.lower * (bf * m.target_fraction)
            else:
                mdest = centre + band.upper * (bf * m.target_fraction)
            want = (mdest - net) * ratio
        if not abs(want) >= min_trade:
            want = 0.0 * net
        room = net - lo if net < centre else hi - net
        if room > maker_drift_coin:
            maker = want
            if want != 0.0:
                trigger = TRIG_MAKER
        else:
            taker = taker + want
            if want != 0.0:
                trigger = TRIG_BAND
    return TradePlan(taker, maker, trigger)


def maker_drift(ctx: BandContext, fill_delay_s: float) -> Any:
    """Expected |delta| drift over a maker order's fill delay: |Gamma| S sigma sqrt(t) (coin)."""
    t = fill_delay_s / (365.0 * 86400.0)
    return _abs(ctx.gamma_coin_per_usd) * ctx.spot_usd * ctx.vol * math.sqrt(t)


def projected_delta(
    net_delta_coin: Any, expiring_delta_coin: Any, to_settlement_s: Any, window_s: float
) -> Any:
    """Net delta with expiring options decayed linearly to 0 over the settlement window."""
    if window_s <= 0.0:
        return net_delta_coin
    frac = _clip(to_settlement_s / window_s, 0.0, 1.0)
    return net_delta_coin - (1.0 - frac) * expiring_delta_coin


def round_to_lots(qty: Any, step: Any, minimum: Any) -> Any:
    """Round |qty| down to a multiple of `step`; below `minimum` gives 0 (remainder carried)."""
    if type(qty) in _SCALAR and type(step) in _SCALAR and type(minimum) in _SCALAR:
        # One leg of one decision: the same operations on floats, without the helpers' calls.
        mag = float(math.floor(abs(qty) / step + 1e-9)) * step
        if not mag + 1e-12 >= minimum:
            mag = 0.0 * mag
        return (1.0 if qty > 0 else (-1.0 if qty < 0 else 0.0)) * mag
    mag = _floor(_abs(qty) / step + 1e-9) * step
    mag = _where(mag + 1e-12 >= minimum, mag, 0.0 * mag)
    return _sign(qty) * mag


def depth_walk(qty: Any, offsets: Any, sizes: Any) -> tuple[Any, Any, Any]:
    """Walk `qty` (>= 0, shape S) through levels `offsets`/`sizes` (shape S + (L,)).

    `offsets` are each level's distance from mid as a fraction (increasing), `sizes` its size.
    Returns (filled, cost, worst_offset): filled <= qty; cost = sum(fill * offset) (fraction x
    size: multiply by mid for money); worst_offset the offset of the last level touched.
    """
    q = np.asarray(qty, dtype=np.float64)[..., None]
    cum = np.cumsum(sizes, axis=-1)
    fill = np.clip(q - (cum - sizes), 0.0, sizes)
    cost = np.sum(fill * offsets, axis=-1)
    touched = fill > 0.0
    worst = np.max(np.where(touched, offsets, 0.0), axis=-1)
    return np.sum(fill, axis=-1), cost, worst


def route_greedy(qty: Any, marginal: Any, sizes: Any, owner: Any, n_owner: int) -> tuple[Any, Any]:
    """Split `qty` (>= 0) over levels of several instruments, cheapest first.

    `marginal` (shape S + (L,), or a flat list for one decision): all-in cost of each level
    per unit (fee + offset + carry); `sizes` its capacity (0 for a level that may not be used);
    `owner` (L,) the instrument index of each level. Marginal costs increase along each
    instrument's own levels, so filling the globally cheapest levels first minimises the total.
    Returns (qty per instrument, S + (n_owner,) or a list; cost sum(fill * marginal)).
    """
    if isinstance(marginal, list):
        # One decision: a few dozen levels, plain Python (same rule, no numpy call overhead).
        left = float(qty)
        per = [0.0] * n_owner
        total = 0.0
        for j in sorted(range(len(marginal)), key=marginal.__getitem__):
            if left <= 0.0:
                break
            take = sizes[j] if sizes[j] < left else left
            if take > 0.0:
                per[owner[j]] += take
                total += take * marginal[j]
                left -= take
        return per, total
    q = np.asarray(qty, dtype=np.float64)[..., None]
    if n_owner == 1:
        # One instrument: its levels are already in cost order; nothing to sort.
        sz = np.broadcast_to(sizes, marginal.shape)
        fill = np.clip(q - (np.cumsum(sz, axis=-1) - sz), 0.0, sz)
        return np.sum(fill, axis=-1)[..., None], np.sum(fill * marginal, axis=-1)
    order = np.argsort(marginal, axis=-1, kind="stable")
    m_sorted = np.take_along_axis(marginal, order, axis=-1)
    s_sorted = np.take_along_axis(np.broadcast_to(sizes, marginal.shape), order, axis=-1)
    cum = np.cumsum(s_sorted, axis=-1)
    fill = np.clip(q - (cum - s_sorted), 0.0, s_sorted)
    cost = np.sum(fill * m_sorted, axis=-1)
    owner_sorted = np.asarray(owner)[order]
    per_arr = np.zeros((*fill.shape[:-1], n_owner))
    for k in range(n_owner):
        per_arr[..., k] = np.sum(np.where(owner_sorted == k, fill, 0.0), axis=-1)
    return per_arr, cost


def cheapest_lambda(taker_fee: Any, half_spread: Any) -> float:
    """The one-way proportional cost the bands use: the cheapest touch, fee + half spread."""
    costs = [float(f) + float(h) for f, h in zip(taker_fee, half_spread, strict=True)]
    return min(costs) if costs else 0.0


def hedge_lambda(
    taker_fee: Any, half_spread: Any, carry_annual: Any, hedge_side: Any, horizon_years: Any
) -> tuple[Any, Any]:
    """(lambda, carry a year) the bands use: those of the instrument the hedge would be held
    on, the least fee + half spread + carry its side (`hedge_side`: +1 long, -1 short, 0
    none) pays over the book's horizon. Without a side or a horizon: the cheapest touch
    (`cheapest_lambda`). Why: the cheapest touch may be dear to hold (a swap's funding), and
    a band sized for an instrument the router does not hold the hedge on is mis-sized.
    Per instrument: lists of floats with a scalar side and horizon (one decision, plain
    Python), or arrays with side and horizon arrays of paths (the backtest)."""
    if isinstance(taker_fee, list):
        best, lam, carry = math.inf, 0.0, 0.0
        held = hedge_side * max(horizon_years, 0.0) if math.isfinite(horizon_years) else 0.0
        for f, h, c in zip(taker_fee, half_spread, carry_annual, strict=True):
            cost = f + h + held * c
            if cost < best:
                best, lam, carry = cost, f + h, c
        return lam, carry
    touch = np.asarray(taker_fee) + np.asarray(half_spread)
    carries = np.asarray(carry_annual)
    held = np.asarray(hedge_side, dtype=float) * np.maximum(np.asarray(horizon_years), 0.0)
    k = np.argmin(touch + held[..., None] * carries, axis=-1)
    return touch[k], carries[k]


def maker_cost_frac(
    fill_probability: float, maker_fee: Any, taker_fee: Any, half_spread: Any, carry: Any
) -> Any:
    """Expected cost per unit of a post-only order at the touch (fraction of notional).

    p (maker fee - half spread) + (1 - p) (taker fee + half spread) + carry: filled, it earns
    the half spread at the maker fee; unfilled, it ends as a taker trade.
    """
    p = fill_probability
    return p * (maker_fee - half_spread) + (1.0 - p) * (taker_fee + half_spread) + carry


def cap_levels(sizes: Any, capacity: Any) -> Any:
    """Level sizes (..., L) truncated so their running total stays within `capacity` (...)."""
    if isinstance(sizes, list):
        out, used = [], 0.0
        for size in sizes:
            take = min(size, max(float(capacity) - used, 0.0))
            out.append(take)
            used += take
        return out
    cum = np.cumsum(sizes, axis=-1)
    cap = np.asarray(capacity, dtype=np.float64)[..., None]
    return np.clip(cap - (cum - sizes), 0.0, sizes)
