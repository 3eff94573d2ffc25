"""Backtest scenarios: a TOML file describing the market, the book, the hedge instruments and
the policies (with the parameter each sweeps to trace its cost-versus-risk frontier).

Units: prices USD per coin; quantities coin; fees, spreads, depth offsets and basis as
fractions of notional; vol annualised; funding per 8 h; times in the unit their name gives.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hedgerd.backtest.exact_band import Criterion
from hedgerd.hedging.config import (
    CostModelSettings,
    HedgingConfigError,
    PolicyConfig,
    describe_validation_error,
    load_policy,
)


class ScenarioError(ValueError):
    """A scenario file that cannot be used; names the key."""


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketSpec(_S):
    spot_usd: float = Field(100.0, gt=0, description="Initial price of the underlying (USD).")
    rate: float = Field(0.0, description="Risk-free rate, continuous, per year (cash accrues it).")
    drift: float | None = Field(
        None, description="Drift of the underlying per year (None: the rate, risk-neutral)."
    )
    horizon_days: float = Field(30.0, gt=0, description="Length of each path (days).")
    step_minutes: float = Field(10.0, gt=0, description="Monitoring interval (minutes).")
    process: Literal["gbm", "jumps", "regimes", "heston"] = Field(
        "gbm", description="Price process: gbm, jumps (Merton), regimes (Markov vol), heston."
    )
    vol: float = Field(0.6, gt=0, description="Volatility (gbm, jumps; initial for the others).")
    jump_intensity_per_year: float = Field(0.0, ge=0, description="Jumps per year (jumps).")
    jump_mean: float = Field(0.0, description="Mean log jump size (jumps).")
    jump_std: float = Field(0.0, ge=0, description="Std of the log jump size (jumps).")
    regime_vols: tuple[float, ...] = Field(
        (0.4, 0.9), description="Volatility of each regime (regimes)."
    )
    regime_switch_per_year: float = Field(
        12.0, ge=0, description="Rate of leaving the current regime, per year (regimes)."
    )
    heston_kappa: float = Field(5.0, gt=0, description="Variance mean reversion per year.")
    heston_theta: float | None = Field(None, description="Long-run variance (None: vol^2).")
    heston_xi: float = Field(1.0, ge=0, description="Vol of variance.")
    heston_rho: float = Field(-0.5, ge=-1, le=1, description="Price/variance correlation.")
    greeks_vol: Literal["instantaneous", "fixed", "expected"] = Field(
        "instantaneous",
        description="Vol the hedger prices with: the current instantaneous vol, `vol`, or "
        "`expected`: the root of the variance expected over the rest of the horizon given "
        "the current state (regimes, heston), the implied vol a market would quote.",
    )
    mark_history: bool = Field(
        True,
        description="Start each path with the marks a running desk has behind it: the "
        "vol-of-vol estimator (`hedging.volvol`) is first fed the hedger's mark vol over its "
        "window before t = 0, the vol state drawn backward from the path's start with the "
        "same process (regimes, heston; its own random stream: the paths are unchanged), as "
        "the daemon seeds its estimator at start. Constant vol: nothing to feed (the "
        "estimate is 0 either way). Likewise the jump estimator (`hedging.jumps`, for a "
        "policy whose centre takes it) is first fed its 28-day window of index returns drawn "
        "as the path draws them, as the daemon seeds it from its journal or the venue's "
        "index history. False: the estimators start empty (0 until the marks move; the jump "
        "ratio 1, ramping in over the first day).",
    )

    @property
    def steps(self) -> int:
        return max(1, round(self.horizon_days * 1440.0 / self.step_minutes))

    @property
    def dt_years(self) -> float:
        return self.horizon_days / 365.0 / self.steps


class OptionSpec(_S):
    type: Literal["call", "put"] = Field(description="Call or put.")
    strike_usd: float = Field(gt=0, description="Strike (USD).")
    expiry_days: float = Field(gt=0, description="Days to expiry from the start.")
    qty_coin: float = Field(description="Position in coin of underlying; negative is short.")


class FlowSpec(_S):
    trades_per_day: float = Field(0.0, ge=0, description="Mean option trades a day (Poisson).")
    qty_coin_std: float = Field(0.5, gt=0, description="Std of each trade's size (coin).")
    short_bias: float = Field(
        0.6, ge=0, le=1, description="Probability that a trade leaves us short the option."
    )
    moneyness: tuple[float, float] = Field(
        (0.85, 1.15), description="Range of strike / spot at the trade (uniform)."
    )
    expiry_days: tuple[float, ...] = Field(
        (7.0, 14.0, 30.0), description="Expiries the client trades (days after the trade)."
    )
    max_trades: int = Field(64, ge=0, description="Most trades a path may have.")


class InstrumentSpec(_S):
    name: str = Field(description="Instrument name.")
    kind: Literal["spot", "perpetual", "future"] = Field("spot", description="Kind.")
    taker_fee: float = Field(0.0005, description="Taker fee, fraction of notional.")
    maker_fee: float = Field(0.0, description="Maker fee (negative: rebate).")
    half_spread: float = Field(0.0, ge=0, description="Half the bid-ask spread, fraction of mid.")
    depth_levels: int = Field(5, ge=1, le=20, description="Book levels per side.")
    level_size_coin: float = Field(1e9, gt=0, description="Size of each level (coin).")
    level_step: float = Field(0.0, ge=0, description="Price step between levels (fraction).")
    funding_8h: float = Field(0.0, description="Perpetual funding a long pays per 8 h.")
    basis_annual: float = Field(
        0.0, description="Future: annualised premium over spot, lost by a long as it converges."
    )
    expiry_days: float | None = Field(None, gt=0, description="Future expiry (days from start).")
    amount_step_coin: float = Field(1e-6, gt=0, description="Order size step (coin).")
    min_amount_coin: float = Field(1e-6, gt=0, description="Smallest order (coin).")
    max_position_coin: float | None = Field(None, gt=0, description="Position limit (coin).")
    maker_allowed: bool = Field(True, description="Post-only orders allowed on it.")
    venue: str = Field(
        "", description="The venue it trades on, for per-venue volume (empty: its own name)."
    )
    down_from_days: float | None = Field(
        None, ge=0, description="Start of an outage (days from start; None: never down)."
    )
    down_hours: float = Field(
        0.0, ge=0, description="Length of the outage (hours): no order reaches it meanwhile."
    )

    @model_validator(mode="after")
    def _future(self) -> InstrumentSpec:
        if self.kind == "future" and self.expiry_days is None:
            raise ValueError("a future needs expiry_days")
        return self

    @property
    def carry_annual(self) -> float:
        """What a long pays a year as the runner charges it (fraction of notional): a
        perpetual's funding (per 8 h, 3 x 365 a year), a future's basis, 0 for spot; the
        other field of each kind is not charged."""
        if self.kind == "perpetual":
            return self.funding_8h * 3 * 365
        return self.basis_annual if self.kind == "future" else 0.0


class ExecutionSpec(_S):
    maker_allowed: bool = Field(False, description="Policies may post maker orders.")
    maker_fill_through: float = Field(
        1.0,
        ge=0,
        le=1,
        description="A resting buy at L fills once the intra-step low of the mid reaches "
        "L (1 - this x half spread): 1 = the opposite touch traded through our price.",
    )
    unwind_at_end: bool = Field(
        True,
        description="Close the hedges (taker) at the end, all of them: past the listed depth "
        "further books of the same depth are walked, as a hedge waits for the next book.",
    )


class SweepSpec(_S):
    param: str = Field(description="Policy field swept.")
    values: tuple[float, ...] = Field(description="Values of the field.")


class PolicySpec(_S):
    """A named policy of the scenario: its config and the sweep tracing its frontier."""

    family: str = Field(description="Label grouping sweeps in reports (e.g. 'fixed timer').")
    config: dict[str, Any] = Field(description="The policy table (with its `kind`).")
    sweep: SweepSpec = Field(description="Swept parameter.")
    baseline: bool = Field(False, description="Compared against the default in reports.")
    exact: bool = Field(
        False,
        description="Trade to the exact dynamic-programming band of the static book "
        "(`exact_band.solve`) instead of a controller band; the sweep value is its risk "
        "aversion (1/USD) and `config` only sets triggers and sizing.",
    )
    exact_criterion: Criterion = Field(
        "exp_utility",
        description="Criterion of the exact band: exponential utility, or mean-variance.",
    )


class ReportSpec(_S):
    unit: Literal["pct_premium", "usd"] = Field(
        "pct_premium", description="Unit of costs and P&L: % of the initial premium, or USD."
    )
    std_targets: tuple[float, ...] = Field(
        (), description="Std of P&L (report unit) at which families are compared."
    )
    default_policy: str = Field("hedgerd", description="The policy compared with the baselines.")


class Scenario(_S):
    name: str = Field(description="Scenario name.")
    description: str = Field("", description="What the scenario tests.")
    paths: int = Field(2000, ge=2, description="Default number of paths.")
    seed: int = Field(1, description="Default seed.")
    market: MarketSpec = Field(default_factory=MarketSpec, description="Price process.")
    options: tuple[OptionSpec, ...] = Field((), description="The initial option book.")
    flow: FlowSpec = Field(default_factory=FlowSpec, description="Random option flow.")
    instruments: tuple[InstrumentSpec, ...] = Field(description="Hedge instruments.")
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec, description="Execution.")
    cost: CostModelSettings = Field(
        default_factory=CostModelSettings, description="Cost model expectations (as live)."
    )
    report: ReportSpec = Field(default_factory=ReportSpec, description="Reporting.")
    policies: dict[str, PolicySpec] = Field(
        default_factory=dict, description="Named policies (added to the built-in ones)."
    )

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if not self.instruments:
            raise ValueError("at least one hedge instrument is needed")
        if self.report.unit == "pct_premium" and not self.options:
            raise ValueError("report.unit 'pct_premium' needs an initial option book")
        return self


def read_scenario_toml(path: Path) -> dict[str, Any]:
    """The raw table of a scenario (or sweep) file; ScenarioError if unreadable."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: invalid TOML: {exc}") from None


def parse_scenario(raw: dict[str, Any], where: str) -> Scenario:
    """Validate a scenario table (as read from TOML); ScenarioError names `where` and the key."""
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{where}:\n" + describe_validation_error(exc, "")) from None
    for name, spec in scenario.policies.items():
        try:
            load_policy(spec.config, key=f"policies.{name}.config")
        except HedgingConfigError as exc:
            raise ScenarioError(f"{where}:\n{exc}") from None
    return scenario


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; ScenarioError names the bad key."""
    return parse_scenario(read_scenario_toml(path), str(path))


def initial_options(scenario: Scenario) -> list[tuple[float, float, float]]:
    """Each option of the initial book at the start, Black-Scholes at the market's vol:
    (quantity coin, value USD per coin, delta per coin)."""
    from hedgerd.pricing.black import black_scholes

    m = scenario.market
    out = []
    for o in scenario.options:
        g = black_scholes(
            o.type == "call", m.spot_usd, o.strike_usd, o.expiry_days / 365.0, m.vol, m.rate
        )
        out.append((o.qty_coin, float(g.price), float(g.delta)))
    return out


def premium_usd(scenario: Scenario) -> float:
    """Sum of |qty| x Black-Scholes value of the initial book (the pct_premium unit's 100 %)."""
    return sum(abs(qty) * price for qty, price, _ in initial_options(scenario))


def book_scale_coin(scenario: Scenario) -> float:
    """Sum of |qty| of the initial book, or the flow's typical size; scales default sweeps."""
    s = sum(abs(o.qty_coin) for o in scenario.options)
    if s > 0:
        return s
    return max(scenario.flow.qty_coin_std * math.sqrt(max(scenario.flow.max_trades, 1)), 1e-9)


def materialise(spec: PolicySpec, value: float) -> PolicyConfig:
    """The policy config of one sweep point (an exact-band spec's value is not a field)."""
    cfg = dict(spec.config)
    if not spec.exact:
        cfg[spec.sweep.param] = value
    return load_policy(cfg, key="policy")
