"""Hedging policy configuration (the `[hedging]` section of the main config).

Every field has a description; `load_hedging_config` turns validation errors into one line per
problem that names the key (e.g. `hedging.policies.wide.halfwidth_coin = -1: ...`).

Units: deltas and band widths in coin of the underlying; times in seconds; fees and costs as
fractions of notional (0.0005 = 5 bp); risk aversion in 1/USD.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hedgerd.validation_errors import describe_validation_error as validation_error_lines


class HedgingConfigError(ValueError):
    """Invalid hedging configuration; the message names each bad key, one per line."""


class _Section(BaseModel):
    # An infinite limit or NaN value is not a setting (an "inf" timeout or budget, a
    # "1e999" that parses to one, a NaN target): refused, never a silent "no limit".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MakerSettings(_Section):
    """Maker (post-only) execution inside the band, with a taker fallback."""

    enabled: bool = Field(
        False, description="Allow post-only orders at the touch when the band leaves time."
    )
    band_fraction: float = Field(
        0.12,
        gt=0.0,
        le=1.0,
        description="Post a maker order once the net delta leaves this fraction of the taker "
        "band (the inner, maker band).",
    )
    target_fraction: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Where a maker order brings the net delta: 0 = the target, 1 = the inner "
        "band's edge.",
    )
    timeout_s: float = Field(
        600.0,
        gt=0.0,
        description="Seconds a maker order may rest; then it is replaced by a taker order if "
        "still needed.",
    )


class _PolicyBase(_Section):
    target_delta_coin: float = Field(
        0.0, description="Net delta the policy aims at (coin); 0 is delta-neutral."
    )
    hedge_ratio: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Fraction of the distance to the destination (edge or target) that one "
        "trade covers.",
    )
    rebalance_to: Literal["edge", "target"] = Field(
        "edge",
        description="Where a band trade takes the net delta: the nearest band edge or the target.",
    )
    max_interval_s: float | None = Field(
        None,
        gt=0.0,
        description="Safety-net time trigger: if this long passed since the last hedge, "
        "rebalance to the target whatever the band says (None: off).",
    )
    price_move_filter_frac: float = Field(
        0.0,
        ge=0.0,
        description="Band trades only after the underlying moved at least this fraction since "
        "the last hedge (0: off). Filters chop.",
    )
    settlement_window_s: float = Field(
        1800.0,
        ge=0.0,
        description="Inside this window before an expiry, expiring options count with their "
        "projected delta (decayed linearly to 0 at settlement, as the settlement average "
        "fixes).",
    )
    min_trade_coin: float = Field(
        0.0,
        ge=0.0,
        description="Smallest total trade worth sending (coin); smaller needs are carried.",
    )
    maker: MakerSettings = Field(
        default_factory=MakerSettings, description="Maker execution inside the band."
    )


class TimerPolicy(_PolicyBase):
    """Rebalance to the target every `interval_s` (the baseline desks use today)."""

    kind: Literal["timer"] = Field("timer", description="Policy kind.")
    interval_s: float = Field(600.0, gt=0.0, description="Seconds between rebalances.")
    rebalance_to: Literal["edge", "target"] = Field(
        "target", description="A timer always trades to the target."
    )


class FixedBandPolicy(_PolicyBase):
    """A fixed band: absolute half-widths, optionally widened by gamma."""

    kind: Literal["band"] = Field("band", description="Policy kind.")
    halfwidth_coin: float = Field(
        0.1, ge=0.0, description="Half-width of the band on each side of the target (coin)."
    )
    lower_halfwidth_coin: float | None = Field(
        None, ge=0.0, description="Half-width below the target (asymmetric band); None: same."
    )
    upper_halfwidth_coin: float | None = Field(
        None, ge=0.0, description="Half-width above the target (asymmetric band); None: same."
    )
    gamma_move_frac: float = Field(
        0.0,
        ge=0.0,
        description="Gamma scaling: the half-width is at least |gamma| * S * this (the delta "
        "change of a move of this fraction); 0: off.",
    )


class WhalleyWilmottPolicy(_PolicyBase):
    """Whalley–Wilmott: H = (3 e^{-r tau} lambda S Gamma^2 / (2 gamma))^{1/3}."""

    kind: Literal["whalley_wilmott"] = Field("whalley_wilmott", description="Policy kind.")
    risk_aversion_per_usd: float = Field(
        1.0, gt=0.0, description="Absolute risk aversion gamma (1/USD)."
    )
    min_halfwidth_coin: float = Field(
        0.0, ge=0.0, description="Floor of the half-width (coin), where gamma vanishes."
    )


class ZakamoulinePolicy(_PolicyBase):
    """Zakamouline (2006): modified-delta centre, half-width H0 + Hw."""

    kind: Literal["zakamouline"] = Field("zakamouline", description="Policy kind.")
    risk_aversion_per_usd: float = Field(
        1.0, gt=0.0, description="Absolute risk aversion gamma (1/USD)."
    )
    k_prefactor: float = Field(
        4.76,
        ge=0.0,
        description="Prefactor of K in the modified volatility (sources give 4.76/5.76/6.85).",
    )
    h0_cap_coin: float = Field(
        0.5,
        gt=0.0,
        description="Cap of H0 = lambda/(gamma S sigma^2 tau), which explodes at expiry (coin).",
    )
    min_halfwidth_coin: float = Field(0.0, ge=0.0, description="Floor of the half-width (coin).")


class HedgerdPolicy(_PolicyBase):
    """hedgerd's default: a cost-aware band closer to the utility-optimal one.

    Half-width `H = w_ww * H_ww` on the over-hedged side and `H + min(w_0 * min(H0, h0_cap),
    |options delta|)` on the under-hedged side (Whalley–Wilmott plus Zakamouline's horizon term,
    which prices the hedge's unwind at settlement and so only ever argues for a smaller hedge;
    `horizon_side = "both"` puts it on both sides as Zakamouline does), centred on the
    modified-volatility delta (its shift from the delta scaled by the coherence of the book's
    gamma, `shift_coherence`, and at most `shift_cap_hw` x H_ww); the cost
    lambda comes from the live cost model of the cheapest instrument. The Gamma of `H_ww` is the
    book's gamma averaged over the spot range the next `gamma_horizon_s` span
    (`kernel.horizon_gamma`), not the gamma at spot: a near strike's gamma peak, or the zero
    between a short and a long strike, is not what the delta meets before the next rebalance;
    `gamma_min_tau_s` caps a strike's gamma peak in its last hours before expiry.
    Trades go to the band edge; maker orders work the inner band when enabled. The centre shift,
    the horizon term and the averaged gamma are constant-vol refinements: where the marks move
    they are weighed down by the marks' vol-of-vol and the book's exposure to it (`vov_ref`),
    and kept whole where the marks never move.
    The one knob swept is `risk_aversion_per_usd`; the others are the shape (issue 19,
    docs/backtest.md).
    """

    kind: Literal["hedgerd"] = Field("hedgerd", description="Policy kind.")
    risk_aversion_per_usd: float = Field(
        1.0, gt=0.0, description="Absolute risk aversion gamma (1/USD); sets the band's scale."
    )
    ww_weight: float = Field(
        1.0, ge=0.0, description="Weight of the Whalley–Wilmott term of the half-width."
    )
    gamma_exponent: float = Field(
        2.0 / 3.0,
        gt=0.0,
        le=1.5,
        description="Exponent of |Gamma| in the gamma term (2/3: Whalley–Wilmott's).",
    )
    h0_weight: float = Field(
        1.0,
        ge=0.0,
        description="Weight of the horizon term H0 = lambda/(gamma S sigma^2 tau) "
        "(Zakamouline's 1; 1.5 cost 5-10 % more than Zakamouline on held-back long "
        "in-the-money books, docs/backtest.md).",
    )
    horizon_side: Literal["both", "under"] = Field(
        "under",
        description="Which side of the band the horizon term widens: both (Zakamouline), or "
        "only the under-hedged side and at most by the options' delta (the unwind at "
        "settlement argues for a smaller hedge, never a larger one).",
    )
    h0_cap_coin: float = Field(0.5, gt=0.0, description="Cap of the horizon term (coin).")
    k_prefactor: float = Field(
        4.76,
        ge=0.0,
        description="Prefactor of K in the modified volatility of the centre (0: plain delta).",
    )
    shift_cap_hw: float = Field(
        0.25,
        ge=0.0,
        description="Cap of the modified-volatility centre shift relative to the band's gamma "
        "term: |shift| <= c x H, H the Whalley–Wilmott half-width the band computes (coin; c "
        "dimensionless). Zakamouline's K was fitted where the shift lies inside the band; "
        "with K growing as (gamma S^2 |Gamma|)^0.15 and H shrinking as gamma^-1/3, at high "
        "risk aversion the shift leaves the band and extrapolates (docs/backtest.md, "
        "cross-family combinations). 0: off (the uncapped shift); 0.25 measured on the two "
        "combinations and the reference (docs/backtest.md, capping the centre shift).",
    )
    shift_cap_vov_ref: float = Field(
        0.3,
        ge=0.0,
        description="A long-gamma book's centre-shift cap under vol-of-vol (issue 19): the "
        "cap is `shift_cap_hw` x H x (1 + R / this), R = gamma Gamma S^2 sigma^2 xi h^1.5 "
        "(dimensionless, as this) the vol-of-vol weight's scale (`vov_ref`) with the book's "
        "long gamma, xi the marks' vol-of-vol, h `vov_horizon_s`. Long options hold "
        "vol: where the marks move, the shift held back by the cap is what reaches their std "
        "floor. Short books and constant marks (xi = 0): the plain cap, bit for bit. 0: off; "
        "0.3 (`vov_ref`'s) measured on every draw's vol-regime and Heston books "
        "(docs/backtest.md, the long-gamma shift cap under moving marks).",
    )
    shift_coherence: float = Field(
        1.0,
        ge=0.0,
        description="Exponent p of the modified-volatility centre shift's coherence factor "
        "(|net gamma| / gross gamma)^p, gross the sum of |qty x gamma| over the book's "
        "options: Zakamouline's shift was fitted for one option, whose vanna comes with its "
        "gamma; where a book's strikes and expiries cancel each other's gamma, the net vanna "
        "does not cancel with it (docs/backtest.md, the shift on mixed books). A book of one "
        "sign: factor exactly 1. 0: off; 1 measured on the combinations' far-put books (the "
        "30-day one 1.031 -> 1.010 against Whalley–Wilmott).",
    )
    min_halfwidth_coin: float = Field(0.0, ge=0.0, description="Floor of the half-width (coin).")
    gamma_horizon_s: float = Field(
        10_800.0,
        ge=0.0,
        description="The gamma term uses the book's gamma averaged over the spot range this "
        "many seconds of diffusion span (the range the delta crosses before the next "
        "rebalance), not the gamma at the current spot (0: the gamma at spot).",
    )
    gamma_min_tau_s: float = Field(
        10_800.0,
        ge=0.0,
        description="The averaged gamma (`gamma_horizon_s`) prices each live option at a "
        "time to expiry of at least this many seconds: at a strike about to expire the gamma "
        "grows as 1/sqrt(tau), and a width following it (as |Gamma|^(2/3)) swings wide for "
        "the last hours while the delta it guards jumps past the band anyway (measured on a "
        "3-day near strangle against a 13-day call, docs/backtest.md, the held-back draw). "
        "3 h: the gamma horizon's own span. 0: off (the gamma at the true time to expiry). "
        "Only the averaged gamma is floored: where the marks' vol moves, `vov_scope` all "
        "blends it toward the gamma at spot, which keeps the true time to expiry (the "
        "figures were measured so).",
    )
    gamma_average: Literal["signed", "abs"] = Field(
        "abs",
        description="How the gamma is averaged over that range: the net gamma (strikes of "
        "opposite sign cancel) or its magnitude.",
    )
    asymmetry: float = Field(
        0.0,
        ge=-0.9,
        le=0.9,
        description="Skew of the band: for a short-gamma book the over-hedged side is "
        "H (1 + a) and the under-hedged side H (1 - a) (mirrored for long gamma); 0: symmetric.",
    )
    unwind_weight: float = Field(
        0.0,
        ge=0.0,
        description="Weight of the unwind shift: near expiry aim at a smaller hedge by "
        "lambda/(gamma S sigma^2 tau) (at most the options' delta), since a cash-settled "
        "option's hedge is sold at settlement (0: off).",
    )
    carry_weight: float = Field(
        0.0,
        ge=0.0,
        description="Weight of the carry shift of the centre: with funding or basis c a year "
        "on the cheapest instrument, aim at net delta -c/(gamma S sigma^2) (0: ignore carry; "
        "off by default: with the band's gamma it over-shifts, see the two-instruments "
        "backtest).",
    )
    flow_weight: float = Field(
        0.5,
        ge=0.0,
        description="Weight of the option flow's delta motion in the gamma term (issue 19): "
        "the band takes the effective gamma sqrt(Gamma^2 + w v g / (S sigma)^2), v the rate "
        "of the delta variance the book's own option trades add (coin^2 a year, estimated "
        "online by `hedging.flow.FlowEstimator`, seeded at start from the venue's option "
        "trade history of the last 3 days, so a restart or failover keeps it), "
        "g = min(1, (H_ww / J)^2) with J their rms "
        "delta jump (coin): a jump much wider than the band is not diffusion. No option "
        "trades: v = 0 and the band is the plain one. 0: off; 0.5 measured better than 1 "
        "with v estimated (docs/backtest.md, option flow, sixth round).",
    )
    vov_ref: float = Field(
        0.3,
        ge=0.0,
        description="Vol-of-vol weight of the constant-vol refinements (issue 19): the centre "
        "shift, the horizon term and the averaged gamma (`vov_scope`) are weighed by w = 1 / "
        "(1 + R / vov_ref), R = gamma max(-Gamma, 0) S^2 sigma^2 xi h^1.5 (dimensionless: the "
        "risk aversion times the scale of a short-gamma book's vol P&L over h = "
        "`vov_horizon_s`; xi the marks' realised vol-of-vol in 1/sqrt(year), "
        "`hedging.volvol`). Marks that never change (xi = 0) or a long-gamma book: w = 1 (the "
        "plain band, bit for bit). 0: off; 0.3 measured on the "
        "regime-shift scenario (docs/backtest.md, volatility regimes, sixth round).",
    )
    jump_shift_power: float = Field(
        1.0,
        ge=0.0,
        le=2.0,
        description="Power p of the index's jump variance in the centre (issue 19): a "
        "long-gamma book's centre shift adds vanna x sigma (sqrt(r^p) - 1), its delta priced "
        "at the index's realised vol instead of the marks', r = 1 + max(RV - BV, 0) / MV the "
        "jumps' part of the index's realised variance (realised minus bipower variation, "
        "10-minute returns over 28 days) over the marks' variance (`hedging.jumps`; moved "
        "toward 1 over the first day observed). No jumps: r near 1 and no effect. 0: off; 1 "
        "the twelfth-round default (docs/backtest.md, the jump terms as the default).",
    )
    jump_skew_weight: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Weight of the jumps' lean in the centre (issue 19; with "
        "`jump_shift_power`): a long-gamma book's centre shift adds w x Gamma S k / 2, k the "
        "index's sum of cubed 10-minute returns over its variance in the 28-day window "
        "(`hedging.jumps`' skew, a signed return; 0 where no jump is found): the "
        "minimum-variance hedge where the jumps fall (or rise) more than they rise. 0: off.",
    )
    jump_cap_hw: float | None = Field(
        1.0,
        ge=0.0,
        description="Where the jump terms (`jump_shift_power`, `jump_skew_weight`) are "
        "capped. None: with Zakamouline's shift, under its vol-of-vol weight, coherence and "
        "`shift_cap_hw` cap (the form measured first). A number c (1, the default): added "
        "after that cap with their own, |jump shift| <= c x H x coherence^2 (coin; H the "
        "band's gamma term, coherence |net|/gross gamma, 1 when not known or "
        "`shift_coherence` is 0): the "
        "shared cap held them back where the modified-vol shift had used the room (a "
        "90-day long put under 200 jumps "
        "a year: 1.304 -> 0.990 worst ratio at c = 1), and mixed books, where they cost, get "
        "less (docs/backtest.md, the jump terms' own cap).",
    )
    jump_life_weight: bool = Field(
        True,
        description="Weigh the jump terms (`jump_shift_power`, `jump_skew_weight`) by the "
        "chance of a jump before the book's horizon, 1 - exp(-lambda tau): r's excess and "
        "the lean times it (lambda the jumps counted in the window a year, returns beyond 4 "
        "of the marks' sd; tau the book's gamma-weighted time to expiry). A 3-day book under "
        "a jump a quarter hedges the diffusion; a 90-day book under 24 a year, the jumps. "
        "False: the jumps' variance a year counts whatever the book's life (the twelfth "
        "round, with its 7-day window: docs/backtest.md, the jump term weighed by a jump "
        "within the book's life).",
    )
    jump_noise_sd: float = Field(
        3.0,
        ge=0.0,
        description="The jump variance's noise threshold k (`jump_shift_power`): the excess "
        "of realised over bipower variation counts (whole) only where it is beyond k "
        "standard deviations of its no-jump noise, sqrt(theta / n) x BV over n returns, "
        "theta = pi^2/4 + pi - 5 (a diffusion's noise does not move the centre). 0: every "
        "excess counts; 3 the default.",
    )
    vov_scope: Literal["shift", "horizon", "both", "all"] = Field(
        "all",
        description="Which refinements the vol-of-vol weight scales: the centre shift, the "
        "horizon term, both, or all (both, and the gamma term's averaged gamma moves toward "
        "the gamma at spot: w x averaged + (1 - w) x at spot).",
    )
    vov_horizon_s: float = Field(
        2_592_000.0,
        gt=0.0,
        description="The horizon h of the vol P&L in the vol-of-vol weight's R, and of the "
        "flow's delta P&L in `flow_fade_ref`'s R_f (s; 30 days).",
    )
    flow_fade_ref: float = Field(
        10.0,
        ge=0.0,
        description="Fade of the option flow's term with risk aversion (issue 19): "
        "`flow_weight` is multiplied by w_f = 1 / (1 + R_f / flow_fade_ref), R_f = gamma S "
        "sigma sqrt(v) h (dimensionless: the risk aversion in 1/USD times the USD scale of "
        "the unhedged delta P&L the flow's delta motion makes over h = `vov_horizon_s`; S the "
        "spot in USD, sigma the vol in 1/sqrt(year), v the flow's delta variance rate in "
        "coin^2/year). At the tight end the flow term widened the band past "
        "Whalley-Wilmott's; at the loose end it is kept. No option flow (v = 0): no effect. "
        "0: off; 10 measured on the held-back option-flow cell (docs/backtest.md, option "
        "flow, the flow term's fade).",
    )
    vov_window_s: float = Field(
        2_592_000.0,
        gt=0.0,
        description="Trailing window of the vol-of-vol estimate (s; 30 days): the squared "
        "changes of ln(mark vol) over it, divided by the span observed (at least a day, at "
        "most this). A month: the covariance the weight answers is with the vol P&L of the "
        "book's life, so one move of the marks counts for that long.",
    )


PolicyConfig = Annotated[
    TimerPolicy | FixedBandPolicy | WhalleyWilmottPolicy | ZakamoulinePolicy | HedgerdPolicy,
    Field(discriminator="kind"),
]


def _default_policies() -> dict[str, PolicyConfig]:
    return {"hedgerd": HedgerdPolicy()}


class CostModelSettings(_Section):
    """Expectations the cost model adds to live fees, spreads, depth and funding."""

    expected_holding_s: float = Field(
        86400.0,
        ge=0.0,
        description="Expected time a position against the hedge's side (a spread leg, closed at "
        "the next rebalance) is held, for funding and basis carry (s); a position on the "
        "hedge's side carries over the book's horizon (its gamma-weighted time to expiry), "
        "this when the book has none.",
    )
    maker_fill_probability: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Probability that a post-only order at the touch fills before its timeout.",
    )
    maker_fill_delay_s: float = Field(
        120.0, ge=0.0, description="Expected time to fill a post-only order at the touch (s)."
    )
    price_protection_frac: float = Field(
        0.002,
        ge=0.0,
        description="Taker limit price: the worst book level needed, plus this fraction.",
    )
    slice_above_frac: float = Field(
        0.001,
        gt=0.0,
        description="Send a leg SLICED when its depth walk costs more than this fraction "
        "beyond the touch.",
    )
    move_later_weight: float = Field(
        1.0,
        ge=0.0,
        description="Weight of the cost of moving a hedge later (closing the position it "
        "leaves there: that venue's taker fee plus half spread, a fraction of notional), "
        "charged on the part of a trade that grows the position on that instrument (one "
        "account or several). 0: routing ignores where positions sit.",
    )


class RouterSettings(_Section):
    """Where hedges may go."""

    allowed_venues: tuple[str, ...] | None = Field(
        None, description="Venues hedge orders may go to (None: every venue offered)."
    )
    max_position: dict[str, float] = Field(
        default_factory=dict,
        description="Largest absolute position per instrument name, in its amount unit.",
    )
    max_legs: int = Field(3, ge=1, description="Most instruments one decision may split over.")
    initial_margin_frac: float = Field(
        0.02,
        ge=0.0,
        lt=1.0,
        description="With several accounts: initial margin a hedge that grows a position "
        "needs, as a fraction of its notional; with each account's free collateral (its last "
        "margin check) it bounds the hedges that account may take. 0: unchecked.",
    )


class HedgingConfig(_Section):
    """The `[hedging]` section."""

    default_policy: str = Field(
        "hedgerd", description="Policy used for underlyings not listed in `underlyings`."
    )
    underlyings: dict[str, str] = Field(
        default_factory=dict, description='Policy name per underlying (e.g. BTC = "tight").'
    )
    policies: dict[str, PolicyConfig] = Field(
        default_factory=_default_policies,
        description="Named policies; each has a `kind`: timer, band, whalley_wilmott, "
        "zakamouline or hedgerd.",
    )
    cost: CostModelSettings = Field(
        default_factory=CostModelSettings, description="Cost model expectations."
    )
    router: RouterSettings = Field(default_factory=RouterSettings, description="Routing.")

    @model_validator(mode="after")
    def _names_exist(self) -> HedgingConfig:
        if self.default_policy not in self.policies:
            raise ValueError(
                f"default_policy {self.default_policy!r} is not among policies "
                f"{sorted(self.policies)}"
            )
        for underlying, name in self.underlyings.items():
            if name not in self.policies:
                raise ValueError(
                    f"underlyings.{underlying} = {name!r} is not among policies "
                    f"{sorted(self.policies)}"
                )
        return self

    def policy_for(self, underlying: str) -> tuple[str, PolicyConfig]:
        name = self.underlyings.get(underlying, self.default_policy)
        return name, self.policies[name]


#: Policy kinds: pydantic puts the tag of the `policies` union in error locations.
POLICY_KINDS = ("timer", "band", "whalley_wilmott", "zakamouline", "hedgerd")


def describe_validation_error(exc: ValidationError, prefix: str = "hedging") -> str:
    """One line per problem, each naming the full key (policy-kind tags left out)."""
    return "\n".join(validation_error_lines(exc, prefix, POLICY_KINDS))


def load_hedging_config(values: Mapping[str, Any], prefix: str = "hedging") -> HedgingConfig:
    """Validate a `[hedging]` table; raises HedgingConfigError naming each bad key."""
    try:
        return HedgingConfig.model_validate(dict(values))
    except ValidationError as exc:
        raise HedgingConfigError(describe_validation_error(exc, prefix)) from None


def load_policy(values: Mapping[str, Any], key: str = "policy") -> PolicyConfig:
    """Validate one policy table (with its `kind`); errors name `key.field`."""
    wrapper = HedgingConfig.model_validate
    try:
        cfg = wrapper({"policies": {"p": dict(values)}, "default_policy": "p"})
    except ValidationError as exc:
        msg = describe_validation_error(exc, "").replace("policies.p", key)
        raise HedgingConfigError(msg) from None
    return cfg.policies["p"]
