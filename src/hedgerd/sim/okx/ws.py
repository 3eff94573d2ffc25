"""OKX WebSocket v5 (`/ws/v5/public`, `/ws/v5/private`, `/ws/v5/business`).

Ops: `login` (epoch-seconds signature), `subscribe`/`unsubscribe` (the reply echoes each
`arg` exactly: ccxt routes pushes on `arg.channel` and hashes on `arg.instId`), text
`ping` -> `pong`, and on a logged-in connection `order`, `batch-orders`, `cancel-order`,
`batch-cancel-orders` (sharing the REST order rate limit). Channels: public `tickers`,
`books` (snapshot, then updates chained by `seqId`/`prevSeqId`, each with the CRC32 checksum
of the resulting top 25 levels), `books5`, `bbo-tbt`, `books-l2-tbt`, `books50-l2-tbt`,
`mark-price`; private `orders`, `positions` (snapshot on subscribe), `account`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import WSMsgType, web

from hedgerd.sim.okx import errors, views
from hedgerd.sim.okx.accounts import OkxCredentials, OkxOrder
from hedgerd.sim.okx.auth import verify_ws_login
from hedgerd.sim.okx.errors import OrderRejectedError
from hedgerd.sim.okx.instruments import INST_TYPES, OkxInstrument
from hedgerd.sim.okx.rest import order_ack
from hedgerd.sim.okx.venue import OkxVenue
from hedgerd.sim.ws_outbox import WsOutbox

if TYPE_CHECKING:
    from hedgerd.sim.okx.dialect import OkxDialect

log = structlog.get_logger(__name__)

BOOK_CHANNELS = {"books": 400, "books-l2-tbt": 400, "books50-l2-tbt": 50}
SNAPSHOT_CHANNELS = {"books5": 5, "bbo-tbt": 1}
PUBLIC_CHANNELS = frozenset({*BOOK_CHANNELS, *SNAPSHOT_CHANNELS, "tickers", "mark-price"})
PRIVATE_CHANNELS = frozenset({"orders", "positions", "account"})
ORDER_OPS = frozenset({"order", "batch-orders", "cancel-order", "batch-cancel-orders"})
CHECKSUM_LEVELS = 25
TICKER_EVERY_MS = 1000
POSITIONS_EVERY_MS = 5000
MAX_QUEUE = 20_000


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def book_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """OKX's order-book checksum (okx.md §3): the first 25 levels interleaved as
    `bidPx:bidSz:askPx:askSz:...` (missing levels skipped), CRC32 as a signed 32-bit int."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts += [bids[i][0], bids[i][1]]
        if i < len(asks):
            parts += [asks[i][0], asks[i][1]]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


@dataclass(slots=True)
class _BookFeed:
    """One instrument's `books` stream: what subscribers were last sent, and its seqId."""

    seq_id: int
    bids: dict[str, list[str]]  # px string -> level
    asks: dict[str, list[str]]


@dataclass(slots=True)
class _Sub:
    arg: dict[str, Any]
    channel: str
    inst: OkxInstrument | None


@dataclass(slots=True, eq=False)
class OkxWsSession:
    hub: OkxWsHub
    conn_id: str
    scope: str
    ws: web.WebSocketResponse
    request: web.Request
    creds: OkxCredentials | None = None
    subs: list[_Sub] = field(default_factory=list)
    outbox: WsOutbox | None = None  # set by `start`, in the handler's loop

    def start(self) -> None:
        self.outbox = WsOutbox(
            self.ws, self.request, max_queue=MAX_QUEUE, name=f"okx-ws-{self.conn_id}",
            on_overflow=self._overflowed,
        )  # fmt: skip

    @property
    def account_id(self) -> str | None:
        return self.creds.account_id if self.creds is not None else None

    @property
    def closed(self) -> bool:
        return self.outbox is None or self.outbox.closed

    def _overflowed(self, queued: int) -> None:
        log.warning("okx_ws_send_queue_overflow", conn_id=self.conn_id)

    def send(self, data: Any) -> None:
        self.send_text(data if isinstance(data, str) else dumps(data))

    def send_text(self, text: str) -> None:
        if self.outbox is not None:
            self.outbox.send_text(text)

    def abort(self) -> None:
        if self.outbox is not None:
            self.outbox.abort()

    def stop(self) -> None:
        if self.outbox is not None:
            self.outbox.stop()


class OkxWsHub:
    """Sessions, subscriptions and the pushes of the OKX venue (its `VenueListener`)."""

    def __init__(self, dialect: OkxDialect) -> None:
        self.d = dialect
        self.sessions: dict[str, OkxWsSession] = {}
        self._ids = itertools.count(1)
        self._books: dict[tuple[str, str], _BookFeed] = {}  # (channel, instId)
        #: instId -> (ms sent, what it showed)
        self._last_ticker: dict[str, tuple[int, views.TickerValues]] = {}
        self._last_positions_ms = 0
        self._pushed_fills: dict[str, int] = {}  # ordId -> fills pushed
        self._flat_sent: dict[str, set[str]] = {}  # account -> instIds pushed as pos 0
        self._venue: OkxVenue | None = None

    def attach(self, venue: OkxVenue) -> None:
        self._venue = venue
        venue.listener = self
        self._books.clear()
        self._last_ticker.clear()
        self._pushed_fills.clear()

    @property
    def venue(self) -> OkxVenue:
        return self.d.venue

    # ------------------------------------------------------------------ transport
    def handler(self, scope: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, scope)

        return handle

    async def _serve(self, request: web.Request, scope: str) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = OkxWsSession(self, f"{next(self._ids):08x}", scope, ws, request)
        session.start()
        self.sessions[session.conn_id] = session
        self.d.counters.ws_connections += 1
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._message(session, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
                if session.closed:
                    break
        finally:
            session.stop()
            self.sessions.pop(session.conn_id, None)
        return ws

    def drop(self, account_id: str | None) -> int:
        n = 0
        for s in list(self.sessions.values()):
            if account_id is None or s.account_id == account_id:
                s.abort()
                n += 1
        self.d.counters.ws_dropped += n
        return n

    def _error(self, session: OkxWsSession, code: str, msg: str, req_id: Any = None) -> None:
        self.d.counters.errors[code] += 1
        out: dict[str, Any] = {
            "event": "error",
            "code": code,
            "msg": msg,
            "connId": session.conn_id,
        }
        if req_id is not None:
            out = {"id": req_id, **out}
        session.send(out)

    async def _message(self, session: OkxWsSession, text: str) -> None:
        self.d.counters.ws_messages += 1
        if text == "ping":
            session.send_text("pong")
            return
        try:
            msg = json.loads(text)
        except ValueError:
            self._error(session, errors.WS_BAD_REQUEST, f"Invalid request: {text[:200]}")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
            self._error(session, errors.WS_BAD_REQUEST, f"Invalid request: {text[:200]}")
            return
        op = msg["op"]
        args = msg.get("args")
        req_id = msg.get("id")
        venue = self.venue
        try:
            venue.sync()
            now = venue.now_ms()
            faults = self.d.request_faults(op, "ws", now)
            if faults.latency_s:
                await asyncio.sleep(faults.latency_s)
            if faults.ws_drop:
                session.abort()
                return
            if faults.http_status is not None:
                self._op_error(session, op, req_id, "50026", "System error. Try again later.")
                return
            if faults.rate_limit:
                self._op_error(session, op, req_id, errors.RATE_LIMITED, "Too Many Requests")
                if faults.terminate:
                    session.abort()
                return
            if not isinstance(args, list):
                self._error(session, errors.WS_BAD_ARGS, "Invalid args", req_id)
                return
            if op == "login":
                self._login(session, args)
            elif op in ("subscribe", "unsubscribe"):
                for arg in args:
                    self._subscribe(session, arg, op == "subscribe")
            elif op in ORDER_OPS:
                reply = self._order_op(session, op, args, req_id, faults.reject, msg.get("expTime"))
                if faults.timeout_mode is not None:
                    if faults.timeout_mode == "close":
                        session.abort()
                    return
                session.send(reply)
            else:
                self._error(session, errors.WS_BAD_REQUEST, f"Invalid request: {text[:200]}")
        except Exception:
            self.d.counters.internal_errors += 1
            log.exception("okx_ws_internal_error", op=op)
            self._error(session, "50026", "System error. Try again later.", req_id)

    def _op_error(self, session: OkxWsSession, op: str, req_id: Any, code: str, msg: str) -> None:
        self.d.counters.errors[code] += 1
        if req_id is not None:
            session.send({"id": req_id, "op": op, "code": code, "msg": msg, "data": []})
        else:
            self._error(session, code, msg)

    # ------------------------------------------------------------------ login, subscribe
    def _login(self, session: OkxWsSession, args: list[Any]) -> None:
        arg = args[0] if args and isinstance(args[0], Mapping) else {}
        venue = self.venue
        creds = verify_ws_login(arg, venue.credentials_for_key, self.d.auth_clocks())
        if creds is None:
            self._error(session, errors.WS_LOGIN_FAILED, "Login failed.")
            return
        session.creds = creds
        session.send({"event": "login", "code": "0", "msg": "", "connId": session.conn_id})

    def _subscribe(self, session: OkxWsSession, arg: Any, on: bool) -> None:
        if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str):
            self._error(session, errors.WS_BAD_REQUEST, f"Invalid request: {dumps(arg)}")
            return
        channel = arg["channel"]
        private = channel in PRIVATE_CHANNELS
        if channel not in PUBLIC_CHANNELS and not private:
            self._error(session, "60018", f"Wrong URL or channel:{channel} doesn't exist.")
            return
        if private and session.scope != "private":
            self._error(session, "60018", f"Wrong URL or channel:{channel} doesn't exist.")
            return
        if private and session.creds is None:
            self._error(session, errors.WS_NOT_LOGGED_IN, "Please log in")
            return
        inst: OkxInstrument | None = None
        if not private:
            inst = self.venue.lookup(str(arg.get("instId", "")))
            if inst is None:
                self._error(
                    session, errors.WS_BAD_ARGS, f"Invalid args: instId doesn't exist:{dumps(arg)}"
                )
                return
        elif "instType" in arg and arg["instType"] not in (*INST_TYPES, "ANY", "MARGIN"):
            self._error(session, errors.WS_BAD_ARGS, f"Invalid args: {dumps(arg)}")
            return
        if on:
            if not any(s.arg == arg for s in session.subs):
                session.subs.append(_Sub(dict(arg), channel, inst))
        else:
            session.subs = [s for s in session.subs if s.arg != arg]
        session.send(
            {
                "event": "subscribe" if on else "unsubscribe",
                "arg": arg,
                "connId": session.conn_id,
            }
        )
        if on:
            self._initial(session, _Sub(dict(arg), channel, inst))

    def _initial(self, session: OkxWsSession, sub: _Sub) -> None:
        venue = self.venue
        if sub.inst is not None:
            if sub.channel in BOOK_CHANNELS:
                feed = self._feed(sub.channel, sub.inst)
                bids = list(feed.bids.values())
                asks = list(feed.asks.values())
                session.send(
                    self._book_msg(sub.arg, "snapshot", bids, asks, -1, feed.seq_id, bids, asks)
                )
            elif sub.channel in SNAPSHOT_CHANNELS:
                session.send(self._snapshot_msg(sub.arg, sub.inst))
            elif sub.channel == "tickers":
                session.send({"arg": sub.arg, "data": [views.ticker_json(venue, sub.inst)]})
            elif sub.channel == "mark-price":
                session.send({"arg": sub.arg, "data": [self._mark(sub.inst)]})
            return
        acct = venue.accounts.get(session.account_id or "")
        if acct is None:
            return
        if sub.channel == "positions":
            session.send(self._positions_msg(session, sub, "snapshot", only=None))
        elif sub.channel == "account":
            session.send(
                {"arg": self._private_arg(session, sub), "data": [self._balance(acct, sub)]}
            )

    # ------------------------------------------------------------------ orders over WS
    def _order_op(
        self,
        session: OkxWsSession,
        op: str,
        args: list[Any],
        req_id: Any,
        reject: Mapping[str, Any] | None,
        exp_time: Any = None,
    ) -> dict[str, Any]:
        if session.creds is None:
            return {"id": req_id, "op": op, "code": errors.WS_NOT_LOGGED_IN, "msg": "Please log in",
                    "data": []}  # fmt: skip
        venue = self.venue
        acct = venue.accounts[session.creds.account_id]
        api = self.d.rest
        us = str(int(time.time() * 1_000_000))
        placing = op in ("order", "batch-orders")
        if placing:
            args = [self._resolve_code(it) for it in args]
            for it in args:
                inst_id = str(it.get("instId", "")) if isinstance(it, Mapping) else ""
                if not self.d.limiter.admit(acct.account_id, "trade/order", inst_id):
                    return {"id": req_id, "op": op, "code": errors.RATE_LIMITED,
                            "msg": "Too Many Requests", "data": []}  # fmt: skip
            self.d.counters.orders_received += 1
            for it in args:
                cl = str(it.get("clOrdId", "")) if isinstance(it, Mapping) else ""
                self.d.counters.received_by_cl_ord_id[cl] += 1
        if reject is not None and placing:
            err = OrderRejectedError(str(reject["code"]), str(reject["message"]))
            items = [order_ack(None, venue.now_ms(), it, err) for it in args]
        elif placing:
            items = api.place_items(acct, args, exp_time)
        else:
            items = api.cancel_items(acct, [self._resolve_code(it) for it in args])
        failed = sum(1 for i in items if i["sCode"] != "0")
        code = "0" if failed == 0 else ("1" if failed == len(items) else "2")
        return {"id": req_id, "op": op, "data": items, "code": code, "msg": "",
                "inTime": us, "outTime": us}  # fmt: skip

    def _resolve_code(self, item: Any) -> Any:
        """ccxt sends `instIdCode` instead of `instId` when the market has one (okx.md §3)."""
        return self.venue.resolve_code(item)

    # ------------------------------------------------------------------ pushes
    def _feed(self, channel: str, inst: OkxInstrument) -> _BookFeed:
        key = (channel, inst.inst_id)
        feed = self._books.get(key)
        if feed is None:
            bids, asks = self._levels(inst, BOOK_CHANNELS[channel])
            feed = _BookFeed(1, {b[0]: b for b in bids}, {a[0]: a for a in asks})
            self._books[key] = feed
        return feed

    def _levels(self, inst: OkxInstrument, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        bids, asks = self.venue.levels(inst, depth)
        return views.levels_json(bids), views.levels_json(asks)

    def _book_msg(
        self,
        arg: dict[str, Any],
        action: str,
        bids: list[list[str]],
        asks: list[list[str]],
        prev: int,
        seq: int,
        full_bids: list[list[str]],
        full_asks: list[list[str]],
    ) -> dict[str, Any]:
        return {
            "arg": arg,
            "action": action,
            "data": [
                {
                    "asks": asks,
                    "bids": bids,
                    "ts": str(self.venue.market_ms),
                    "checksum": book_checksum(full_bids, full_asks),
                    "prevSeqId": prev,
                    "seqId": seq,
                }
            ],
        }

    def _snapshot_msg(self, arg: dict[str, Any], inst: OkxInstrument) -> dict[str, Any]:
        bids, asks = self._levels(inst, SNAPSHOT_CHANNELS[arg["channel"]])
        return {
            "arg": arg,
            "data": [
                {
                    "asks": asks,
                    "bids": bids,
                    "instId": inst.inst_id,
                    "ts": str(self.venue.market_ms),
                    "seqId": self.venue.market_ms,
                }
            ],
        }

    def _mark(self, inst: OkxInstrument) -> dict[str, Any]:
        return {
            "instType": inst.inst_type,
            "instId": inst.inst_id,
            "markPx": views.s(self.venue.mark_price(inst)),
            "ts": str(self.venue.market_ms),
        }

    def on_tick(self, now_ms: int) -> None:
        """Once per market tick: book updates, snapshots, tickers, periodic positions."""
        if not self.sessions:
            return
        frozen = self.d.server.faults.market_frozen(now_ms, venue="okx")
        wanted: dict[tuple[str, str], list[tuple[OkxWsSession, _Sub]]] = {}
        for session in self.sessions.values():
            for sub in session.subs:
                if sub.inst is not None:
                    wanted.setdefault((sub.channel, sub.inst.inst_id), []).append((session, sub))
        if not frozen:
            for (channel, _inst_id), subs in wanted.items():
                inst = subs[0][1].inst
                assert inst is not None
                if channel in BOOK_CHANNELS:
                    self._push_book_update(channel, inst, subs)
                elif channel in SNAPSHOT_CHANNELS:
                    for session, sub in subs:
                        session.send(self._snapshot_msg(sub.arg, inst))
                elif channel == "tickers":
                    self._push_ticker(inst, subs, now_ms)
                elif channel == "mark-price":
                    body = self._mark(inst)
                    for session, sub in subs:
                        session.send({"arg": sub.arg, "data": [body]})
        if now_ms - self._last_positions_ms >= POSITIONS_EVERY_MS:
            self._last_positions_ms = now_ms
            for session in list(self.sessions.values()):
                for sub in session.subs:
                    if sub.channel == "positions":
                        self._send_private(
                            session, sub, self._positions_msg(session, sub, "event_update", None)
                        )

    def _push_book_update(
        self, channel: str, inst: OkxInstrument, subs: list[tuple[OkxWsSession, _Sub]]
    ) -> None:
        feed = self._feed(channel, inst)
        bids, asks = self._levels(inst, BOOK_CHANNELS[channel])
        new_b = {b[0]: b for b in bids}
        new_a = {a[0]: a for a in asks}
        db = _diff(feed.bids, new_b, reverse=True)
        da = _diff(feed.asks, new_a, reverse=False)
        if not db and not da:
            return
        prev = feed.seq_id
        feed.seq_id += 1
        feed.bids, feed.asks = new_b, new_a
        for session, sub in subs:
            session.send(self._book_msg(sub.arg, "update", db, da, prev, feed.seq_id, bids, asks))

    def _push_ticker(
        self, inst: OkxInstrument, subs: list[tuple[OkxWsSession, _Sub]], now_ms: int
    ) -> None:
        values = views.ticker_values(self.venue, inst)
        last = self._last_ticker.get(inst.inst_id)
        if last is not None and last[1] == values and now_ms - last[0] < TICKER_EVERY_MS:
            return
        self._last_ticker[inst.inst_id] = (now_ms, values)
        body = views.ticker_json(self.venue, inst, values)
        for session, sub in subs:
            session.send({"arg": sub.arg, "data": [body]})

    # -- private
    def _private_arg(self, session: OkxWsSession, sub: _Sub) -> dict[str, Any]:
        assert session.creds is not None
        return {**sub.arg, "uid": session.creds.uid}

    def _send_private(self, session: OkxWsSession, sub: _Sub, msg: dict[str, Any]) -> None:
        venue = self.venue
        if self.d.server.faults.drop_notification(
            sub.channel, session.account_id, venue.now_ms(), venue="okx"
        ):
            return
        session.send(msg)

    def _balance(self, acct: Any, sub: _Sub) -> dict[str, Any]:
        """The `account` push, of the subscribed `ccy` only when the arg names one."""
        ccy = sub.arg.get("ccy")
        return views.balance_json(self.venue, acct, {str(ccy)} if ccy else None)

    def _positions_msg(
        self, session: OkxWsSession, sub: _Sub, event: str, only: set[str] | None
    ) -> dict[str, Any]:
        venue = self.venue
        acct = venue.accounts[session.account_id or ""]
        t = sub.arg.get("instType", "ANY")
        fam = sub.arg.get("instFamily")
        inst_id = sub.arg.get("instId")
        flat_sent = self._flat_sent.setdefault(acct.account_id, set())
        data = []
        for pid, pos in acct.positions.items():
            inst = venue.instruments[pid]
            if t not in ("ANY", None) and inst.inst_type != t:
                continue
            if (fam and inst.uly != fam) or (inst_id and inst.inst_id != inst_id):
                continue
            if only is not None and pid not in only:
                continue
            if pos.size == 0:
                if event == "snapshot" or pid in flat_sent:
                    continue
                flat_sent.add(pid)
            else:
                flat_sent.discard(pid)
            data.append(self.d.offset_position(views.position_json(venue, acct, inst, pos), acct))
        return {
            "arg": self._private_arg(session, sub),
            "eventType": event,
            "curPage": 1,
            "lastPage": True,
            "data": data,
        }

    def on_orders(self, account_id: str, orders: list[OkxOrder]) -> None:
        subs = [
            (s, sub)
            for s in self.sessions.values()
            if s.account_id == account_id
            for sub in s.subs
            if sub.channel == "orders"
        ]
        items: list[dict[str, Any]] = []
        for o in orders:
            done = self._pushed_fills.get(o.ord_id, 0)
            fills = o.fills[done:]
            self._pushed_fills[o.ord_id] = len(o.fills)
            if not fills:
                items.append(views.order_push_json(o, None))
            for f in fills:
                items.append(views.order_push_json(o, f))
            if not o.is_open:
                self._pushed_fills.pop(o.ord_id, None)
        if not subs:
            return
        for session, sub in subs:
            t = sub.arg.get("instType", "ANY")
            fam = sub.arg.get("instFamily")
            inst_id = sub.arg.get("instId")
            mine = [
                it for it in items
                if (t in ("ANY", None) or it["instType"] == t)
                and (not inst_id or it["instId"] == inst_id)
                and (not fam or "-".join(it["instId"].split("-")[:2]) == fam)
            ]  # fmt: skip
            for it in mine:  # one push per fill, as OKX does
                self._send_private(
                    session, sub, {"arg": self._private_arg(session, sub), "data": [it]}
                )

    def on_account(self, account_id: str) -> None:
        venue = self.venue
        acct = venue.accounts.get(account_id)
        if acct is None:
            return
        for session in list(self.sessions.values()):
            if session.account_id != account_id:
                continue
            for sub in session.subs:
                if sub.channel == "account":
                    msg = {
                        "arg": self._private_arg(session, sub),
                        "data": [self._balance(acct, sub)],
                    }
                    self._send_private(session, sub, msg)
                elif sub.channel == "positions":
                    self._send_private(
                        session, sub, self._positions_msg(session, sub, "event_update", None)
                    )


def _diff(old: dict[str, list[str]], new: dict[str, list[str]], reverse: bool) -> list[list[str]]:
    """The level changes turning `old` into `new` (size "0" deletes), best first."""
    out: list[list[str]] = []
    for px, lvl in old.items():
        n = new.get(px)
        if n is None:
            out.append([px, "0", "0", "0"])
        elif n != lvl:
            out.append(n)
    for px, lvl in new.items():
        if px not in old:
            out.append(lvl)
    out.sort(key=lambda x: float(x[0]), reverse=reverse)
    return out
