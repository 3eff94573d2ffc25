"""Account views in Deribit's shapes: positions (`private/get_positions`), the account summary
(`private/get_account_summary`, `user.portfolio.*`), and the margin rules the order checks use.

Margins (simplified Deribit standard margin, all in the settlement currency):
- inverse futures: initial 2 %, maintenance 1 % of the position in coin (size / mark);
- linear perpetuals: initial 2 %, maintenance 1 % of size * mark (USDC);
- long options: none (the premium is paid up front);
- short options: initial max(0.15 - OTM/S, 0.10) + mark, maintenance 0.075 + mark, per coin;
- spot: no margin and no position; an open order holds what it would spend (`spot_reserve`:
  amount * price plus the taker fee in USDC for a buy, the coin amount for a sell).
Delta (coin of the underlying): futures size in coin; options Black-Scholes delta * size;
`delta_total` uses net transaction delta (BS delta - mark in coin) for options, with the
deltas of contracts expiring at the next 08:00 settlement decayed linearly to zero over the
30 minutes before it; `projected_delta_total` leaves those contracts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from hedgerd.sim.deribit.accounts import AccountState, Order, Position
from hedgerd.sim.deribit.instruments import SimInstrument
from hedgerd.sim.orderbook import num

FUTURE_IM = 0.02
FUTURE_MM = 0.01
DECAY_MS = 30 * 60_000


@dataclass(frozen=True, slots=True)
class OptionGreeks:
    """Per coin of underlying: delta; gamma per USD; vega USD per 1.00 vol; theta USD per
    year; iv a fraction; mark in coin; underlying (forward) price in USD."""

    mark_coin: float
    iv: float
    delta: float
    gamma: float
    vega: float
    theta: float
    underlying_price: float


class Marks(Protocol):
    """Where the views read prices (the exchange, at the current tick)."""

    def now_ms(self) -> int: ...

    def mark_price(self, inst: SimInstrument) -> float: ...

    def index_price(self, currency: str) -> float: ...

    def greeks(self, inst: SimInstrument) -> OptionGreeks: ...

    def next_settlement_ms(self) -> int: ...

    def settlement_price(self, inst: SimInstrument) -> float: ...


def position_margins(pos: Position, marks: Marks) -> tuple[float, float]:
    """(initial, maintenance) margin of a position in its settlement currency."""
    inst = pos.inst
    if pos.size == 0:
        return 0.0, 0.0
    mark = marks.mark_price(inst)
    if inst.is_option:
        if pos.size > 0:
            return 0.0, 0.0
        s = marks.index_price(inst.currency)
        k = inst.strike or 0.0
        otm = max(0.0, (k - s) if inst.is_call else (s - k))
        q = abs(pos.size)
        return (max(0.15 - otm / s, 0.10) + mark) * q, (0.075 + mark) * q
    if inst.inverse:
        coin = abs(pos.size) / mark
        return coin * FUTURE_IM, coin * FUTURE_MM
    usd = abs(pos.size) * mark
    return usd * FUTURE_IM, usd * FUTURE_MM


def order_margin(order: Order, position_size: float, marks: Marks) -> float:
    """Initial margin an open order would add (0 for the part that reduces the position);
    option buys reserve their premium. Settlement currency; spot: what the order would spend
    (USDC for a buy, coin for a sell)."""
    inst = order.inst
    rem = order.remaining
    if rem <= 0:
        return 0.0
    if inst.is_spot:
        if order.direction == "sell":
            return rem
        price = order.price if order.price is not None else marks.mark_price(inst)
        return rem * price * (1.0 + max(0.0, inst.taker_commission))
    signed = rem if order.direction == "buy" else -rem
    if position_size != 0 and (position_size > 0) != (signed > 0):
        rem = max(0.0, rem - abs(position_size))
        if rem <= 0:
            return 0.0
    price = order.price if order.price is not None else marks.mark_price(inst)
    if inst.is_option:
        if order.direction == "buy":
            return rem * price
        s = marks.index_price(inst.currency)
        k = inst.strike or 0.0
        otm = max(0.0, (k - s) if inst.is_call else (s - k))
        return max(0.15 - otm / s, 0.10) * rem
    if inst.inverse:
        return rem / max(price, 1e-9) * FUTURE_IM
    return rem * price * FUTURE_IM


def floating_pnl(pos: Position, marks: Marks) -> float:
    """Unrealized P&L in the settlement currency at the mark."""
    if pos.size == 0:
        return 0.0
    inst = pos.inst
    mark = marks.mark_price(inst)
    if inst.inverse and not inst.is_option:
        return pos.size * (1.0 / pos.average_price - 1.0 / mark)
    return pos.size * (mark - pos.average_price)


def position_delta(pos: Position, marks: Marks) -> float:
    """Delta in coin of the underlying (options: Black-Scholes)."""
    inst = pos.inst
    if pos.size == 0:
        return 0.0
    if inst.is_option:
        return marks.greeks(inst).delta * pos.size
    if inst.inverse:
        return pos.size / marks.mark_price(inst)
    return pos.size


def position_json(pos: Position, marks: Marks) -> dict[str, Any]:
    """One `private/get_positions` entry."""
    inst = pos.inst
    mark = marks.mark_price(inst)
    index = marks.index_price(inst.currency)
    im, mm = position_margins(pos, marks)
    fpl = floating_pnl(pos, marks)
    size_currency = pos.size / mark if (inst.inverse and not inst.is_option) else pos.size
    out: dict[str, Any] = {
        "instrument_name": inst.name,
        "kind": inst.kind,
        "direction": "buy" if pos.size > 0 else ("sell" if pos.size < 0 else "zero"),
        "size": num(pos.size),
        "size_currency": num(size_currency),
        "average_price": num(pos.average_price),
        "mark_price": num(mark),
        "index_price": num(index),
        "settlement_price": num(marks.settlement_price(inst)),
        "delta": num(position_delta(pos, marks)),
        "initial_margin": num(im),
        "maintenance_margin": num(mm),
        "open_orders_margin": 0,
        "floating_profit_loss": num(fpl),
        "realized_profit_loss": num(pos.realized_pnl),
        "total_profit_loss": num(fpl + pos.realized_pnl),
        "estimated_liquidation_price": 0,
        "leverage": 50 if not inst.is_option else 1,
    }
    if inst.is_option:
        g = marks.greeks(inst)
        out["gamma"] = num(g.gamma * pos.size)
        out["vega"] = num(g.vega / 100.0 * pos.size)
        out["theta"] = num(g.theta / 365.0 * pos.size)
        out["floating_profit_loss_usd"] = num(fpl * index)
        out["average_price_usd"] = num(pos.average_price * index)
    else:
        out["realized_funding"] = num(pos.realized_funding)
        out["interest_value"] = 0
        if not inst.inverse:
            out["floating_profit_loss_usd"] = num(fpl)
    return out


def account_summary(
    acct: AccountState, currency: str, marks: Marks, extended: bool = True
) -> dict[str, Any]:
    """`private/get_account_summary` for one settlement currency (BTC, ETH or USDC)."""
    balance = acct.balances.get(currency, 0.0)
    now = marks.now_ms()
    next_settle = marks.next_settlement_ms()
    decay = min(1.0, max(0.0, (next_settle - now) / DECAY_MS))
    futures_upl = options_value = options_upl = 0.0
    im = mm = proj_im = proj_mm = 0.0
    delta_total = proj_delta = 0.0
    o_delta = o_gamma = o_vega = o_theta = 0.0
    futures_rpl = options_rpl = 0.0
    gamma_map: dict[str, float] = {}
    vega_map: dict[str, float] = {}
    theta_map: dict[str, float] = {}
    delta_map: dict[str, float] = {}
    for pos in acct.positions.values():
        inst = pos.inst
        if inst.settlement_currency != currency:
            continue
        if inst.is_option:
            options_rpl += pos.realized_pnl
        else:
            futures_rpl += pos.realized_pnl
        if pos.size == 0:
            continue
        expiring = inst.expiry_ms <= next_settle
        p_im, p_mm = position_margins(pos, marks)
        im += p_im
        mm += p_mm
        if not expiring:
            proj_im += p_im
            proj_mm += p_mm
        idx = inst.index_name
        if inst.is_option:
            g = marks.greeks(inst)
            options_value += g.mark_coin * pos.size
            options_upl += floating_pnl(pos, marks)
            d = g.delta * pos.size
            o_delta += d
            o_gamma += g.gamma * pos.size
            o_vega += g.vega / 100.0 * pos.size
            o_theta += g.theta / 365.0 * pos.size
            gamma_map[idx] = gamma_map.get(idx, 0.0) + g.gamma * pos.size
            vega_map[idx] = vega_map.get(idx, 0.0) + g.vega / 100.0 * pos.size
            theta_map[idx] = theta_map.get(idx, 0.0) + g.theta / 365.0 * pos.size
            ntd = (g.delta - g.mark_coin) * pos.size if inst.inverse else d
        else:
            futures_upl += floating_pnl(pos, marks)
            ntd = position_delta(pos, marks)
        delta_total += ntd * decay if expiring else ntd
        delta_map[idx] = delta_map.get(idx, 0.0) + (ntd * decay if expiring else ntd)
        if not expiring:
            proj_delta += ntd
    # kept up to date by the exchange as orders rest, fill and close (see Order.reserved_margin)
    oo_margin = max(0.0, acct.open_orders_margin.get(currency, 0.0))
    spot_reserve = max(0.0, acct.spot_reserve.get(currency, 0.0))
    # the venue's own add-on (admin `accounts/margin`): initial margin only
    im_add = max(0.0, acct.initial_margin_add.get(currency, 0.0))
    equity = balance + futures_upl + options_value
    margin_balance = balance + futures_upl + options_upl
    available = equity - im - im_add - oo_margin - spot_reserve
    fees = acct.fees_paid.get(currency, 0.0)
    out: dict[str, Any] = {
        "currency": currency,
        "balance": num(balance),
        "equity": num(equity),
        "margin_balance": num(margin_balance),
        "available_funds": num(available),
        "available_withdrawal_funds": num(max(0.0, min(balance, available))),
        "initial_margin": num(im + im_add + oo_margin),
        "maintenance_margin": num(mm),
        "projected_initial_margin": num(proj_im + im_add + oo_margin),
        "projected_maintenance_margin": num(proj_mm),
        "delta_total": num(delta_total),
        "projected_delta_total": num(proj_delta),
        "delta_total_map": {k: num(v) for k, v in delta_map.items()},
        "options_delta": num(o_delta),
        "options_gamma": num(o_gamma),
        "options_vega": num(o_vega),
        "options_theta": num(o_theta),
        "options_value": num(options_value),
        "options_gamma_map": {k: num(v) for k, v in gamma_map.items()},
        "options_vega_map": {k: num(v) for k, v in vega_map.items()},
        "options_theta_map": {k: num(v) for k, v in theta_map.items()},
        "options_pl": num(options_upl + options_rpl),
        "options_session_upl": num(options_upl),
        "options_session_rpl": num(options_rpl),
        "futures_pl": num(futures_upl + futures_rpl),
        "futures_session_upl": num(futures_upl),
        "futures_session_rpl": num(futures_rpl),
        "session_upl": num(futures_upl + options_upl),
        "session_rpl": num(futures_rpl + options_rpl),
        "total_pl": num(futures_upl + options_upl + futures_rpl + options_rpl),
        "fee_balance": 0,
        "spot_reserve": num(spot_reserve),
        "additional_reserve": 0,
        "estimated_liquidation_ratio": num(mm / margin_balance) if margin_balance > 0 else 0,
        "estimated_liquidation_ratio_map": {},
        "portfolio_margining_enabled": False,
        "cross_collateral_enabled": False,
        "margin_model": "segregated_sm",
        "total_fees": num(fees),
    }
    # Deribit adds these only with `extended=true`, but its published schema requires them
    # always; a superset satisfies both readers.
    out.update(account_fields(acct))
    out["limits"] = LIMITS
    return out


LIMITS: dict[str, Any] = {
    "limits_per_currency": False,
    "non_matching_engine": {"burst": 100, "rate": 20},
    "matching_engine": {
        "trading": {"total": {"burst": 20, "rate": 5}},
        "spot": {"burst": 20, "rate": 5},
        "quotes": {"burst": 500, "rate": 500},
        "max_quotes": {"burst": 10, "rate": 10},
        "guaranteed_quotes": {"burst": 2, "rate": 2},
        "cancel_all": {"burst": 20, "rate": 5},
    },
}


def account_fields(acct: AccountState) -> dict[str, Any]:
    """The account-level fields of the summary (present with `extended=true`)."""
    return {
        "id": acct.user_id,
        "email": f"{acct.account_id}@sim.invalid",
        "username": acct.account_id,
        "system_name": acct.account_id,
        "type": "main",
        "login_enabled": False,
        "security_keys_enabled": False,
        "mmp_enabled": False,
        "interuser_transfers_enabled": False,
        "referrer_id": None,
        "creation_timestamp": acct.creation_ms,
        "self_trading_reject_mode": "cancel_maker",
        "self_trading_extended_to_subaccounts": False,
    }
