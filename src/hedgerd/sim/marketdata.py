"""Market-data views of the simulated venue in Deribit's shapes: `public/ticker`,
`public/get_order_book`, `public/get_currencies`.

Functions of a `SimExchange` (they read its marks, books and positions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hedgerd.sim.instruments import SimInstrument, format_expiry
from hedgerd.sim.orderbook import num

if TYPE_CHECKING:
    from hedgerd.sim.exchange import SimExchange

SETTLEMENT_CURRENCIES = ("BTC", "ETH", "USDC")
_CURRENCY_INFO = {
    "BTC": ("Bitcoin", "BITCOIN", 0.0001, 8),
    "ETH": ("Ethereum", "ETHER", 0.0006, 6),
    "USDC": ("USD Coin", "ETHER", 1.0, 6),
}


def ticker_json(ex: SimExchange, inst: SimInstrument) -> dict[str, Any]:
    """`public/ticker` result (also `ticker.X` notifications): marks, best prices, stats;
    options add IVs (percent) and Greeks (vega per 1 % vol in USD, theta per day in USD)."""
    m = ex._market(inst)
    now = ex.now_ms()
    b = ex.book(inst)
    bb, bba, ba, baa = b.best(now)
    mark = ex.mark_price(inst)
    lo, hi = ex._price_band(inst)
    mark = round(mark, 8) if inst.is_option else round(mark, 4)
    last = ex._last_trade.get(inst.name, mark)
    vol = ex._volume.get(inst.name, 0.0)
    idx = m.index_price
    chg = (idx / m.open_24h - 1.0) * 100.0 if m.open_24h else 0.0
    out: dict[str, Any] = {
        "timestamp": now,
        "state": "open" if inst.is_active else "closed",
        "stats": {
            "volume": num(vol if not (inst.inverse and not inst.is_option) else vol / idx),
            "price_change": num(round(chg, 4)),
            "low": num(round(m.low_24h, 2)),
            "high": num(round(m.high_24h, 2)),
            "volume_usd": num(vol if inst.inverse and not inst.is_option else vol * idx),
        },
        "open_interest": num(open_interest(ex, inst)),
        "best_bid_price": num(bb),
        "best_bid_amount": num(bba),
        "best_ask_price": num(ba),
        "best_ask_amount": num(baa),
        "index_price": num(round(idx, 4)),
        "estimated_delivery_price": num(round(idx, 4)),
        "min_price": num(lo),
        "max_price": num(hi),
        "mark_price": num(mark),
        "last_price": num(last),
        "settlement_price": num(
            mark if inst.is_option and inst.is_active else ex.settlement_price(inst)
        ),
        "instrument_name": inst.name,
    }
    if inst.is_option:
        g = ex.greeks(inst)
        vega_coin = g.vega / idx
        out.update(
            {
                "underlying_price": num(round(g.underlying_price, 4)),
                "underlying_index": underlying_index(ex, inst),
                "interest_rate": 0,
                "mark_iv": num(round(g.iv * 100, 2)),
                "bid_iv": num(round(max(0.0, g.iv + (bb - g.mark_coin) / vega_coin) * 100, 2))
                if bb > 0 and vega_coin > 0
                else 0,
                "ask_iv": num(round(max(0.0, g.iv + (ba - g.mark_coin) / vega_coin) * 100, 2))
                if ba > 0 and vega_coin > 0
                else 0,
                "greeks": {
                    "delta": num(round(g.delta, 5)),
                    "gamma": num(round(g.gamma, 8)),
                    "vega": num(round(g.vega / 100.0, 5)),
                    "theta": num(round(g.theta / 365.0, 5)),
                    "rho": 0,
                },
            }
        )
    elif inst.perpetual:
        f8 = m.funding_8h()
        out.update(
            {
                "current_funding": num(round(f8, 8)),
                "funding_8h": num(round(f8, 8)),
                "interest_value": 0,
            }
        )
    return out


def underlying_index(ex: SimExchange, inst: SimInstrument) -> str:
    """The future an option marks against, or Deribit's synthetic `SYN.` name."""
    fut = f"{inst.currency}-{format_expiry(inst.expiry_ms)}"
    return fut if fut in ex.catalog else f"SYN.{fut}"


def open_interest(ex: SimExchange, inst: SimInstrument) -> float:
    """Sum of long positions over all accounts, in the amount unit."""
    tot = 0.0
    for a in ex.accounts.values():
        p = a.positions.get(inst.name)
        if p is not None and p.size > 0:
            tot += p.size
    return tot


# ------------------------------------------------------------------ methods: public
def currencies_json(ex: SimExchange) -> list[dict[str, Any]]:
    """`public/get_currencies`: the simulated coins and USDC."""
    out = []
    for ccy in SETTLEMENT_CURRENCIES:
        if ccy != "USDC" and ccy not in ex.markets:
            continue
        long_name, coin_type, wfee, decimals = _CURRENCY_INFO[ccy]
        out.append(
            {
                "coin_type": coin_type,
                "currency": ccy,
                "currency_long": long_name,
                "fee_precision": 4,
                "in_cross_collateral_pool": False,
                "min_confirmations": 1,
                "min_withdrawal_fee": wfee,
                "withdrawal_fee": wfee,
                "withdrawal_priorities": [],
                "network_currency": ccy,
                "network_fee": wfee,
                "decimals": decimals,
                "apr": 0,
            }
        )
    return out


def order_book_json(ex: SimExchange, inst: SimInstrument, depth: int) -> dict[str, Any]:
    b = ex.book(inst)
    now = ex.now_ms()
    # bring subscribers up to date so that this change_id is where their changes resume
    if ex.sink.wants("book." + inst.name) or b.published is None:
        ex._flush_book(b, now)
    else:
        b.change(now)
    out = ticker_json(ex, inst)
    bids, asks = b.depth(now, depth)
    out["bids"] = bids
    out["asks"] = asks
    out["change_id"] = b.change_id
    out.pop("interest_value", None)
    return out
