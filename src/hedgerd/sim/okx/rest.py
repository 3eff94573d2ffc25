"""OKX REST v5 under `/api/v5/...`: envelope `{"code","msg","data"}`, per-order `sCode`/`sMsg`,
the signature with passphrase, per-endpoint rate limits (50011), `x-simulated-trading`, and
the same wire faults as the Deribit dialect (`venue: "okx"` faults; methods are OKX paths such
as `trade/batch-orders`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from hedgerd.sim.okx import errors, views
from hedgerd.sim.okx.accounts import OkxAccount, OkxOrder
from hedgerd.sim.okx.auth import verify_rest
from hedgerd.sim.okx.errors import OkxError, OrderRejectedError
from hedgerd.sim.okx.instruments import INST_TYPES, OkxInstrument
from hedgerd.sim.okx.limits import ORDER_ENDPOINTS, OkxRateLimiter
from hedgerd.sim.okx.venue import OkxVenue

if TYPE_CHECKING:
    from hedgerd.sim.okx.dialect import OkxDialect

log = structlog.get_logger(__name__)

MAX_LIMIT = 100
#: Index candle bars (OKX's UTC-aligned ones up to 4 h), ms.
INDEX_BARS_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1H": 3_600_000, "2H": 7_200_000, "4H": 14_400_000,
}  # fmt: skip
INDEX_CANDLES_RECENT = 1_440
BOOK_DEPTH_DEFAULT = 1
BOOK_DEPTH_MAX = 400
BOOK_FULL_DEPTH_MAX = 5000


@dataclass(slots=True)
class Call:
    """One REST request as a handler sees it: GET query or POST JSON body."""

    params: dict[str, Any]
    body: Any
    acct: OkxAccount | None
    #: The `expTime` header (request effective deadline, ms), if any.
    exp_time: str | None = None


Handler = Callable[["OkxRestApi", Call], Any]


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _envelope(code: str, msg: str, data: list[Any], timed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "data": data, "msg": msg}
    if timed:
        us = str(int(time.time() * 1_000_000))
        out["inTime"], out["outTime"] = us, us
    return out


def order_ack(
    order: OkxOrder | None, ts: int, req: Any, err: OrderRejectedError | None
) -> dict[str, Any]:
    """One item of a place/cancel reply."""
    cl = (
        order.cl_ord_id
        if order is not None
        else (str(req.get("clOrdId") or "") if isinstance(req, Mapping) else "")
    )
    tag = (
        order.tag
        if order is not None
        else (str(req.get("tag") or "") if isinstance(req, Mapping) else "")
    )
    out = {
        "clOrdId": cl,
        "ordId": order.ord_id if order is not None else "",
        "sCode": "0" if err is None else err.s_code,
        "sMsg": ("Order placed" if err is None else err.s_msg),
        "tag": tag,
        "ts": str(ts),
    }
    if err is not None:  # OKX adds subCode to failures only (okx.md §2)
        out["subCode"] = "1000" if err.s_code == errors.INSUFFICIENT else ""
    return out


def batch_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """code "0" all placed, "1" all failed ("All operations failed"), "2" some failed."""
    failed = sum(1 for i in items if i["sCode"] != "0")
    if failed == 0:
        return _envelope("0", "", items, timed=True)
    if failed == len(items):
        return _envelope("1", "All operations failed", items, timed=True)
    return _envelope("2", "Batch operation partially succeeded", items, timed=True)


class OkxRestApi:
    """The REST endpoints; `dialect` gives the venue, faults, limiter and counters."""

    def __init__(self, dialect: OkxDialect) -> None:
        self.d = dialect
        self.routes: dict[tuple[str, str], tuple[bool, Handler]] = {
            ("GET", "public/time"): (False, OkxRestApi.time),
            ("GET", "public/instruments"): (False, OkxRestApi.instruments),
            ("GET", "market/ticker"): (False, OkxRestApi.ticker),
            ("GET", "market/tickers"): (False, OkxRestApi.tickers),
            ("GET", "market/books"): (False, OkxRestApi.books),
            ("GET", "market/books-full"): (False, OkxRestApi.books_full),
            ("GET", "market/index-tickers"): (False, OkxRestApi.index_tickers),
            ("GET", "market/index-candles"): (False, OkxRestApi.index_candles),
            ("GET", "market/history-index-candles"): (False, OkxRestApi.history_index_candles),
            ("GET", "public/funding-rate"): (False, OkxRestApi.funding_rate),
            ("GET", "public/mark-price"): (False, OkxRestApi.mark_price),
            ("GET", "public/opt-summary"): (False, OkxRestApi.opt_summary),
            ("GET", "asset/currencies"): (True, OkxRestApi.currencies),
            ("GET", "asset/balances"): (True, OkxRestApi.asset_balances),
            ("GET", "account/balance"): (True, OkxRestApi.balance),
            ("GET", "account/positions"): (True, OkxRestApi.positions),
            ("GET", "account/greeks"): (True, OkxRestApi.greeks),
            ("GET", "account/config"): (True, OkxRestApi.config),
            ("POST", "account/set-position-mode"): (True, OkxRestApi.set_position_mode),
            ("POST", "trade/order"): (True, OkxRestApi.place_one),
            ("POST", "trade/batch-orders"): (True, OkxRestApi.place_batch),
            ("POST", "trade/cancel-order"): (True, OkxRestApi.cancel_one),
            ("POST", "trade/cancel-batch-orders"): (True, OkxRestApi.cancel_batch),
            ("GET", "trade/order"): (True, OkxRestApi.get_order),
            ("GET", "trade/orders-pending"): (True, OkxRestApi.orders_pending),
            ("GET", "trade/orders-history"): (True, OkxRestApi.orders_history),
            ("GET", "trade/fills"): (True, OkxRestApi.fills),
            ("GET", "trade/fills-history"): (True, OkxRestApi.fills),
            ("POST", "trade/cancel-all-after"): (True, OkxRestApi.cancel_all_after),
        }

    @property
    def venue(self) -> OkxVenue:
        return self.d.venue

    @property
    def limiter(self) -> OkxRateLimiter:
        return self.d.limiter

    # ------------------------------------------------------------------ transport
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"].strip("/")
        method = request.method
        self.d.counters.http_requests += 1
        body_text = await request.text() if method == "POST" else ""
        try:
            return await self._handle(request, path, method, body_text)
        except OkxError as exc:
            return self._reply(_envelope(exc.code, exc.msg, []), exc.http_status)
        except _NoReplyError as exc:
            return await self._no_reply(request, exc)
        except Exception:
            self.d.counters.internal_errors += 1
            log.exception("okx_rest_internal_error", path=path)
            return self._reply(_envelope("50026", "System error. Try again later.", []), 500)

    async def _handle(
        self, request: web.Request, path: str, method: str, body_text: str
    ) -> web.StreamResponse:
        venue = self.venue
        route = self.routes.get((method, path))
        if route is None:
            if any(p == path for (_, p) in self.routes):
                raise OkxError("50015", f"Invalid HTTP method {method} for {path}", 405)
            raise OkxError(errors.ENDPOINT_NOT_FOUND, f"Endpoint request not found: {path}", 404)
        private, handler = route
        if (
            private
            and self.d.require_simulated_header
            and request.headers.get("x-simulated-trading") != "1"
        ):
            raise OkxError(
                errors.WRONG_ENVIRONMENT, "APIKey does not match current environment.", 401
            )
        venue.sync()
        now = venue.now_ms()
        faults = self.d.request_faults(path, "http", now)
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        if faults.http_status is not None:
            return web.Response(status=faults.http_status, text="Service Unavailable")
        if faults.rate_limit:
            raise OkxError(errors.RATE_LIMITED, "Too Many Requests", 429)
        acct: OkxAccount | None = None
        if private:
            creds = verify_rest(
                request.headers, method, request.raw_path, body_text,
                venue.credentials_for_key, self.d.auth_clocks(),
            )  # fmt: skip
            acct = venue.accounts[creds.account_id]
        who = acct.account_id if acct is not None else (request.remote or "?")
        params = dict(request.query)
        body: Any = None
        if method == "POST":
            if not body_text:
                raise OkxError(errors.BODY_EMPTY, "Body cannot be empty.", 400)
            try:
                body = json.loads(body_text)
            except ValueError:
                raise OkxError(errors.BODY_EMPTY, "Invalid request body.", 400) from None
        if path in ORDER_ENDPOINTS:
            items = body if isinstance(body, list) else [body]
            for it in items:
                inst_id = str(it.get("instId", "")) if isinstance(it, Mapping) else ""
                if not self.limiter.admit(who, path, inst_id):
                    raise OkxError(errors.RATE_LIMITED, "Too Many Requests", 429)
        elif not self.limiter.admit(who, path):
            raise OkxError(errors.RATE_LIMITED, "Too Many Requests", 429)
        if faults.reject is not None and path in ORDER_ENDPOINTS:
            items = body if isinstance(body, list) else [body]
            err = OrderRejectedError(str(faults.reject["code"]), str(faults.reject["message"]))
            return self._reply(batch_reply([order_ack(None, now, it, err) for it in items]))
        if path in ORDER_ENDPOINTS:
            self.d.counters.orders_received += 1
            for it in body if isinstance(body, list) else [body]:
                cl = str(it.get("clOrdId", "")) if isinstance(it, Mapping) else ""
                self.d.counters.received_by_cl_ord_id[cl] += 1
        out = handler(self, Call(params, body, acct, request.headers.get("expTime")))
        if faults.timeout_mode is not None:
            raise _NoReplyError(faults.timeout_mode, faults.hold_s)
        if isinstance(out, dict):  # a full envelope (orders)
            return self._reply(out)
        return self._reply(_envelope("0", "", out))

    @staticmethod
    def _reply(data: dict[str, Any], status: int = 200) -> web.Response:
        return web.Response(status=status, text=dumps(data), content_type="application/json")

    async def _no_reply(self, request: web.Request, exc: _NoReplyError) -> web.StreamResponse:
        if exc.mode == "close":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        await asyncio.sleep(exc.hold_s)
        return web.Response(status=504, text="Gateway Timeout")

    # ------------------------------------------------------------------ helpers
    def _inst(self, inst_id: Any) -> OkxInstrument:
        inst = self.venue.lookup(str(inst_id or ""))
        if inst is None:
            if not inst_id:
                raise OkxError(errors.PARAM_ERROR, "Parameter instId error", 400)
            raise OkxError(errors.BAD_INSTRUMENT, "Instrument ID does not exist.", 400)
        return inst

    def _filter(self, params: Mapping[str, Any]) -> list[OkxInstrument]:
        """Live instruments matching instType (required) and uly/instFamily when given."""
        t = params.get("instType")
        if t not in INST_TYPES:
            raise OkxError(errors.PARAM_ERROR, "Parameter instType error", 400)
        uly = params.get("uly") or params.get("instFamily")
        if t == "OPTION" and not uly:
            raise OkxError(errors.PARAM_ERROR, "Parameter instFamily error", 400)
        out = [i for i in self.venue.live() if i.inst_type == t]
        if uly:
            out = [i for i in out if i.uly == uly]
        if params.get("instId"):
            out = [i for i in out if i.inst_id == params["instId"]]
        return out

    @staticmethod
    def _limit(params: Mapping[str, Any]) -> int:
        try:
            n = int(params.get("limit", MAX_LIMIT))
        except (TypeError, ValueError):
            raise OkxError(errors.PARAM_ERROR, "Parameter limit error", 400) from None
        return max(1, min(MAX_LIMIT, n))

    @staticmethod
    def _acct(call: Call) -> OkxAccount:
        assert call.acct is not None
        return call.acct

    # ------------------------------------------------------------------ public
    def time(self, call: Call) -> Any:
        return [{"ts": str(self.venue.now_ms())}]

    def instruments(self, call: Call) -> Any:
        return [views.instrument_json(i) for i in self._filter(call.params)]

    def ticker(self, call: Call) -> Any:
        return [views.ticker_json(self.venue, self._inst(call.params.get("instId")))]

    def tickers(self, call: Call) -> Any:
        return [views.ticker_json(self.venue, i) for i in self._filter(call.params)]

    def books_full(self, call: Call) -> Any:
        return self.books(call, BOOK_FULL_DEPTH_MAX)

    def books(self, call: Call, max_depth: int = BOOK_DEPTH_MAX) -> Any:
        inst = self._inst(call.params.get("instId"))
        try:
            depth = int(call.params.get("sz", BOOK_DEPTH_DEFAULT))
        except ValueError:
            raise OkxError(errors.PARAM_ERROR, "Parameter sz error", 400) from None
        depth = max(1, min(depth, max_depth))
        bids, asks = self.venue.levels(inst, depth)
        return [
            {
                "asks": views.levels_json(asks),
                "bids": views.levels_json(bids),
                "ts": str(self.venue.market_ms),
            }
        ]

    def index_tickers(self, call: Call) -> Any:
        inst_id = call.params.get("instId")
        quote = call.params.get("quoteCcy")
        if not inst_id and not quote:
            raise OkxError(errors.PARAM_ERROR, "Parameter instId error", 400)
        out = []
        for ccy in self.venue.world.markets:
            for q in ("USD", "USDT"):
                name = f"{ccy}-{q}"
                if (inst_id and inst_id != name) or (quote and quote != q):
                    continue
                px = round(self.venue.index_price(ccy), 4)  # as the Deribit dialect shows it
                out.append(
                    {
                        "instId": name,
                        "idxPx": views.s(px),
                        "high24h": views.s(px),
                        "low24h": views.s(px),
                        "open24h": views.s(px),
                        "sodUtc0": views.s(px),
                        "sodUtc8": views.s(px),
                        "ts": str(self.venue.market_ms),
                    }
                )
        return out

    def index_candles(self, call: Call) -> Any:
        """The newest candles (OKX keeps the latest 1,440 here)."""
        return self._index_candles(call, INDEX_CANDLES_RECENT)

    def history_index_candles(self, call: Call) -> Any:
        return self._index_candles(call, None)

    def _index_candles(self, call: Call, recent: int | None) -> Any:
        """[ts, o, h, l, c, confirm] of the index, newest first: stamped with the open time,
        open the index then, close the index at the bar's end (now while it forms, confirm
        "0"), high and low of the two (`sim.index_history`); `after` / `before` keep those
        opened before / after the time, the newest `limit` (100 at most) of them."""
        p = call.params
        inst_id = str(p.get("instId") or "")
        ccy, _, quote = inst_id.partition("-")
        if quote not in ("USD", "USDT") or ccy not in self.venue.world.markets:
            raise OkxError(errors.PARAM_ERROR, "Parameter instId error", 400)
        step = INDEX_BARS_MS.get(str(p.get("bar") or "1m"))
        if step is None:
            raise OkxError(errors.PARAM_ERROR, "Parameter bar error", 400)
        try:
            after = int(p["after"]) if p.get("after") else None
            before = int(p["before"]) if p.get("before") else None
        except (TypeError, ValueError):
            raise OkxError(errors.PARAM_ERROR, "Parameter after error", 400) from None
        now = self.venue.now_ms()
        newest = now // step * step
        if after is not None:
            newest = min(newest, (after - 1) // step * step)
        oldest = newest - (self._limit(p) - 1) * step
        if before is not None:
            oldest = max(oldest, before // step * step + step)
        if recent is not None:
            oldest = max(oldest, now // step * step - (recent - 1) * step)
        out = []
        for t in range(newest, oldest - 1, -step):
            o = self.venue.world.index_at(ccy, t)
            c = self.venue.world.index_at(ccy, min(t + step, now))
            hi, lo = max(o, c), min(o, c)
            out.append([str(t), *(views.s(round(x, 4)) for x in (o, hi, lo, c)),
                        "1" if t + step <= now else "0"])  # fmt: skip
        return out

    def funding_rate(self, call: Call) -> Any:
        inst_id = call.params.get("instId")
        swaps = [i for i in self.venue.live() if i.is_swap]
        if inst_id != "ANY":
            inst = self._inst(inst_id)
            if not inst.is_swap:
                raise OkxError(errors.PARAM_ERROR, "Parameter instId error", 400)
            swaps = [inst]
        v = self.venue
        out = []
        for inst in swaps:
            rate = views.s(v.funding_rate(inst))
            out.append(
                {
                    "fundingRate": rate,
                    "fundingTime": str(v.next_funding_ms()),
                    "nextFundingTime": str(v.next_funding_ms() + 8 * 3_600_000),
                    "nextFundingRate": "",
                    "instId": inst.inst_id,
                    "instType": "SWAP",
                    "method": "current_period",
                    "formulaType": "noRate",
                    "maxFundingRate": "0.0075",
                    "minFundingRate": "-0.0075",
                    "premium": views.s(v.spec.swap_basis_bps * 1e-4),
                    "settFundingRate": rate,
                    "settState": "settled",
                    "interestRate": "0.0001",
                    "impactValue": "",
                    "ts": str(v.market_ms),
                }
            )
        return out

    def mark_price(self, call: Call) -> Any:
        params = dict(call.params)
        params.setdefault("instType", "SWAP")
        if params["instType"] == "OPTION" and not (params.get("uly") or params.get("instFamily")):
            insts = [i for i in self.venue.live() if i.is_option]
        else:
            insts = self._filter(params)
        return [
            {
                "instType": i.inst_type,
                "instId": i.inst_id,
                "markPx": views.s(self.venue.mark_price(i)),
                "ts": str(self.venue.market_ms),
            }
            for i in insts
        ]

    def opt_summary(self, call: Call) -> Any:
        params = {**call.params, "instType": "OPTION"}
        insts = self._filter(params)
        exp = call.params.get("expTime")
        if exp:
            insts = [i for i in insts if views.expiry_code(i) == exp]
        return [views.opt_summary_json(self.venue, i) for i in insts]

    # ------------------------------------------------------------------ account
    def currencies(self, call: Call) -> Any:
        names = {"BTC": "Bitcoin", "ETH": "Ethereum", "USDT": "Tether"}
        return [
            {
                "ccy": c,
                "chain": f"{c}-{'ERC20' if c != 'BTC' else 'Bitcoin'}",
                "name": n,
                "canDep": True,
                "canWd": True,
                "canInternal": True,
                "minWd": "0.001",
                "maxWd": "1000000",
                "minFee": "0.0001",
                "maxFee": "0.001",
                "fee": "0.0002",
                "wdTickSz": "8",
                "mainNet": True,
                "logoLink": "",
                "usedWdQuota": "0",
                "wdQuota": "10000000",
            }
            for c, n in names.items()
        ]

    def asset_balances(self, call: Call) -> Any:
        return []  # the funding account holds nothing: everything trades in the unified one

    def balance(self, call: Call) -> Any:
        ccy = call.params.get("ccy")
        only = set(str(ccy).split(",")) if ccy else None
        return [views.balance_json(self.venue, self._acct(call), only)]

    def positions(self, call: Call) -> Any:
        acct = self._acct(call)
        ids = call.params.get("instId")
        wanted = set(str(ids).split(",")) if ids else None
        t = call.params.get("instType")
        out = []
        for inst_id, pos in acct.positions.items():
            inst = self.venue.instruments[inst_id]
            if pos.size == 0 or (wanted and inst_id not in wanted):
                continue
            if t and t != inst.inst_type:
                continue
            item = views.position_json(self.venue, acct, inst, pos)
            out.append(self.d.offset_position(item, acct))
        return out

    def greeks(self, call: Call) -> Any:
        acct = self._acct(call)
        ccy = call.params.get("ccy")
        ccys = [str(ccy)] if ccy else list(self.venue.world.markets)
        return [
            self.d.offset_greeks(views.account_greeks_json(self.venue, acct, c), acct.account_id)
            for c in ccys
        ]

    def config(self, call: Call) -> Any:
        acct = self._acct(call)
        return [
            {
                "uid": acct.creds.uid,
                "mainUid": acct.creds.uid,
                "acctLv": acct.acct_lv,
                "posMode": acct.pos_mode,
                "autoLoan": False,
                "greeksType": "PA",
                "level": "Lv1",
                "levelTmp": "",
                "ctIsoMode": "automatic",
                "mgnIsoMode": "automatic",
                "spotOffsetType": "",
                "roleType": "0",
                "traderInsts": [],
                "spotRoleType": "0",
                "spotTraderInsts": [],
                "opAuth": "1",
                "kycLv": "2",
                "label": acct.account_id,
                "ip": "",
                "perm": "read_only,trade",
                "liquidationGear": "-1",
                "enableSpotBorrow": False,
                "spotBorrowAutoRepay": False,
                "type": "0",
            }
        ]

    def set_position_mode(self, call: Call) -> Any:
        mode = call.body.get("posMode") if isinstance(call.body, Mapping) else None
        if mode != "net_mode":  # the simulated account is unified in net mode only
            raise OkxError(errors.PARAM_ERROR, "Parameter posMode error", 400)
        return [{"posMode": mode}]

    # ------------------------------------------------------------------ trading
    def expired(self, exp_time: Any) -> OrderRejectedError | None:
        """The refusal of a place request whose `expTime` (ms; REST header, WebSocket
        field) has passed on the venue's clock, else None. A malformed one is a parameter
        error."""
        if exp_time is None or exp_time == "":
            return None
        try:
            deadline = int(str(exp_time))
        except ValueError:
            return errors.param_error("expTime")
        if self.venue.now_ms() <= deadline:
            return None
        self.d.counters.requests_expired += 1
        return OrderRejectedError(
            errors.REQUEST_EXPIRED,
            "The expTime can't be earlier than the current system time. "
            "Please adjust the expTime and try again.",
        )

    def place_items(
        self, acct: OkxAccount, items: list[Any], exp_time: Any = None
    ) -> list[dict[str, Any]]:
        out = []
        for req in items:
            now = self.venue.now_ms()
            late = self.expired(exp_time)
            if late is not None:
                out.append(order_ack(None, now, req, late))
                continue
            try:
                order = self.venue.place(acct, req)
                self.d.counters.orders_accepted += 1
                self.d.counters.accepted_by_cl_ord_id[order.cl_ord_id] += 1
                out.append(order_ack(order, now, req, None))
            except OrderRejectedError as err:
                out.append(order_ack(None, now, req, err))
        return out

    def place_one(self, call: Call) -> Any:
        if not isinstance(call.body, Mapping):
            raise OkxError(errors.PARAM_ERROR, "Parameter body error", 400)
        return batch_reply(self.place_items(self._acct(call), [call.body], call.exp_time))

    def place_batch(self, call: Call) -> Any:
        body = call.body
        if not isinstance(body, list) or not body or len(body) > 20:
            raise OkxError(errors.PARAM_ERROR, "Parameter body error", 400)
        return batch_reply(self.place_items(self._acct(call), body, call.exp_time))

    def cancel_items(self, acct: OkxAccount, items: list[Any]) -> list[dict[str, Any]]:
        out = []
        for req in items:
            now = self.venue.now_ms()
            try:
                order = self.venue.cancel(acct, req)
                item = order_ack(order, now, req, None)
                item["sMsg"] = ""
            except OrderRejectedError as err:
                item = order_ack(None, now, req, err)
                if isinstance(req, Mapping):
                    item["ordId"] = str(req.get("ordId") or "")
            item.pop("tag", None)
            item.pop("subCode", None)
            out.append(item)
        return out

    def cancel_one(self, call: Call) -> Any:
        if not isinstance(call.body, Mapping):
            raise OkxError(errors.PARAM_ERROR, "Parameter body error", 400)
        return batch_reply(self.cancel_items(self._acct(call), [call.body]))

    def cancel_batch(self, call: Call) -> Any:
        if not isinstance(call.body, list) or not call.body:
            raise OkxError(errors.PARAM_ERROR, "Parameter body error", 400)
        return batch_reply(self.cancel_items(self._acct(call), call.body))

    def get_order(self, call: Call) -> Any:
        acct = self._acct(call)
        p = call.params
        if not p.get("instId"):
            raise OkxError(errors.PARAM_ERROR, "Parameter instId error", 400)
        if not p.get("ordId") and not p.get("clOrdId"):
            raise OkxError(errors.PARAM_ERROR, "Parameter ordId error", 400)
        order = self.venue.find_order(acct, p.get("instId"), p.get("ordId"), p.get("clOrdId"))
        if order is None:
            raise OkxError(errors.ORDER_NOT_EXIST, "Order does not exist")
        return [views.order_json(order)]

    def _order_filter(self, call: Call, orders: list[OkxOrder]) -> list[OkxOrder]:
        p = call.params
        out = orders
        if p.get("instType"):
            out = [o for o in out if o.okx is not None and o.okx.inst_type == p["instType"]]
        if p.get("instId"):
            out = [o for o in out if o.okx is not None and o.okx.inst_id == p["instId"]]
        if p.get("ordType"):
            out = [o for o in out if o.ord_type == p["ordType"]]
        # OKX pages order lists by `ordId`: `after` = older than it, `before` = newer.
        if p.get("after"):
            out = [o for o in out if int(o.ord_id) < self._ord_id(p["after"])]
        if p.get("before"):
            out = [o for o in out if int(o.ord_id) > self._ord_id(p["before"])]
        return out

    @staticmethod
    def _ord_id(value: Any) -> int:
        """An `after`/`before` cursor (an `ordId` or `billId`) as a number."""
        try:
            return int(str(value))
        except ValueError:
            raise OkxError(errors.PARAM_ERROR, "Parameter after error", 400) from None

    def orders_pending(self, call: Call) -> Any:
        acct = self._acct(call)
        orders = sorted(acct.open_orders.values(), key=lambda o: -int(o.ord_id))
        limit = self._limit(call.params)
        return [views.order_json(o) for o in self._order_filter(call, orders)][:limit]

    def orders_history(self, call: Call) -> Any:
        acct = self._acct(call)
        if call.params.get("instType") not in INST_TYPES:
            raise OkxError(errors.PARAM_ERROR, "Parameter instType error", 400)
        orders = [
            o for o in self.venue.orders.values()
            if o.account_id == acct.account_id and not o.is_open
        ]  # fmt: skip
        orders.sort(key=lambda o: -int(o.ord_id))
        limit = self._limit(call.params)
        return [views.order_json(o) for o in self._order_filter(call, orders)][:limit]

    def fills(self, call: Call) -> Any:
        acct = self._acct(call)
        p = call.params
        out = []
        for f in reversed(acct.fills):
            inst = f.order.okx
            assert inst is not None
            if p.get("instType") and inst.inst_type != p["instType"]:
                continue
            if p.get("instId") and inst.inst_id != p["instId"]:
                continue
            if p.get("ordId") and f.order.ord_id != p["ordId"]:
                continue
            if p.get("begin") and f.ts < int(p["begin"]):
                continue
            if p.get("end") and f.ts > int(p["end"]):
                continue
            # Paged by billId, as OKX does: `after` = older than it, `before` = newer.
            if p.get("after") and int(f.bill_id) >= self._ord_id(p["after"]):
                continue
            if p.get("before") and int(f.bill_id) <= self._ord_id(p["before"]):
                continue
            out.append(views.fill_json(f))
        return out[: self._limit(p)]

    def cancel_all_after(self, call: Call) -> Any:
        body = call.body if isinstance(call.body, Mapping) else {}
        raw = body.get("timeOut")
        try:
            timeout = int(str(raw))
        except ValueError:
            raise OkxError(errors.PARAM_ERROR, "Parameter timeOut error", 400) from None
        try:
            trigger = self.venue.set_cancel_all_after(self._acct(call), timeout)
        except OrderRejectedError as err:
            raise OkxError(err.s_code, err.s_msg, 400) from None
        return [
            {
                "triggerTime": str(trigger),
                "tag": str(body.get("tag") or ""),
                "ts": str(self.venue.now_ms()),
            }
        ]


class _NoReplyError(Exception):
    def __init__(self, mode: str, hold_s: float) -> None:
        super().__init__(mode)
        self.mode = mode
        self.hold_s = hold_s


Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
