"""Accounts: balances per currency, positions, orders and trades, with Deribit's accounting.

Units: inverse futures positions are USD (`size`) with P&L in coin,
`amount * (1/entry - 1/exit)`; linear (USDC) perpetual positions are coin with P&L in USDC;
option positions are coin, premiums and fees in the settlement coin; spot trades (coin amounts,
USDC prices) have no position and move the coin and the USDC balance at once, the fee in
USDC. Realized P&L, fees, premiums and funding go to `balance` at once; equity adds floating
futures P&L and the options' mark value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hedgerd.sim.deribit.instruments import SimInstrument
from hedgerd.sim.orderbook import num


@dataclass(slots=True, eq=False)
class Order:
    """One order, in the instrument's amount unit and price unit."""

    order_id: str
    account_id: str
    inst: SimInstrument
    direction: str  # "buy" | "sell"
    amount: float
    price: float | None  # None: market order
    order_type: str  # "limit" | "market"
    time_in_force: str
    post_only: bool
    reject_post_only: bool
    reduce_only: bool
    label: str
    creation_ms: int
    last_update_ms: int
    order_state: str = "open"
    filled_amount: float = 0.0
    notional_filled: float = 0.0  # sum(amount * price), for the average price
    inverse_notional: float = 0.0  # sum(amount / price), for inverse averages
    commission: float = 0.0
    cancel_reason: str | None = None
    replaced: bool = False
    seq: int = 0  # price-time priority
    reserved_margin: float = 0.0  # initial margin held for it while open (settlement ccy)

    @property
    def remaining(self) -> float:
        return max(0.0, float(f"{self.amount - self.filled_amount:.10g}"))

    @property
    def is_open(self) -> bool:
        return self.order_state == "open"

    @property
    def average_price(self) -> float:
        if self.filled_amount <= 0:
            return 0.0
        if self.inst.inverse and not self.inst.is_option:
            return self.filled_amount / self.inverse_notional
        return self.notional_filled / self.filled_amount

    def to_json(self) -> dict[str, Any]:
        """Deribit's order object (private/buy `order`, get_order_state, user.orders.*)."""
        out: dict[str, Any] = {
            "web": False,
            "time_in_force": self.time_in_force,
            "replaced": self.replaced,
            "reduce_only": self.reduce_only,
            "risk_reducing": False,
            "price": num(self.price) if self.price is not None else "market_price",
            "post_only": self.post_only,
            "reject_post_only": self.reject_post_only,
            "order_type": self.order_type,
            "order_state": self.order_state,
            "order_id": self.order_id,
            "max_show": num(self.amount),
            "last_update_timestamp": self.last_update_ms,
            "label": self.label,
            "is_rebalance": False,
            "is_liquidation": False,
            "instrument_name": self.inst.name,
            "filled_amount": num(self.filled_amount),
            "direction": self.direction,
            "creation_timestamp": self.creation_ms,
            "commission": num(self.commission),
            "average_price": num(self.average_price),
            "api": True,
            "mmp": False,
            "amount": num(self.amount),
            "contracts": num(self.amount / self.inst.contract_size),
        }
        if self.inst.is_spot:
            # Deribit leaves these out for spot (spec: "Optional (not added for spot)")
            del out["reduce_only"], out["is_liquidation"]
        if self.order_type == "market":
            out["original_order_type"] = "market"
        if self.cancel_reason is not None:
            out["cancel_reason"] = self.cancel_reason
        return out


@dataclass(slots=True, eq=False)
class Trade:
    """One fill of one account's order."""

    trade_id: str
    trade_seq: int
    account_id: str
    order: Order
    inst: SimInstrument
    direction: str
    price: float
    amount: float
    fee: float  # in fee_currency; negative is a rebate
    fee_currency: str
    liquidity: str  # "M" | "T"
    timestamp: int
    index_price: float
    mark_price: float
    tick_direction: int
    order_state_after: str
    profit_loss: float
    iv: float | None = None
    underlying_price: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Deribit's trade object (private/buy `trades`, get_user_trades_*, user.trades.*)."""
        out: dict[str, Any] = {
            "trade_seq": self.trade_seq,
            "trade_id": self.trade_id,
            "timestamp": self.timestamp,
            "tick_direction": self.tick_direction,
            "state": self.order_state_after,
            "reduce_only": self.order.reduce_only,
            "profit_loss": num(self.profit_loss),
            "price": num(self.price),
            "post_only": self.order.post_only,
            "order_type": self.order.order_type,
            "order_id": self.order.order_id,
            "matching_id": None,
            "mark_price": num(self.mark_price),
            "liquidity": self.liquidity,
            "instrument_name": self.inst.name,
            "index_price": num(self.index_price),
            "fee_currency": self.fee_currency,
            "fee": num(self.fee),
            "direction": self.direction,
            "amount": num(self.amount),
            "contracts": num(self.amount / self.inst.contract_size),
            "api": True,
            "mmp": False,
            "risk_reducing": False,
            "self_trade": False,
        }
        if self.inst.is_spot:
            del out["reduce_only"]  # not added for spot (spec)
        if self.order.label:
            out["label"] = self.order.label
        if self.iv is not None:
            out["iv"] = num(round(self.iv * 100, 2))
        if self.underlying_price is not None:
            out["underlying_price"] = num(self.underlying_price)
        return out

    def public_json(self) -> dict[str, Any]:
        """The anonymous public trade (`trades.X`, `public/get_last_trades_by_instrument`)."""
        out: dict[str, Any] = {
            "trade_seq": self.trade_seq,
            "trade_id": self.trade_id,
            "timestamp": self.timestamp,
            "tick_direction": self.tick_direction,
            "price": num(self.price),
            "mark_price": num(self.mark_price),
            "instrument_name": self.inst.name,
            "index_price": num(self.index_price),
            "direction": self.direction,
            "amount": num(self.amount),
            "contracts": num(self.amount / self.inst.contract_size),
        }
        if self.iv is not None:
            out["iv"] = num(round(self.iv * 100, 2))
        return out


@dataclass(slots=True)
class Position:
    """Signed size in the instrument's amount unit; `average_price` in its price unit
    (harmonic mean for inverse futures, arithmetic otherwise)."""

    inst: SimInstrument
    size: float = 0.0
    average_price: float = 0.0
    realized_pnl: float = 0.0  # settlement currency
    realized_funding: float = 0.0  # settlement currency, negative when paid
    settlement_price: float = 0.0

    def apply_fill(self, signed_amount: float, price: float) -> float:
        """Apply a fill (positive buys); returns the realized P&L in the settlement currency
        (for options: informational, the premium already moved the balance)."""
        inst = self.inst
        inverse_future = inst.inverse and not inst.is_option
        old = self.size
        realized = 0.0
        if old == 0 or (old > 0) == (signed_amount > 0):
            new = old + signed_amount
            if inverse_future:
                denom = (abs(old) / self.average_price if old else 0.0) + abs(signed_amount) / price
                self.average_price = abs(new) / denom
            else:
                self.average_price = (
                    abs(old) * self.average_price + abs(signed_amount) * price
                ) / abs(new)
            self.size = _clean(new)
            return 0.0
        closing = min(abs(old), abs(signed_amount))
        sign = 1.0 if old > 0 else -1.0
        if inverse_future:
            realized = sign * closing * (1.0 / self.average_price - 1.0 / price)
        else:
            realized = sign * closing * (price - self.average_price)
        new = _clean(old + signed_amount)
        if new == 0:
            self.average_price = 0.0
        elif (new > 0) != (old > 0):
            self.average_price = price  # flipped: the rest opened at this price
        self.size = new
        self.realized_pnl += realized
        return realized


def _clean(x: float) -> float:
    return float(f"{x:.10g}")


@dataclass(slots=True)
class AccountState:
    """One account: balances per currency, positions by instrument name, open orders by id."""

    account_id: str
    api_key: str
    api_secret: str
    user_id: int
    balances: dict[str, float] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    open_orders: dict[str, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    fees_paid: dict[str, float] = field(default_factory=dict)
    session_rpl: dict[str, float] = field(default_factory=dict)
    open_orders_margin: dict[str, float] = field(default_factory=dict)  # sum of reserved
    # balance held by open spot orders, per currency (USDC for buys, coin for sells)
    spot_reserve: dict[str, float] = field(default_factory=dict)
    #: Initial margin the venue requires on top of the positions' and orders', per currency
    #: (admin `accounts/margin`: a raised requirement, as when the venue tightens its margin
    #: rules): it lowers `available_funds` and leaves the maintenance margin as it is.
    initial_margin_add: dict[str, float] = field(default_factory=dict)
    creation_ms: int = 0

    def position(self, inst: SimInstrument) -> Position:
        p = self.positions.get(inst.name)
        if p is None:
            p = self.positions[inst.name] = Position(inst)
        return p
