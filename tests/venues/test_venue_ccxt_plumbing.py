"""Error classification, endpoint configuration, rate-limit lanes, environment check and
Deribit payload parsing."""

from __future__ import annotations

import asyncio
import time

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from hedgerd.config import VenueSettings
from hedgerd.model import OrderStatus
from hedgerd.sim.deribit.ratelimit import RateLimitConfig
from hedgerd.venues.base import ErrorClass, Lane, RateLimit, VenueModeMismatchError
from hedgerd.venues.ccxt_venue import (
    RATE_LIMITS,
    Backoff,
    LaneLimiter,
    classify_error,
    configure_endpoints,
    venue_error_code,
)
from hedgerd.venues.deribit import (
    DeribitVenue,
    check_environment,
    greeks_from_summary,
    order_from_deribit,
    quote_from_deribit,
    ticker_from_deribit,
)


def _deribit_error(cls: type[Exception], code: int) -> Exception:
    # The message ccxt builds: "deribit " + the response body.
    return cls(f'deribit {{"jsonrpc":"2.0","error":{{"code":{code},"message":"x"}}}}')


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ccxt.RequestTimeout("t"), ErrorClass.RETRYABLE),
        (ccxt.NetworkError("n"), ErrorClass.RETRYABLE),
        (ccxt.ExchangeNotAvailable("503"), ErrorClass.RETRYABLE),
        (ccxt.OnMaintenance("m"), ErrorClass.RETRYABLE),
        (ccxt.BadResponse("garbage"), ErrorClass.RETRYABLE),
        (ccxt.RateLimitExceeded("r"), ErrorClass.RATE_LIMITED),
        (ccxt.DDoSProtection("d"), ErrorClass.RATE_LIMITED),
        (ccxt.AuthenticationError("a"), ErrorClass.AUTH),
        (ccxt.PermissionDenied("p"), ErrorClass.AUTH),
        (ccxt.InsufficientFunds("f"), ErrorClass.DEFINITIVE),
        (ccxt.OrderNotFound("o"), ErrorClass.DEFINITIVE),
        (ccxt.InvalidOrder("i"), ErrorClass.DEFINITIVE),
        (ccxt.BadSymbol("s"), ErrorClass.DEFINITIVE),
        (TimeoutError(), ErrorClass.RETRYABLE),
        (ConnectionResetError(), ErrorClass.RETRYABLE),
        # Deribit codes ccxt maps too coarsely.
        (_deribit_error(ccxt.DDoSProtection, 10028), ErrorClass.RATE_LIMITED),
        (_deribit_error(ccxt.ExchangeError, 11094), ErrorClass.RETRYABLE),
        (_deribit_error(ccxt.AuthenticationError, 13009), ErrorClass.AUTH),
        (_deribit_error(ccxt.InvalidOrder, 11044), ErrorClass.DEFINITIVE),
    ],
)
def test_classify(exc: Exception, expected: ErrorClass) -> None:
    err = classify_error(exc, "deribit")
    assert err.error_class is expected
    assert err.venue == "deribit"


def test_outcome_unknown_only_for_mutating_network_failures() -> None:
    assert classify_error(ccxt.RequestTimeout("t"), "deribit", mutating=True).outcome_unknown
    assert not classify_error(ccxt.RequestTimeout("t"), "deribit").outcome_unknown
    assert not classify_error(ccxt.InvalidOrder("i"), "deribit", mutating=True).outcome_unknown
    rl = _deribit_error(ccxt.DDoSProtection, 10028)
    assert not classify_error(rl, "deribit", mutating=True).outcome_unknown
    assert venue_error_code(rl) == 10028


async def test_url_override_sets_rest_and_ws_and_leaves_no_production_url() -> None:
    rest, ws = ccxt_async.deribit(), ccxt_pro.deribit()
    try:
        for c in (rest, ws):
            configure_endpoints(c, "sim", "http://127.0.0.1:1/", "ws://127.0.0.1:1/ws/api/v2")
            assert c.urls["api"] == {
                "rest": "http://127.0.0.1:1",
                "ws": "ws://127.0.0.1:1/ws/api/v2",
            }
            assert "deribit.com" not in str(c.urls["api"])
            # Plain TCP: ccxt's close does not wait for TLS transports to finish closing.
            assert c.timeout_on_exit == 0
        tls = ccxt_async.deribit()
        configure_endpoints(tls, "testnet", "https://127.0.0.1:1", "wss://127.0.0.1:1/ws")
        assert tls.timeout_on_exit > 0
        await tls.close()
    finally:
        await rest.close()
        await ws.close()


async def test_testnet_mode_uses_sandbox_and_live_keeps_production() -> None:
    test, live = ccxt_pro.deribit(), ccxt_pro.deribit()
    try:
        configure_endpoints(test, "testnet", None, None)
        assert test.urls["api"]["ws"] == "wss://test.deribit.com/ws/api/v2"
        assert test.urls["api"]["rest"] == "https://test.deribit.com"
        configure_endpoints(live, "live", None, None)
        assert live.urls["api"]["ws"] == "wss://www.deribit.com/ws/api/v2"
        assert test.timeout_on_exit > 0 and live.timeout_on_exit > 0  # TLS: ccxt's wait kept
        with pytest.raises(ValueError, match="together"):
            configure_endpoints(live, "sim", "http://127.0.0.1:1", None)
        with pytest.raises(ValueError, match="needs rest_url"):
            configure_endpoints(live, "sim", None, None)
        with pytest.raises(ValueError, match="live"):
            configure_endpoints(live, "live", "http://127.0.0.1:1", "ws://127.0.0.1:1")
    finally:
        await test.close()
        await live.close()


async def test_venue_turns_off_ccxt_limiter_and_points_both_clients() -> None:
    s = VenueSettings(mode="sim", rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/ws")
    v = DeribitVenue("d", s)
    try:
        assert v.rest.enableRateLimit is False and v.ws.enableRateLimit is False
        assert v.rest.urls["api"]["rest"] == v.ws.urls["api"]["rest"] == "http://127.0.0.1:9"
        assert v.ws.urls["api"]["ws"] == "ws://127.0.0.1:9/ws"
    finally:
        await v.close()


async def test_cancels_never_wait_behind_reads() -> None:
    limiter = LaneLimiter(
        [
            RateLimit(Lane.READS, 2, 60.0),
            RateLimit(Lane.ORDERS, 1, 60.0),
            RateLimit(Lane.CANCELS, 3, 60.0),
        ]
    )
    await limiter.acquire(Lane.READS)
    await limiter.acquire(Lane.READS)
    blocked = asyncio.ensure_future(limiter.acquire(Lane.READS))  # waits a minute
    await asyncio.sleep(0)
    t0 = time.monotonic()
    for _ in range(3):
        await asyncio.wait_for(limiter.acquire(Lane.CANCELS), 1.0)
    assert time.monotonic() - t0 < 0.5
    assert not blocked.done()
    blocked.cancel()


def test_deribit_limits_declared_within_the_matching_engine_pool() -> None:
    lanes = {rl.lane: rl for rl in RATE_LIMITS["deribit"]}
    me_rate = sum(
        lanes[lane].limit / lanes[lane].interval_s for lane in (Lane.ORDERS, Lane.CANCELS)
    )
    assert me_rate <= 5.0
    assert lanes[Lane.READS].limit / lanes[Lane.READS].interval_s <= 20.0
    # A full window of reads at once stays inside the venue's burst (the simulator's model
    # of Deribit's non-matching-engine credits).
    assert lanes[Lane.READS].limit <= RateLimitConfig().other.burst
    with pytest.raises(ValueError):
        LaneLimiter([RateLimit(Lane.READS, 1, 1.0)])


def test_backoff_is_capped_exponential() -> None:
    b = Backoff(initial_s=0.1, max_s=1.0)
    assert [b.delay_s(i) for i in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@pytest.mark.parametrize(
    ("mode", "flag", "ok"),
    [
        ("live", False, True),
        ("live", True, False),
        ("testnet", True, True),
        ("testnet", False, False),
        ("sim", True, True),
        ("sim", False, False),
        ("live", None, False),
    ],
)
def test_environment_check(mode: str, flag: bool | None, ok: bool) -> None:
    if ok:
        check_environment("d", mode, flag, "REST API")
        return
    with pytest.raises(VenueModeMismatchError, match="refusing") as info:
        check_environment("d", mode, flag, "REST API")
    assert mode in str(info.value)


def test_order_ticker_quote_and_summary_parsing() -> None:
    o = order_from_deribit(
        "d",
        {
            "order_id": "1",
            "label": "h-1",
            "instrument_name": "BTC-PERPETUAL",
            "direction": "sell",
            "order_state": "open",
            "amount": 100,
            "filled_amount": 30,
            "price": "market_price",
            "average_price": 0,
            "last_update_timestamp": 5,
        },
    )
    assert (o.status, o.price, o.average_price, o.label) == (
        OrderStatus.PARTIALLY_FILLED,
        None,
        None,
        "h-1",
    )
    assert (
        order_from_deribit(
            "d", {"order_id": "2", "instrument_name": "X", "order_state": "cancelled"}
        ).status
        is OrderStatus.CANCELLED
    )
    t = ticker_from_deribit(
        "d",
        {
            "instrument_name": "BTC-1JAN27-50000-C",
            "mark_price": 0.05,
            "index_price": 50_000,
            "mark_iv": 62.5,
            "timestamp": 9,
            "greeks": {"delta": 0.5},
            "funding_8h": 0.0001,
        },
    )
    assert t is not None and t.mark_iv == pytest.approx(0.625) and t.venue_delta == 0.5
    assert t.funding_8h == 0.0001
    assert (
        ticker_from_deribit("d", {"instrument_name": "X", "mark_price": 0, "index_price": 1})
        is None
    )
    crossed = {
        "instrument_name": "X",
        "best_bid_price": 10,
        "best_ask_price": 9,
        "best_bid_amount": 1,
        "best_ask_amount": 1,
    }
    assert quote_from_deribit("d", crossed) is None
    assert quote_from_deribit("d", dict(crossed, best_bid_price=0)) is None
    q = quote_from_deribit("d", dict(crossed, best_ask_price=11))
    assert q is not None and q.mid_price == 10.5
    g = greeks_from_summary(
        "d", "a", "btc", {"delta_total": -1.5, "options_delta": 0.5, "equity": 2.0}, 3
    )
    assert (g.underlying, g.delta_total_coin, g.options_delta_coin, g.equity_coin) == (
        "BTC",
        -1.5,
        0.5,
        2.0,
    )


async def test_a_stream_that_fails_right_after_connecting_keeps_backing_off() -> None:
    """The backoff resets on a step that worked, not on a connect: otherwise a stream that
    connects and fails at once reconnects at the first delay forever (each reconnect a full
    resync of the book)."""
    s = VenueSettings(mode="sim", rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/ws")
    attempts: list[int] = []

    class Recording(Backoff):
        def delay_s(self, attempt: int) -> float:
            attempts.append(attempt)
            return 0.0

    v = DeribitVenue("d", s, backoff=Recording())
    calls = [0]

    async def step() -> None:
        calls[0] += 1
        if calls[0] == 6:
            return  # one step that works ...
        if calls[0] > 8:
            await v.close()
        raise ccxt.NetworkError("connection reset")

    try:
        await asyncio.wait_for(v.supervise("market", step), 5.0)
    finally:
        await v.close()
    assert attempts[:5] == [0, 1, 2, 3, 4]
    assert attempts[5:7] == [0, 1]  # ... resets the backoff
