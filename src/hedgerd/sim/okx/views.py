"""OKX v5 JSON shapes of the venue's objects: every number a string ("" when absent), as
OKX writes them (ccxt's recorded captures: ts/src/test/static/{response,markets}/okx.json)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hedgerd.sim.deribit.accounts import Position
from hedgerd.sim.okx.instruments import SWAP_LEVER, OkxInstrument, yymmdd

if TYPE_CHECKING:
    from hedgerd.sim.okx.accounts import OkxAccount, OkxFill, OkxOrder
    from hedgerd.sim.okx.venue import OkxVenue

YEAR_DAYS = 365.0


def s(x: float | int | None) -> str:
    """A number as OKX writes it: plain decimal, no exponent, no trailing zeros."""
    if x is None:
        return ""
    if isinstance(x, int):
        return str(x)
    if x == 0:
        return "0"
    text = f"{x:.12g}"
    if "e" not in text and "n" not in text:
        # Already plain and without trailing zeros (the common case, every ticker field of
        # every tick): only an exponent, nan or inf needs the Decimal round trip below.
        return text
    d = Decimal(repr(float(text)))
    out = format(d, "f")
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out


def instrument_json(inst: OkxInstrument) -> dict[str, Any]:
    """A `public/instruments` entry (the fields ccxt's parse_market reads, and the rest)."""
    return {
        "alias": "",
        "auctionEndTime": "",
        "baseCcy": inst.base if inst.is_spot else "",
        "category": "1",
        "ctMult": "" if inst.is_spot else s(inst.ct_mult),
        "ctType": ""
        if inst.is_spot or inst.is_option
        else ("inverse" if inst.inverse else "linear"),
        "ctVal": "" if inst.is_spot else s(inst.ct_val),
        "ctValCcy": inst.ct_val_ccy,
        "expTime": s(inst.expiry_ms) if inst.expiry_ms is not None else "",
        "instFamily": inst.uly,
        "instId": inst.inst_id,
        "instIdCode": inst.code,
        "instType": inst.inst_type,
        "lever": "" if inst.is_option else ("10" if inst.is_spot else str(SWAP_LEVER)),
        "listTime": s(inst.list_ms),
        "contTdSwTime": s(inst.list_ms),
        "lotSz": s(inst.lot_sz),
        "maxIcebergSz": "999999999",
        "maxLmtAmt": "20000000",
        "maxLmtSz": "999999999",
        "maxMktAmt": "1000000" if inst.is_spot else "",
        "maxMktSz": "1000000" if not inst.is_option else "5000",
        "maxStopSz": "1000000",
        "maxTriggerSz": "999999999",
        "maxTwapSz": "999999999",
        "minSz": s(inst.min_sz),
        "optType": inst.opt_type or "",
        "quoteCcy": inst.quote if inst.is_spot else "",
        "settleCcy": inst.settle,
        "state": inst.state,
        "ruleType": "normal",
        "stk": s(inst.strike) if inst.strike is not None else "",
        "tickSz": s(inst.tick_sz),
        "uly": inst.uly,
    }


#: A ticker's figures before formatting (`ticker_values`): last, lastSz, best ask and size,
#: best bid and size (None without one), open, high, low, volume in currency, volume.
TickerValues = tuple[float, float, float | None, float | None, float | None, float | None,
                     float, float, float, float, float]  # fmt: skip


def ticker_values(venue: OkxVenue, inst: OkxInstrument) -> TickerValues:
    """What a ticker shows, as numbers: cheap to compare, so the `tickers` channel formats a
    body only when it changed (`OkxWsHub._push_ticker`)."""
    bids, asks = venue.levels(inst, 1)
    last, last_sz = venue.last_trade(inst)
    o, h, lo, vol = venue.day_stats(inst)
    vol_ccy = (
        vol * inst.coin_per_contract
        if not inst.inverse or inst.is_option
        else (vol * inst.ct_val / last if last > 0 else 0.0)
    )
    if inst.is_spot:
        vol_ccy = vol * last  # spot: quote volume
    ask, ask_sz = (asks[0][0], asks[0][1]) if asks else (None, None)
    bid, bid_sz = (bids[0][0], bids[0][1]) if bids else (None, None)
    return (last, last_sz, ask, ask_sz, bid, bid_sz, o, h, lo, vol_ccy, vol)


def ticker_json(
    venue: OkxVenue, inst: OkxInstrument, values: TickerValues | None = None
) -> dict[str, Any]:
    """The `market/ticker` entry (and `tickers` push) of `inst` now; `values`: its
    `ticker_values`, when already at hand."""
    last, last_sz, ask, ask_sz, bid, bid_sz, o, h, lo, vol_ccy, vol = (
        values if values is not None else ticker_values(venue, inst)
    )
    return {
        "instType": inst.inst_type,
        "instId": inst.inst_id,
        "last": s(last),
        "lastSz": s(last_sz),
        "askPx": s(ask),
        "askSz": s(ask_sz),
        "bidPx": s(bid),
        "bidSz": s(bid_sz),
        "open24h": s(o),
        "high24h": s(h),
        "low24h": s(lo),
        "volCcy24h": s(vol_ccy),
        "vol24h": s(vol),
        "sodUtc0": s(o),
        "sodUtc8": s(o),
        "ts": s(venue.market_ms),
    }


def levels_json(levels: list[tuple[float, float, int]]) -> list[list[str]]:
    return [[s(p), s(a), "0", str(n)] for p, a, n in levels]


def order_json(order: OkxOrder) -> dict[str, Any]:
    """trade/order, orders-pending and the `orders` channel's order fields."""
    inst = order.okx
    assert inst is not None
    state = {
        "filled": "filled",
        "cancelled": "canceled",
    }.get(order.order_state, "partially_filled" if order.filled_amount > 0 else "live")
    f = order.last_fill
    return {
        "accFillSz": s(order.filled_amount),
        "algoClOrdId": "",
        "algoId": "",
        "attachAlgoClOrdId": "",
        "attachAlgoOrds": [],
        "avgPx": s(_avg_px(order)) if order.filled_amount > 0 else "",
        "cTime": s(order.creation_ms),
        "cancelSource": order.cancel_source,
        "cancelSourceReason": "",
        "category": "normal",
        "ccy": "",
        "clOrdId": order.cl_ord_id,
        "fee": s(order.fee_total),
        "feeCcy": order.fee_ccy,
        "fillPx": s(f.px) if f is not None else "",
        "fillSz": s(f.sz) if f is not None else "",
        "fillTime": s(f.ts) if f is not None else "",
        "instId": inst.inst_id,
        "instType": inst.inst_type,
        "isTpLimit": "false",
        "lever": "" if inst.is_spot or inst.is_option else str(SWAP_LEVER),
        "linkedAlgoOrd": {"algoId": ""},  # ccxt's fetchOrder capture carries it; no algo orders
        "ordId": order.ord_id,
        "ordType": order.ord_type,
        "pnl": s(order.pnl),
        "posSide": "" if inst.is_spot else "net",
        "px": s(order.price) if order.price is not None else "",
        "pxType": "",
        "pxUsd": "",
        "pxVol": "",
        "quickMgnType": "",
        "rebate": "0",
        "rebateCcy": order.fee_ccy,
        "reduceOnly": "true" if order.reduce_only else "false",
        "side": order.direction,
        "slOrdPx": "",
        "slTriggerPx": "",
        "slTriggerPxType": "",
        "source": "",
        "state": state,
        "stpId": "",
        "stpMode": "cancel_maker",
        "sz": s(order.amount),
        "tag": order.tag,
        "tdMode": order.td_mode,
        "tgtCcy": "",
        "tpOrdPx": "",
        "tpTriggerPx": "",
        "tpTriggerPxType": "",
        "tradeId": f.trade_id if f is not None else "",
        "uTime": s(order.last_update_ms),
    }


def _avg_px(order: OkxOrder) -> float:
    inst = order.okx
    assert inst is not None
    if inst.inverse and not inst.is_option:
        return order.filled_amount / order.inverse_notional
    return order.notional_filled / order.filled_amount


def order_push_json(order: OkxOrder, f: OkxFill | None) -> dict[str, Any]:
    """An `orders` channel item: the order plus the fields of the fill `f` that caused it
    (None: a state change without a fill)."""
    out = order_json(order)
    out.update(
        {
            "fillSz": s(f.sz) if f is not None else "0",
            "fillPx": s(f.px) if f is not None else "",
            "fillFee": s(f.fee) if f is not None else "0",
            "fillFeeCcy": f.fee_ccy if f is not None else "",
            "fillTime": s(f.ts) if f is not None else "",
            "fillPnl": s(f.fill_pnl) if f is not None else "0",
            "fillMarkPx": s(f.mark_px) if f is not None else "",
            "fillIdxPx": s(f.index_px) if f is not None else "",
            "tradeId": f.trade_id if f is not None else "",
            "execType": f.exec_type if f is not None else "",
            "notionalUsd": "",
            "amendResult": "",
            "reqId": "",
            "code": "0",
            "msg": "",
        }
    )
    return out


def fill_json(fill: OkxFill) -> dict[str, Any]:
    inst = fill.order.okx
    assert inst is not None
    return {
        "instType": inst.inst_type,
        "instId": inst.inst_id,
        "tradeId": fill.trade_id,
        "ordId": fill.order.ord_id,
        "clOrdId": fill.order.cl_ord_id,
        "billId": fill.bill_id,
        "subType": "1" if fill.side == "buy" else "2",
        "tag": fill.order.tag,
        "fillPx": s(fill.px),
        "fillSz": s(fill.sz),
        "fillIdxPx": s(fill.index_px),
        "fillPnl": s(fill.fill_pnl),
        "fillPxVol": "",
        "fillPxUsd": "",
        "fillMarkVol": s(fill.mark_vol),
        "fillFwdPx": s(fill.fwd_px),
        "fillMarkPx": s(fill.mark_px),
        "side": fill.side,
        "posSide": "" if inst.is_spot else "net",
        "execType": fill.exec_type,
        "feeCcy": fill.fee_ccy,
        "fee": s(fill.fee),
        "ts": s(fill.ts),
        "fillTime": s(fill.ts),
        "feeRate": "",
    }


def option_greeks(venue: OkxVenue, inst: OkxInstrument, size: float) -> dict[str, float]:
    """A position's Greeks in OKX's two conventions, `size` contracts.

    BS ("Black-Scholes Greeks in dollars"): delta in coin of the underlying (BS delta times
    the position's coin), gamma per USD, vega USD per 1.00 vol... scaled to USD per vol point
    (0.01), theta USD per day. PA ("Greeks in coins"): delta is the coin-numeraire delta,
    BS delta minus the premium in coin (okx.md §5: the opt-summary gap); vega and theta in
    coin (USD / index); gamma in coin per 1 % move (gamma * S / 100 scaled to coin: gamma * S
    * S / 100 / S)."""
    r = venue.option_risk(inst)
    coin = size * inst.ct_mult
    idx = venue.index_price(inst.base)
    delta_bs = r.delta_bs * coin
    return {
        "deltaBS": delta_bs,
        "deltaPA": delta_bs - r.mark_coin * coin,
        "gammaBS": r.gamma * coin,
        "gammaPA": r.gamma * coin * idx / 100.0,
        "vegaBS": r.vega * coin / 100.0,
        "vegaPA": r.vega * coin / 100.0 / idx,
        "thetaBS": r.theta * coin / YEAR_DAYS,
        "thetaPA": r.theta * coin / YEAR_DAYS / idx,
    }


def coin_delta(venue: OkxVenue, inst: OkxInstrument, size: float) -> float:
    """A swap's or future's delta in coin of the underlying (`size` contracts)."""
    if inst.inverse:
        return size * inst.ct_val / venue.mark_price(inst)
    return size * inst.ct_val


def position_json(
    venue: OkxVenue, acct: OkxAccount, inst: OkxInstrument, pos: Position
) -> dict[str, Any]:
    mark = venue.mark_price(inst)
    idx = venue.index_price(inst.base)
    upl = venue.upl(inst, pos)
    im = venue.position_im(inst, pos)
    if inst.is_option:
        notional_usd = abs(pos.size) * inst.ct_mult * idx
    elif inst.inverse:
        notional_usd = abs(pos.size) * inst.ct_val
    else:
        notional_usd = abs(pos.size) * inst.ct_val * mark
    cost = abs(pos.size) * (
        inst.ct_mult * pos.average_price
        if inst.is_option
        else (inst.ct_val / pos.average_price if inst.inverse and pos.average_price else 0.0)
    )
    greeks: dict[str, str] = {k: "" for k in (
        "deltaBS", "deltaPA", "gammaBS", "gammaPA", "thetaBS", "thetaPA", "vegaBS", "vegaPA"
    )}  # fmt: skip
    if inst.is_option and pos.size != 0:
        greeks = {k: s(v) for k, v in option_greeks(venue, inst, pos.size).items()}
    uid = acct.creds.uid
    return {
        "adl": "1",
        "availPos": "",
        "avgPx": s(pos.average_price),
        "baseBal": "",
        "baseBorrowed": "",
        "baseInterest": "",
        "bePx": "",
        "bizRefId": "",
        "bizRefType": "",
        "cTime": s(acct.position_ctime.get(inst.inst_id, venue.market_ms)),
        "ccy": inst.settle,
        "clSpotInUseAmt": "",
        "closeOrderAlgo": [],
        "deltaBS": greeks["deltaBS"],
        "deltaPA": greeks["deltaPA"],
        "fee": "",
        "fundingFee": s(-venue_funding(acct, inst, pos)),
        "gammaBS": greeks["gammaBS"],
        "gammaPA": greeks["gammaPA"],
        "hedgedPos": "",
        "idxPx": s(idx),
        "imr": s(im),
        "instId": inst.inst_id,
        "instType": inst.inst_type,
        "interest": "",
        "last": s(venue.last_trade(inst)[0]),
        "lever": "" if inst.is_option else str(SWAP_LEVER),
        "liab": "",
        "liabCcy": "",
        "liqPenalty": "0",
        "liqPx": "",
        "margin": "",
        "markPx": s(mark),
        "maxSpotInUseAmt": "",
        "mgnMode": "cross",
        "mgnRatio": "",
        "mmr": s(im / 2),
        "nonSettleAvgPx": "",
        "notionalUsd": s(notional_usd),
        "optVal": s(pos.size * inst.ct_mult * mark) if inst.is_option else "",
        "pendingCloseOrdLiabVal": "",
        "pnl": s(pos.realized_pnl * (inst.ct_mult if inst.is_option else inst.ct_val)),
        "pos": s(pos.size),
        "posCcy": "",
        "posId": f"{acct.creds.uid}{inst.code:06d}",  # stable: account and instrument
        "posSide": "net",
        "quoteBal": "",
        "quoteBorrowed": "",
        "quoteInterest": "",
        "realizedPnl": s(pos.realized_pnl * (inst.ct_mult if inst.is_option else inst.ct_val)),
        "settledPnl": "",
        "spotInUseAmt": "",
        "spotInUseCcy": "",
        "thetaBS": greeks["thetaBS"],
        "thetaPA": greeks["thetaPA"],
        "tradeId": "",
        "uTime": s(acct.position_utime.get(inst.inst_id, venue.market_ms)),
        "upl": s(upl),
        "uplLastPx": s(upl),
        "uplRatio": s(upl / cost) if cost else "0",
        "uplRatioLastPx": s(upl / cost) if cost else "0",
        "usdPx": s(idx) if inst.is_option else "",
        "vegaBS": greeks["vegaBS"],
        "vegaPA": greeks["vegaPA"],
        "uid": uid,
    }


def venue_funding(acct: OkxAccount, inst: OkxInstrument, pos: Position) -> float:
    """Funding paid on the position so far (settlement currency, paid > 0)."""
    return -pos.realized_funding


def balance_json(venue: OkxVenue, acct: OkxAccount, only: set[str] | None = None) -> dict[str, Any]:
    """`account/balance` data[0] (also the `account` channel's item)."""
    details = []
    total_usd = 0.0
    avail_usd = 0.0
    imr_usd = 0.0
    mmr_usd = 0.0
    # Futures mode margins each currency on its own; the unified modes margin the account
    # in USD and leave the per-currency `imr`/`mmr`/`mgnRatio` empty (OKX's balance docs:
    # "Applicable to Futures mode and when there is cross position").
    per_ccy = acct.acct_lv == "2"
    for ccy in venue.currencies(acct):
        if only and ccy not in only:
            continue
        eq = venue.eq(acct, ccy)
        imr, ordf = venue.frozen(acct, ccy)
        # maintenance: half the positions' initial margin (the add-on is initial only)
        mmr = (imr - max(0.0, acct.imr_add.get(ccy, 0.0))) / 2
        px = venue.usd_price(ccy)
        total_usd += eq * px
        upl = sum(
            venue.upl(venue.instruments[i], p)
            for i, p in acct.positions.items()
            if venue.instruments[i].settle == ccy and not venue.instruments[i].is_option
        )
        avail = eq - imr - ordf
        avail_usd += avail * px
        imr_usd += imr * px
        mmr_usd += mmr * px
        details.append(
            {
                "accAvgPx": "",
                "availBal": s(acct.cash.get(ccy, 0.0) - ordf),
                "availEq": s(avail),
                "borrowFroz": "",
                "cashBal": s(acct.cash.get(ccy, 0.0)),
                "ccy": ccy,
                "clSpotInUseAmt": "",
                "colBorrAutoConversion": "0",
                "collateralEnabled": True,
                "collateralRestrict": False,
                "crossLiab": "",
                "disEq": s(eq * px),
                "eq": s(eq),
                "eqUsd": s(eq * px),
                "fixedBal": "0",
                "frozenBal": s(imr + ordf),
                "imr": s(imr) if per_ccy else "",
                "interest": "",
                "isoEq": "0",
                "isoLiab": "",
                "isoUpl": "0",
                "liab": "",
                "maxLoan": "",
                "maxSpotInUse": "",
                "mgnRatio": "",
                "mmr": s(mmr) if per_ccy else "",
                "notionalLever": "",
                "openAvgPx": "",
                "ordFrozen": s(ordf),
                "rewardBal": "",
                "smtSyncEq": "0",
                "spotBal": "",
                "spotCopyTradingEq": "0",
                "spotInUseAmt": "",
                "spotIsoBal": "0",
                "spotUpl": "",
                "spotUplRatio": "",
                "stgyEq": "0",
                "totalPnl": "",
                "totalPnlRatio": "",
                "twap": "0",
                "uTime": s(venue.market_ms),
                "upl": s(upl),
                "uplLiab": "",
            }
        )
    return {
        "adjEq": s(total_usd),
        "availEq": s(avail_usd),
        "borrowFroz": "",
        "details": details,
        "imr": "" if per_ccy else s(imr_usd),
        "isoEq": "0",
        "mgnRatio": "" if per_ccy or mmr_usd <= 0 else s(total_usd / mmr_usd),
        "mmr": "" if per_ccy else s(mmr_usd),
        "notionalUsd": "",
        "notionalUsdForBorrow": "",
        "notionalUsdForFutures": "",
        "notionalUsdForOption": "",
        "notionalUsdForSwap": "",
        "ordFroz": "",
        "totalEq": s(total_usd),
        "uTime": s(venue.market_ms),
        "upl": "",
    }


def account_greeks_json(venue: OkxVenue, acct: OkxAccount, ccy: str) -> dict[str, Any]:
    """`account/greeks` for one coin: options in both conventions plus the coin delta of the
    swaps and futures on it (inverse and linear alike, both move with the coin)."""
    tot = dict.fromkeys(
        ("deltaBS", "deltaPA", "gammaBS", "gammaPA", "thetaBS", "thetaPA", "vegaBS", "vegaPA"),
        0.0,
    )
    for inst_id, pos in acct.positions.items():
        inst = venue.instruments[inst_id]
        if inst.base != ccy or pos.size == 0 or inst.is_spot:
            continue
        if inst.is_option:
            for k, v in option_greeks(venue, inst, pos.size).items():
                tot[k] += v
        else:
            d = coin_delta(venue, inst, pos.size)
            tot["deltaBS"] += d
            tot["deltaPA"] += d
    out: dict[str, Any] = {k: s(v) for k, v in tot.items()}
    out.update({"ccy": ccy, "ts": s(venue.market_ms)})
    return out


def opt_summary_json(venue: OkxVenue, inst: OkxInstrument) -> dict[str, Any]:
    r = venue.option_risk(inst)
    g = option_greeks(venue, inst, 1.0 / inst.ct_mult)  # per coin of underlying
    bids, asks = venue.levels(inst, 1)
    return {
        "instType": "OPTION",
        "instId": inst.inst_id,
        "uly": inst.uly,
        "instFamily": inst.uly,
        "delta": s(g["deltaPA"]),
        "gamma": s(g["gammaPA"]),
        "vega": s(g["vegaPA"]),
        "theta": s(g["thetaPA"]),
        "deltaBS": s(g["deltaBS"]),
        "gammaBS": s(g["gammaBS"]),
        "vegaBS": s(g["vegaBS"]),
        "thetaBS": s(g["thetaBS"]),
        "lever": s(venue.index_price(inst.base) / max(r.mark_coin, 1e-12) / 1e4),
        "markVol": s(r.iv),
        "bidVol": s(r.iv) if bids else "",
        "askVol": s(r.iv) if asks else "",
        "realVol": "",
        "volLv": s(r.iv),
        "fwdPx": s(r.forward),
        "ts": s(venue.market_ms),
    }


def expiry_code(inst: OkxInstrument) -> str:
    return yymmdd(inst.expiry_ms) if inst.expiry_ms is not None else ""
