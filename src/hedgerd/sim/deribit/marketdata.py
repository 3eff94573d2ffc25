"""Market-data views of the simulated venue in Deribit's shapes: `public/ticker`,
`public/get_order_book`, `public/get_currencies`.

Functions of a `SimExchange` (they read its marks, books and positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hedgerd.sim.deribit.instruments import SimInstrument, format_expiry
from hedgerd.sim.orderbook import num

if TYPE_CHECKING:
    from hedgerd.sim.exchange import SimExchange

SETTLEMENT_CURRENCIES = ("BTC", "ETH", "USDC")


@dataclass(frozen=True, slots=True)
class CurrencyInfo:
    """One `public/get_currencies` entry. Fees in the currency itself, except `network_fee`,
    in `network_currency` (ETH for ERC-20 tokens)."""

    currency: str
    long_name: str
    # The spec's enum says BITCOIN | ETHER, but the venue names other chains' coins after
    # their chain: ccxt's recorded replies show "XRP" and "SOL".
    coin_type: str
    network_currency: str
    withdrawal_fee: float
    network_fee: float
    decimals: int
    in_cross_collateral_pool: bool


# What Deribit lists: the spec's wallet currencies (`wallet_currency`, what an account can
# hold), in its order. The coins the scenario does not simulate are listed too: currencies
# of the venue with no instruments, whose summaries are valid and empty.
# Columns: currency, coin_type, network_currency, withdrawal fee (currency), network fee
# (network currency), decimals, in the cross-collateral pool, long name.
_CURRENCY_TABLE = """
BTC    BITCOIN  BTC   0.0001      0.0001    8   yes  Bitcoin
ETH    ETHER    ETH   0.0006      0.0006    6   yes  Ethereum
STETH  ETHER    ETH   0.0006      0.0006    18  yes  Lido Staked Ether
ETHW   ETHER    ETHW  0.0006      0.0006    18  no   EthereumPoW
USDC   ETHER    ETH   1.0         0.0006    6   yes  USD Coin
USDT   ETHER    ETH   1.0         0.0006    6   yes  Tether USD
EURR   ETHER    ETH   1.0         0.0006    6   no   StablR Euro
SOL    SOL      SOL   0.01457324  0.000005  9   yes  Solana
XRP    XRP      XRP   0.0001      0.000015  6   no   XRP
USYC   ETHER    ETH   1.0         0.0006    6   yes  Hashnote US Yield Coin
PAXG   ETHER    ETH   0.0005      0.0006    18  yes  Pax Gold
BNB    BNB      BNB   0.0005      0.0001    18  no   BNB
USDE   ETHER    ETH   1.0         0.0006    18  yes  Ethena USDe
"""


def _currencies(table: str) -> tuple[CurrencyInfo, ...]:
    out = []
    for line in table.strip().splitlines():
        ccy, coin_type, network, wfee, nfee, decimals, pool, name = line.split(maxsplit=7)
        out.append(
            CurrencyInfo(
                currency=ccy,
                long_name=name,
                coin_type=coin_type,
                network_currency=network,
                withdrawal_fee=float(wfee),
                network_fee=float(nfee),
                decimals=int(decimals),
                in_cross_collateral_pool=pool == "yes",
            )
        )
    return tuple(out)


CURRENCIES = _currencies(_CURRENCY_TABLE)


def ticker_json(ex: SimExchange, inst: SimInstrument) -> dict[str, Any]:
    """`public/ticker` result (also `ticker.X` notifications): marks, best prices, stats;
    options add IVs (percent) and Greeks (vega per 1 % vol in USD, theta per day in USD).
    `stats` covers the public trades of the last 24 h with the last price among them, so
    `low <= last_price <= high`; spot has no settlement price (Deribit leaves it out)."""
    m = ex._market(inst)
    now = ex.now_ms()
    b = ex.book(inst)
    bb, bba, ba, baa = b.best(now)
    mark = ex.mark_price(inst)
    lo, hi = ex._price_band(inst)
    mark = round(mark, 8) if inst.is_option else round(mark, 4)
    st = ex.trade_stats(inst).view(now, mark)
    idx = m.index_price
    chg = (idx / m.open_24h - 1.0) * 100.0 if m.open_24h else 0.0
    out: dict[str, Any] = {
        "timestamp": now,
        "state": "open" if inst.is_active else "closed",
        "stats": {
            "volume": num(st.volume),
            "price_change": num(round(chg, 4)),
            # num() only trims binary noise and never reorders: low <= last <= high holds
            "low": num(st.low),
            "high": num(st.high),
            "volume_usd": num(st.volume_usd),
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
        "last_price": num(st.last),
        "settlement_price": num(
            mark if inst.is_option and inst.is_active else ex.settlement_price(inst)
        ),
        "instrument_name": inst.name,
    }
    if inst.is_spot:
        del out["settlement_price"]
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
    """`public/get_currencies`: every currency of the venue (`CURRENCIES`), with the fields
    the spec names (`apr` 0: nothing yields in the simulator)."""
    return [
        {
            "coin_type": c.coin_type,
            "currency": c.currency,
            "currency_long": c.long_name,
            "fee_precision": 4,
            "in_cross_collateral_pool": c.in_cross_collateral_pool,
            "min_confirmations": 1,
            "min_withdrawal_fee": c.withdrawal_fee,
            "withdrawal_fee": c.withdrawal_fee,
            "withdrawal_priorities": (
                [{"value": 0.15, "name": "very_low"}, {"value": 1.5, "name": "very_high"}]
                if c.coin_type == "BITCOIN"
                else []
            ),
            "network_currency": c.network_currency,
            "network_fee": c.network_fee,
            "decimals": c.decimals,
            "apr": 0,
        }
        for c in CURRENCIES
    ]


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
