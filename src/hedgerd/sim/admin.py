"""The simulator's admin API, outside Deribit's namespace: `/sim/admin/...`, JSON, loopback only.

    GET    /sim/admin/state                 clock, counters (orders received/accepted per
                                            label), connections, faults, engine figures
    POST   /sim/admin/time/advance?ms=N     move simulated time forward N ms (any mode)
    POST   /sim/admin/time/speed?x=X        accelerated time: X simulated s per wall s
    POST   /sim/admin/time/stepped?on=1     freeze (1) or release (0) the clock
    POST   /sim/admin/reset                 fresh engine from the same scenario and seed
    GET    /sim/admin/faults                the faults, with how often each fired
    POST   /sim/admin/faults                add one fault (JSON object) or several (list)
    DELETE /sim/admin/faults/{id}           remove one
    DELETE /sim/admin/faults                remove all (also POST /sim/admin/faults/clear)
    POST   /sim/admin/ws/drop[?account=ID][&venue=V]   drop WebSocket connections now
                                            (venue: deribit (default), okx or all)
    POST   /sim/admin/market/gap?currency=BTC&pct=-5   jump an index now
    POST   /sim/admin/accounts/trade        book a trade on an account (JSON: account,
                                            instrument, side, amount, optional price), as if
                                            another client had hit its quote; `venue`: okx
                                            books it on an OKX account (amount in
                                            contracts, instrument an instId)
    POST   /sim/admin/accounts/margin       raise an account's initial margin requirement
                                            (JSON: account, currency, initial_margin_add in
                                            that currency, set not added; `venue`: okx for
                                            an OKX account): its free margin (Deribit
                                            `available_funds`, OKX `availEq`) falls by as
                                            much, its maintenance margin stays; answers
                                            the free margin now
    POST   /sim/admin/venues/okx/carry      change OKX's funding and basis from now on (JSON:
                                            any of funding_rate_8h, swap_basis_bps,
                                            future_basis_bps_per_year); answers the carry
                                            in force (Deribit's perpetual premium is the
                                            scenario's random process: not settable)
    POST   /sim/admin/ws/inject[?account=ID][&channel=CH]   push the raw request body as
                                            one text frame to WebSocket sessions (tests: hostile
                                            frames); `channel`: only sessions subscribed to it

Fault objects are described in `hedgerd.sim.faults` (a `venue` key picks the venue whose
wire they act on; default deribit). `state` lists each served venue under `venues`. Errors
come back as `{"error": "..."}` with HTTP 400 (403 for a non-loopback caller).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hedgerd.sim.deribit.portfolio import account_summary
from hedgerd.sim.deribit.subscriptions import dumps
from hedgerd.sim.faults import FaultError
from hedgerd.sim.protocol import DeribitError

if TYPE_CHECKING:
    from hedgerd.sim.server import SimServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=dumps(data), content_type="application/json")


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The request's body, which must be one JSON object (ValueError: a 400)."""
    try:
        body = await request.json()
    except ValueError:
        raise ValueError("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def state_of(server: SimServer) -> dict[str, Any]:
    """Everything `GET /sim/admin/state` reports."""
    clock = server.clock
    engine_state: Any = None
    getter = getattr(server.engine, "admin_state", None)
    if callable(getter):
        engine_state = getter()
    return {
        "now_ms": int(server.engine.now_ms()),
        "clock": None
        if clock is None
        else {"speed": getattr(clock, "speed", None), "stepped": getattr(clock, "stepped", None)},
        "testnet": server.testnet,
        "counters": server.counters.to_json(),
        "connections": [
            {
                "conn_id": s.conn_id,
                "account_id": s.account_id,
                "cancel_on_disconnect": s.cod_enabled,
                "heartbeat_s": s.heartbeat_s,
                "channels": server.hub.channels_of(s),
            }
            for s in server.sessions.values()
        ],
        "subscriptions": server.hub.count(),
        "notifications_delivered": server.hub.delivered,
        "faults": server.faults.to_json(),
        "faults_fired": dict(server.faults.fired_total),
        "rate_limited": server.limiter.rejected,
        "engine": engine_state,
        "venues": {
            "deribit": {"engine": engine_state},
            **{name: d.state() for name, d in server.dialects.items()},
        },
    }


def add_admin_routes(app: web.Application, server: SimServer) -> None:
    def guard(fn: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not server.admin_remote and not _is_loopback(request.remote):
                return _json({"error": "admin API is loopback only"}, 403)
            try:
                return await fn(request)
            except (FaultError, ValueError, KeyError, TypeError, RuntimeError) as exc:
                return _json({"error": str(exc)}, 400)

        return wrapped

    async def state(request: web.Request) -> web.StreamResponse:
        return _json(state_of(server))

    async def advance(request: web.Request) -> web.StreamResponse:
        ms = int(request.query.get("ms", "0"))
        if ms < 0:
            raise ValueError("ms must be >= 0")
        return _json({"now_ms": server.advance(ms)})

    async def speed(request: web.Request) -> web.StreamResponse:
        x = float(request.query["x"])
        clock = server.clock
        if clock is None:
            raise RuntimeError("the engine exposes no clock")
        clock.set_speed(x)
        return _json({"speed": clock.speed, "now_ms": int(server.engine.now_ms())})

    async def stepped(request: web.Request) -> web.StreamResponse:
        on = request.query.get("on", "1").lower() in ("1", "true", "yes")
        clock = server.clock
        if clock is None:
            raise RuntimeError("the engine exposes no clock")
        clock.set_stepped(on)
        return _json({"stepped": clock.stepped, "now_ms": int(server.engine.now_ms())})

    async def reset(request: web.Request) -> web.StreamResponse:
        server.reset()
        return _json({"ok": True, "now_ms": int(server.engine.now_ms())})

    async def faults_list(request: web.Request) -> web.StreamResponse:
        return _json({"faults": server.faults.to_json(), "fired": dict(server.faults.fired_total)})

    async def faults_add(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            raise ValueError("body must be a JSON object or a list of them") from None
        specs = body if isinstance(body, list) else [body]
        if not all(isinstance(s, dict) for s in specs):
            raise ValueError("body must be a JSON object or a list of them")
        now = int(server.engine.now_ms())
        added = [server.faults.add(s, now) for s in specs]
        server.step()  # start what is due now (ws drops, price gaps)
        return _json({"added": [f.to_json() for f in added]})

    async def faults_delete(request: web.Request) -> web.StreamResponse:
        fid = int(request.match_info["fid"])
        if not server.faults.remove(fid):
            return _json({"error": f"no fault {fid}"}, 404)
        return _json({"removed": fid})

    async def faults_clear(request: web.Request) -> web.StreamResponse:
        return _json({"removed": server.faults.clear()})

    async def ws_drop(request: web.Request) -> web.StreamResponse:
        venue = request.query.get("venue", "deribit")
        account = request.query.get("account")
        if venue not in ("deribit", "all", *server.dialects):
            raise ValueError(f"unknown venue {venue!r}")
        n = server.drop_ws(account) if venue in ("deribit", "all") else 0
        for name, dialect in server.dialects.items():
            if venue in (name, "all"):
                n += dialect.drop_ws(account)
        return _json({"dropped": n})

    async def gap(request: web.Request) -> web.StreamResponse:
        ccy = request.query.get("currency", "BTC")
        pct = float(request.query["pct"])
        server.price_gap(ccy, pct)
        return _json({"currency": ccy, "pct": pct, "now_ms": int(server.engine.now_ms())})

    async def account_trade(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        book = getattr(server.engine, "book_trade", None)
        if not callable(book):
            raise RuntimeError("the engine cannot book trades")
        price = body.get("price")
        venue = str(body.get("venue", "deribit"))
        if venue != "deribit":
            dialect = server.dialects.get(venue)
            if dialect is None:
                raise ValueError(f"venue {venue!r} is not served")
            return _json(
                dialect.venue.book_trade(
                    str(body["account"]),
                    str(body["instrument"]),
                    str(body["side"]),
                    float(body["amount"]),
                    None if price is None else float(price),
                )
            )
        try:
            result = book(
                str(body["account"]),
                str(body["instrument"]),
                str(body["side"]),
                float(body["amount"]),
                None if price is None else float(price),
            )
        except DeribitError as exc:  # the engine's refusal, with its reason
            raise ValueError(f"{exc}: {exc.data or ''}") from None
        return _json(result)

    async def account_margin(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        venue, account = str(body.get("venue", "deribit")), str(body["account"])
        ccy, add = str(body["currency"]).upper(), float(body["initial_margin_add"])
        if not add >= 0.0:
            raise ValueError("initial_margin_add must be >= 0")
        if venue != "deribit":
            dialect = server.dialects.get(venue)
            if dialect is None:
                raise ValueError(f"venue {venue!r} is not served")
            okx = dialect.venue
            acct = okx.accounts[account]
            acct.imr_add[ccy] = add
            okx.listener.on_account(account)  # the `account` channel's push, as OKX sends
            free = okx.avail_eq(acct, ccy)
        else:
            engine: Any = server.engine
            deribit = engine.accounts[account]
            deribit.initial_margin_add[ccy] = add
            free = float(account_summary(deribit, ccy, engine)["available_funds"])
        return _json({"venue": venue, "account": account, "currency": ccy, "available": free})

    async def venue_carry(request: web.Request) -> web.StreamResponse:
        venue = request.match_info["venue"]
        dialect = server.dialects.get(venue)
        if dialect is None:
            raise ValueError(f"venue {venue!r} has no settable carry (served: okx only)")
        body = await _json_object(request)
        return _json({"venue": venue, "carry": dialect.venue.set_carry(body)})

    r = app.router
    r.add_get("/sim/admin/state", guard(state))
    r.add_post("/sim/admin/time/advance", guard(advance))
    r.add_post("/sim/admin/time/speed", guard(speed))
    r.add_post("/sim/admin/time/stepped", guard(stepped))
    r.add_post("/sim/admin/reset", guard(reset))
    r.add_get("/sim/admin/faults", guard(faults_list))
    r.add_post("/sim/admin/faults", guard(faults_add))
    r.add_post("/sim/admin/faults/clear", guard(faults_clear))
    r.add_delete("/sim/admin/faults", guard(faults_clear))
    r.add_delete("/sim/admin/faults/{fid}", guard(faults_delete))
    r.add_post("/sim/admin/ws/drop", guard(ws_drop))
    r.add_post("/sim/admin/market/gap", guard(gap))
    r.add_post("/sim/admin/accounts/trade", guard(account_trade))
    r.add_post("/sim/admin/accounts/margin", guard(account_margin))
    r.add_post("/sim/admin/venues/{venue}/carry", guard(venue_carry))

    # -- test-only: raw frame injection (fuzzing the clients' parsers) --------------------
    async def ws_inject(request: web.Request) -> web.StreamResponse:
        text = await request.text()
        sent = inject_ws(server, text, request.query.get("account"), request.query.get("channel"))
        return _json({"sent": sent})

    r.add_post("/sim/admin/ws/inject", guard(ws_inject))


def inject_ws(
    server: SimServer, text: str, account: str | None = None, channel: str | None = None
) -> int:
    """Queue `text` verbatim (not validated: tests send malformed frames on purpose) as one
    text frame on every WebSocket session, or only those of `account` and/or subscribed to
    `channel`. Returns the number of sessions it was queued on."""
    sent = 0
    for s in list(server.sessions.values()):
        if account is not None and s.account_id != account:
            continue
        if channel is not None and channel not in server.hub.channels_of(s):
            continue
        s.send_text(text)
        sent += 1
    return sent
