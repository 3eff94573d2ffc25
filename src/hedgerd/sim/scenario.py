"""The simulator's scenario: a TOML file validated by these pydantic models.

Every field has a documented default, so an empty file (or no file) is the default BTC + ETH
market of `config/scenarios/sim-default.toml`. Units are in the field names: `*_ms` epoch
milliseconds, `*_s` seconds, `*_bps` basis points (1e-4), vols are fractions per year
(0.6 = 60 %), prices are USD per coin unless the name says otherwise.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# 2026-01-05T00:00:00Z, a Monday: the default start when the scenario gives none.
DEFAULT_START_MS = 1_767_571_200_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JumpSpec(_Model):
    """Compound-Poisson jumps in the log index price."""

    intensity_per_day: float = Field(0.5, ge=0, description="expected jumps per day")
    mean: float = Field(0.0, description="mean log jump")
    std: float = Field(0.02, ge=0, description="standard deviation of the log jump")


class RegimeSpec(_Model):
    """One volatility regime of a Markov-switching GBM; regimes are visited in a cycle chosen
    at random (uniformly among the others) after an exponential holding time."""

    name: str = "normal"
    vol: float = Field(0.5, gt=0, description="annualised volatility of the index in this regime")
    mean_duration_s: float = Field(6 * 3600.0, gt=0, description="mean holding time")


class SurfaceSpec(_Model):
    """Implied volatility surface: per expiry, quadratic in k = ln(K/F)/sqrt(T):
    iv = atm(T) + skew * k + curvature * k^2, floored at `min_vol`; the ATM term structure is
    atm(T) = atm_vol + term_slope * (sqrt(T) - sqrt(30/365)). `atm_vol` None uses the
    underlying's (current regime) vol."""

    atm_vol: float | None = Field(None, gt=0)
    skew: float = -0.05
    curvature: float = 0.08
    term_slope: float = -0.05
    min_vol: float = Field(0.05, gt=0)
    max_vol: float = Field(3.0, gt=0)
    history_vol_of_vol: float = Field(
        0.0,
        ge=0,
        description="annualised vol of ln(30-day ATM vol) before the simulated start: the "
        "history `public/get_volatility_index_data` (DVOL) serves (`sim.vol_index`); 0: flat",
    )


class ChainSpec(_Model):
    """Which option expiries and strikes are listed. Expiries are at 08:00 UTC: `dailies`
    next days, `weeklies` next Fridays, `monthlies` last Fridays of the next months,
    `quarterlies` last Fridays of the next Mar/Jun/Sep/Dec. Strikes: `strikes_each_side`
    around the spot at listing, spaced `strike_step_pct` of spot (rounded to a nice number)
    per tenor class."""

    dailies: int = Field(3, ge=0)
    weeklies: int = Field(3, ge=0)
    monthlies: int = Field(3, ge=0)
    quarterlies: int = Field(2, ge=0)
    strikes_each_side: int = Field(8, ge=1, le=60)
    strike_step_pct_daily: float = Field(0.01, gt=0)
    strike_step_pct_weekly: float = Field(0.02, gt=0)
    strike_step_pct_monthly: float = Field(0.04, gt=0)
    strike_step_pct_quarterly: float = Field(0.08, gt=0)
    futures: bool = Field(
        True, description="list inverse dated futures on monthly/quarterly expiries"
    )


class UnderlyingSpec(_Model):
    """One underlying (BTC, ETH): its index process and instruments."""

    currency: Literal["BTC", "ETH"]
    spot: float = Field(gt=0, description="index price at start, USD")
    vol: float = Field(0.5, gt=0, description="annualised index vol when no regimes are given")
    drift: float = Field(0.0, description="annualised drift of the log index")
    jumps: JumpSpec = JumpSpec()
    regimes: list[RegimeSpec] = Field(default_factory=list)
    replay_csv: str | None = Field(
        None,
        description="CSV of `timestamp_ms,price` rows to replay instead of the GBM (relative "
        "paths resolve against the scenario file); prices between rows are held",
    )
    basis_per_year: float = Field(
        0.05, description="annualised futures basis: F = S * (1 + basis_per_year * T)"
    )
    surface: SurfaceSpec = SurfaceSpec()
    chain: ChainSpec = ChainSpec()
    linear_perpetual: bool = Field(True, description="list {CCY}_USDC-PERPETUAL")
    spot_pair: bool = Field(True, description="list the spot pair {CCY}_USDC")


class BookSpec(_Model):
    """Synthetic depth around the mark. Level i (0-based) of each side sits at
    mark * (1 -/+ (half_spread + i * level_step)) and holds size_0 * size_growth**i, where the
    spreads are in bps of the mark for futures and spot pairs and in vol points (converted
    through vega, floored at one tick) for options. Liquidity taken from a level comes back
    linearly over `refill_s`."""

    levels: int = Field(10, ge=1, le=100)
    future_half_spread_bps: float = Field(1.0, ge=0)
    future_level_step_bps: float = Field(1.0, gt=0)
    future_size_0_usd: float = Field(20_000.0, gt=0, description="inverse futures, USD")
    linear_size_0_coin: float = Field(
        0.5, gt=0, description="linear perpetuals and spot pairs, coin"
    )
    option_half_spread_vol: float = Field(0.01, ge=0, description="1 vol point = 0.01")
    option_level_step_vol: float = Field(0.005, gt=0)
    option_size_0_coin: float = Field(5.0, gt=0)
    size_growth: float = Field(1.5, gt=0)
    refill_s: float = Field(10.0, gt=0)


class FeeSpec(_Model):
    """Fees as fractions of notional (negative is a rebate). Options: fraction of the
    underlying amount, capped at `option_fee_cap` of the premium (Deribit's rule)."""

    future_maker: float = 0.0
    future_taker: float = 0.0005
    perpetual_maker: float = 0.0
    perpetual_taker: float = 0.0005
    linear_maker: float = 0.0
    linear_taker: float = 0.0005
    spot_maker: float = 0.0  # spot fees are in the quote currency (USDC), of amount * price
    spot_taker: float = 0.0
    option_maker: float = 0.0003
    option_taker: float = 0.0003
    option_fee_cap: float = 0.125


class FundingSpec(_Model):
    """Perpetual funding: the perpetual's premium over the index follows a mean-reverting
    (Ornstein-Uhlenbeck) process; funding accrues continuously on positions at
    max(0, |premium| - dead_zone) * sign(premium) per 8 hours."""

    premium_mean_bps: float = 2.0
    premium_vol_bps: float = Field(3.0, ge=0, description="stationary std of the premium")
    reversion_s: float = Field(3600.0, gt=0)
    dead_zone: float = Field(0.00025, ge=0, description="±0.025 %")


class FlowSpec(_Model):
    """Customer option trades against the market maker's account (the scenario account named
    by `account`): a Poisson stream at `rate_per_min`, uniform size in [min, max] rounded to
    the minimum amount, on a random listed option with |ln(K/F)| <= `max_log_moneyness`,
    the customer buying with probability `buy_probability` (so the market maker sells),
    priced at mark plus `edge_vol` in the market maker's favour."""

    enabled: bool = True
    account: str | None = Field(None, description="None: the first scenario account")
    rate_per_min: float = Field(2.0, ge=0)
    min_size_coin: float = Field(0.1, gt=0)
    max_size_coin: float = Field(5.0, gt=0)
    buy_probability: float = Field(0.5, ge=0, le=1)
    call_probability: float = Field(0.5, ge=0, le=1)
    max_log_moneyness: float = Field(0.25, gt=0)
    edge_vol: float = Field(0.005, ge=0)
    currencies: list[str] = Field(default_factory=lambda: ["BTC", "ETH"])


class PositionSpec(_Model):
    """A starting position. Either `instrument` (a Deribit name, e.g. BTC-PERPETUAL) or, for
    options whose names depend on the start date, `currency` + `option_type` + `expiry_rank`
    (0 = nearest listed expiry) + `moneyness` (strike = nearest listed strike to spot *
    moneyness). `size` in the instrument's amount unit (USD for inverse futures, coin
    otherwise), negative for short. `average_price` None = the mark at start."""

    instrument: str | None = None
    currency: Literal["BTC", "ETH"] | None = None
    option_type: Literal["call", "put"] | None = None
    expiry_rank: int = Field(0, ge=0)
    moneyness: float = Field(1.0, gt=0)
    size: float
    average_price: float | None = None

    @model_validator(mode="after")
    def _one_way(self) -> PositionSpec:
        if self.instrument is None and (self.currency is None or self.option_type is None):
            raise ValueError("a position needs `instrument` or `currency` + `option_type`")
        if self.size == 0:
            raise ValueError("a position needs a non-zero size")
        return self


class AccountSpec(_Model):
    """A trading account present from the start (the market maker's book)."""

    name: str
    api_key: str
    api_secret: str
    balances: dict[str, float] = Field(
        default_factory=lambda: {"BTC": 10.0, "ETH": 100.0, "USDC": 100_000.0}
    )
    positions: list[PositionSpec] = Field(default_factory=list)


class OkxAccountSpec(_Model):
    """An OKX trading account present from the start (unified account, net position mode)."""

    name: str
    api_key: str
    api_secret: str
    passphrase: str
    balances: dict[str, float] = Field(
        default_factory=lambda: {"BTC": 10.0, "ETH": 100.0, "USDT": 100_000.0}
    )


class OkxVenueSpec(_Model):
    """The OKX venue (`[venues.okx]`): its own instruments, books, fees, basis and funding over
    the world's shared index and vol surface. Amounts here are OKX contracts (`sz`) unless the
    name says coin; fees are fractions of notional (negative is a rebate)."""

    swap_basis_bps: float = Field(
        1.5, description="perpetual swaps' mark premium over the shared index, bps"
    )
    funding_rate_8h: float = Field(
        0.0001, description="funding per 8 h paid by longs (negative: shorts pay), fraction"
    )
    future_basis_bps_per_year: float = Field(
        0.0, description="dated futures' extra premium over the forward, bps per year to expiry"
    )
    half_spread_bps: float = Field(1.0, ge=0, description="swaps, futures and spot")
    level_step_bps: float = Field(1.0, gt=0)
    option_half_spread_vol: float = Field(0.01, ge=0, description="1 vol point = 0.01")
    option_level_step_vol: float = Field(0.005, gt=0)
    levels: int = Field(10, ge=1, le=400)
    swap_size_0_contracts: float = Field(200.0, gt=0)
    option_size_0_contracts: float = Field(100.0, gt=0)
    spot_size_0_coin: float = Field(0.5, gt=0)
    size_growth: float = Field(1.5, gt=0)
    swap_maker: float = 0.0002
    swap_taker: float = 0.0005
    future_maker: float = 0.0002
    future_taker: float = 0.0005
    option_maker: float = 0.0002
    option_taker: float = 0.0003
    spot_maker: float = 0.0008
    spot_taker: float = 0.001
    require_simulated_header: bool = Field(
        False, description="demo venue: refuse REST requests without x-simulated-trading: 1"
    )
    accounts: list[OkxAccountSpec] = Field(default_factory=list)


class VenuesSpec(_Model):
    """Per-venue settings beside the shared market. Deribit's are the top-level sections
    (book, fees, funding, accounts) for backwards compatibility."""

    okx: OkxVenueSpec = OkxVenueSpec()


FaultKind = Literal[
    "latency",
    "http_5xx",
    "rate_limit",
    "timeout_after_accept",
    "ws_drop",
    "order_reject",
    "freeze_market_data",
    "stale_market_data",
    "price_gap",
    "drop_notifications",
    "portfolio_delta_offset",
    "thin_depth",
    "clear",
]


class FaultSpec(_Model):
    """One scheduled fault. Exactly one of `at_ms` (UTC epoch ms) or `after_s` (seconds of
    simulated time after the start). `kind` picks the fault; `params` are the kind's
    parameters (the server documents them, e.g. latency {ms: 500, jitter_ms: 100}, http_5xx
    {status: 503, probability: 1.0}, order_reject {code: 10009}); `duration_s` None means
    until cleared. `price_gap` is applied by the engine itself: params {currency: "BTC",
    pct: -5.0}."""

    at_ms: int | None = None
    after_s: float | None = Field(None, ge=0)
    kind: FaultKind
    params: dict[str, Any] = Field(default_factory=dict)
    duration_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_time(self) -> FaultSpec:
        if (self.at_ms is None) == (self.after_s is None):
            raise ValueError("a fault needs exactly one of `at_ms` or `after_s`")
        return self

    def due_ms(self, start_ms: int) -> int:
        """When the fault starts, UTC epoch ms."""
        if self.at_ms is not None:
            return self.at_ms
        assert self.after_s is not None
        return start_ms + int(self.after_s * 1000)


def _default_underlyings() -> list[UnderlyingSpec]:
    return [
        UnderlyingSpec(
            currency="BTC",
            spot=90_000.0,
            vol=0.5,
            regimes=[
                RegimeSpec(name="calm", vol=0.45, mean_duration_s=21_600.0),
                RegimeSpec(name="stressed", vol=0.9, mean_duration_s=3_600.0),
            ],
        ),
        UnderlyingSpec(currency="ETH", spot=3_000.0, vol=0.65),
    ]


def _default_accounts() -> list[AccountSpec]:
    """The market maker of the default scenario: a short-gamma BTC and ETH options book with
    a perpetual hedge (see config/scenarios/sim-default.toml)."""

    def opt(
        ccy: Literal["BTC", "ETH"], typ: Literal["call", "put"], rank: int, mny: float, size: float
    ) -> PositionSpec:
        return PositionSpec(
            currency=ccy, option_type=typ, expiry_rank=rank, moneyness=mny, size=size
        )

    return [
        AccountSpec(
            name="mm",
            api_key="sim-mm-key",
            api_secret="sim-mm-secret",
            balances={"BTC": 50.0, "ETH": 500.0, "USDC": 1_000_000.0},
            positions=[
                opt("BTC", "call", 6, 1.0, -10.0),
                opt("BTC", "put", 4, 0.9, 15.0),
                opt("BTC", "call", 1, 1.05, -5.0),
                PositionSpec(instrument="BTC-PERPETUAL", size=200_000.0),
                opt("ETH", "put", 6, 0.95, -100.0),
                opt("ETH", "call", 3, 1.1, 50.0),
            ],
        )
    ]


class Scenario(_Model):
    """The whole simulated world."""

    seed: int = 1
    start_ms: int = Field(DEFAULT_START_MS, description="simulated start, UTC epoch ms")
    tick_ms: int = Field(
        250, ge=1, le=60_000, description="market step: index, marks, books move every tick"
    )
    testnet: bool = True
    underlyings: list[UnderlyingSpec] = Field(default_factory=_default_underlyings)
    book: BookSpec = BookSpec()
    fees: FeeSpec = FeeSpec()
    funding: FundingSpec = FundingSpec()
    flow: FlowSpec = FlowSpec()
    accounts: list[AccountSpec] = Field(
        default_factory=_default_accounts,
        description="absent: the default market maker `mm`; `accounts = []` for none",
    )
    faults: list[FaultSpec] = Field(default_factory=list)
    venues: VenuesSpec = VenuesSpec()
    base_dir: str | None = Field(None, description="set by `load_scenario`: the file's folder")

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        currencies = [u.currency for u in self.underlyings]
        if len(set(currencies)) != len(currencies):
            raise ValueError("each underlying currency may appear once")
        keys = [a.api_key for a in self.accounts]
        if len(set(keys)) != len(keys):
            raise ValueError("api keys must be unique")
        return self


def load_scenario(path: str | Path | None = None, *, seed: int | None = None) -> Scenario:
    """Read a scenario TOML file (None: the default scenario); `seed` overrides its seed."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        with p.open("rb") as f:
            data = tomllib.load(f)
        data.setdefault("base_dir", str(p.resolve().parent))
    if seed is not None:
        data["seed"] = seed
    return Scenario.model_validate(data)
