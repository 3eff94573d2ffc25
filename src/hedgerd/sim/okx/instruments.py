"""OKX instruments: inverse options and dated futures mirrored from the world's listing (the
same expiries and strikes, at 08:00 UTC), inverse and linear perpetual swaps, spot pairs.

Amounts are OKX contracts (`sz`): a contract is `ctVal` of `ctValCcy` (options: `ctMult` coin
of the underlying, since `ctVal` is 1); spot sizes are coin of the base currency. Each OKX
instrument has a `SimInstrument` twin in those units so the shared order-book and matching
code can serve it (its `contract_size` is one contract, or the lot for spot).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hedgerd.sim.deribit.instruments import SimInstrument
from hedgerd.sim.scenario import OkxVenueSpec

INST_TYPES = ("SPOT", "SWAP", "FUTURES", "OPTION")
# Per underlying: inverse swap/future face value (USD), linear swap face (coin), option
# multiplier (coin per contract), tick sizes (USD; options coin), spot lot and minimum (coin).
_SPECS: dict[str, dict[str, float]] = {
    "BTC": {"inv_ct": 100.0, "lin_ct": 0.01, "opt_mult": 0.01, "tick": 0.1, "spot_tick": 0.1,
            "spot_lot": 1e-8, "spot_min": 1e-5, "lin_lot": 0.01},
    "ETH": {"inv_ct": 10.0, "lin_ct": 0.1, "opt_mult": 0.1, "tick": 0.01, "spot_tick": 0.01,
            "spot_lot": 1e-6, "spot_min": 1e-4, "lin_lot": 0.01},
}  # fmt: skip
OPTION_TICK = 0.0001  # coin per coin of underlying: OKX's smallest option tick band
OPTION_LEVER = ""
SWAP_LEVER = 100
LIST_AGE_MS = 365 * 86_400_000


@dataclass(slots=True, eq=False)
class OkxInstrument:
    """One OKX instrument. `sim` is its twin for books and matching (amounts in contracts,
    spot in coin); `deribit_name` the world instrument whose mark (forward or option surface
    value) it shares, None for swaps and spot."""

    inst_id: str
    inst_type: str  # SPOT | SWAP | FUTURES | OPTION
    base: str  # BTC, ETH
    quote: str  # USD (inverse derivatives) | USDT (linear swaps, spot)
    settle: str  # settlement currency; spot: "" (trades move base and quote at once)
    ct_val: float  # face value of one contract in ct_val_ccy; options 1
    ct_mult: float  # options: coin of the underlying per contract; others 1
    ct_val_ccy: str
    tick_sz: float  # price tick, USD (USDT), options coin
    lot_sz: float  # contracts; spot coin
    min_sz: float
    expiry_ms: int | None  # delivery / expiry, UTC ms; None when perpetual or spot
    list_ms: int
    sim: SimInstrument
    deribit_name: str | None = None
    strike: float | None = None
    opt_type: str | None = None  # "C" | "P"
    state: str = "live"  # "live" | "expired"
    code: int = 0  # `instIdCode`: the venue's integer id (ccxt's WS orders send it)

    @property
    def inverse(self) -> bool:
        return self.settle == self.base

    @property
    def linear(self) -> bool:
        return self.inst_type != "SPOT" and self.settle == self.quote

    @property
    def is_option(self) -> bool:
        return self.inst_type == "OPTION"

    @property
    def is_spot(self) -> bool:
        return self.inst_type == "SPOT"

    @property
    def is_swap(self) -> bool:
        return self.inst_type == "SWAP"

    @property
    def uly(self) -> str:
        """The underlying (`BTC-USD`, `BTC-USDT`); "" for spot."""
        return "" if self.is_spot else f"{self.base}-{self.quote}"

    @property
    def coin_per_contract(self) -> float:
        """Coin of the underlying per contract for options and linear swaps (spot: per coin);
        inverse swaps and futures are USD-faced (see `ct_val`)."""
        if self.is_option:
            return self.ct_mult
        if self.is_spot:
            return 1.0
        return self.ct_val

    def is_on_tick(self, price: float) -> bool:
        q = price / self.tick_sz
        return abs(q - round(q)) < 1e-6

    def is_lot_multiple(self, sz: float) -> bool:
        q = sz / self.lot_sz
        return abs(q - round(q)) < 1e-6


def yymmdd(expiry_ms: int) -> str:
    return datetime.fromtimestamp(expiry_ms / 1000, tz=UTC).strftime("%y%m%d")


def strike_text(strike: float) -> str:
    return str(int(strike)) if float(strike).is_integer() else f"{strike:.10g}"


def _twin(
    inst_id: str,
    kind: str,
    base: str,
    settle: str,
    quote: str,
    inverse: bool,
    step: float,
    tick: float,
    maker: float,
    taker: float,
    expiry_ms: int,
    list_ms: int,
    strike: float | None = None,
    option_type: str | None = None,
) -> SimInstrument:
    return SimInstrument(
        instrument_id=0,
        name=inst_id,
        kind=kind,
        currency=base,
        settlement_currency=settle,
        quote_currency=quote,
        counter_currency=quote,
        inverse=inverse,
        perpetual=kind == "future" and expiry_ms <= 0,
        contract_size=step,
        min_trade_amount=step,
        tick_size=tick,
        maker_commission=maker,
        taker_commission=taker,
        expiry_ms=expiry_ms,
        creation_ms=list_ms,
        settlement_period="",
        price_index=f"{base.lower()}_usd",
        strike=strike,
        option_type=option_type,
    )


def static_instruments(base: str, spec: OkxVenueSpec, now_ms: int) -> list[OkxInstrument]:
    """The instruments that never expire for `base`: inverse and linear swaps, spot."""
    s = _SPECS[base]
    listed = now_ms - LIST_AGE_MS
    inv_id, lin_id, spot_id = f"{base}-USD-SWAP", f"{base}-USDT-SWAP", f"{base}-USDT"
    return [
        OkxInstrument(
            inv_id, "SWAP", base, "USD", base, s["inv_ct"], 1.0, "USD", s["tick"], 1.0, 1.0,
            None, listed,
            _twin(inv_id, "future", base, base, "USD", True, 1.0, s["tick"],
                  spec.swap_maker, spec.swap_taker, 0, listed),
        ),
        OkxInstrument(
            lin_id, "SWAP", base, "USDT", "USDT", s["lin_ct"], 1.0, base, s["tick"],
            s["lin_lot"], s["lin_lot"], None, listed,
            _twin(lin_id, "future", base, "USDT", "USDT", False, s["lin_lot"], s["tick"],
                  spec.swap_maker, spec.swap_taker, 0, listed),
        ),
        OkxInstrument(
            spot_id, "SPOT", base, "USDT", "", 1.0, 1.0, "", s["spot_tick"], s["spot_lot"],
            s["spot_min"], None, listed,
            _twin(spot_id, "spot", base, "USDT", "USDT", False, s["spot_lot"], s["spot_tick"],
                  spec.spot_maker, spec.spot_taker, 0, listed),
        ),
    ]  # fmt: skip


def mirror(world_inst: SimInstrument, spec: OkxVenueSpec) -> OkxInstrument | None:
    """The OKX twin of a world option or dated inverse future (None for anything else)."""
    base = world_inst.currency
    if base not in _SPECS or not world_inst.is_dated or world_inst.settlement_currency != base:
        return None
    s = _SPECS[base]
    code = yymmdd(world_inst.expiry_ms)
    listed = world_inst.creation_ms
    if world_inst.is_option:
        assert world_inst.strike is not None
        cp = "C" if world_inst.is_call else "P"
        inst_id = f"{base}-USD-{code}-{strike_text(world_inst.strike)}-{cp}"
        twin = _twin(
            inst_id, "option", base, base, "USD", True, 1.0, OPTION_TICK, spec.option_maker,
            spec.option_taker, world_inst.expiry_ms, listed, world_inst.strike,
            world_inst.option_type,
        )  # fmt: skip
        return OkxInstrument(
            inst_id, "OPTION", base, "USD", base, 1.0, s["opt_mult"], base, OPTION_TICK, 1.0,
            1.0, world_inst.expiry_ms, listed, twin, world_inst.name, world_inst.strike, cp,
        )  # fmt: skip
    inst_id = f"{base}-USD-{code}"
    twin = _twin(
        inst_id, "future", base, base, "USD", True, 1.0, s["tick"], spec.future_maker,
        spec.future_taker, world_inst.expiry_ms, listed,
    )  # fmt: skip
    return OkxInstrument(
        inst_id, "FUTURES", base, "USD", base, s["inv_ct"], 1.0, "USD", s["tick"], 1.0, 1.0,
        world_inst.expiry_ms, listed, twin, world_inst.name,
    )  # fmt: skip
