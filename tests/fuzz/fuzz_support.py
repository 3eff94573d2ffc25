"""Shared pieces of the fuzz tests: hypothesis settings (deterministic in CI, long on demand),
hostile JSON values, and a private event loop that a synchronous hypothesis test can drive.

`HEDGERD_FUZZ_EXAMPLES=N` runs every fuzz test with N random (not derandomized) examples:
the long local run, e.g. `HEDGERD_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/fuzz`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")


def fuzz_settings(ci_examples: int) -> settings:
    """`ci_examples` derandomized examples (same every run: CI stays deterministic), or
    `HEDGERD_FUZZ_EXAMPLES` random ones for a long local run."""
    long_run = os.environ.get("HEDGERD_FUZZ_EXAMPLES")
    return settings(
        max_examples=int(long_run) if long_run else ci_examples,
        derandomize=not long_run,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


# ------------------------------------------------------------------------- hostile values
#: Numbers and non-numbers a venue must never be trusted with (json.dumps writes the NaN and
#: Infinity literals Python's json module, and aiohttp's, accept).
BAD_NUMBERS: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    None,
    "abc",
    "",
    "NaN",
    "1e999",
    [],
    {},
    True,
    False,
    [1.0],
    {"x": 1},
]
HUGE_NUMBERS: list[Any] = [1e308, -1e308, 10**30, -(10**30), 1e-300, 5e-324]
UNKNOWN_NAMES: list[Any] = [
    "BTC-NOPE",
    "XYZ-PERPETUAL",
    "BTC-31FEB26-1-C",
    "btc-perpetual",
    "",
    " BTC-PERPETUAL",
    "BTC-PERPETUAL\x00",
    "BTC-PERPÉTUAL",
    "💥",
    123,
    None,
    ["BTC-PERPETUAL"],
    {"name": "BTC-PERPETUAL"},
]
#: Text without lone surrogates (they cannot be encoded as a UTF-8 WebSocket frame).
safe_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]),
    max_size=40,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**25), 10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    safe_text,
    st.sampled_from(BAD_NUMBERS + HUGE_NUMBERS),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(safe_text, inner, max_size=4),
    max_leaves=12,
)


def dumps(value: Any) -> str:
    """JSON text as a careless (or hostile) venue writes it: NaN/Infinity literals allowed."""
    return json.dumps(value, allow_nan=True)


def notification(channel: Any, data: Any) -> str:
    return dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )


#: Frames that no JSON-RPC reader can take: not JSON, not an object, absurd nesting and
#: numbers, broken envelopes.
RAW_GARBAGE: list[str] = [
    "",
    "{",
    "}{",
    "[",
    "null",
    "42",
    '"subscription"',
    "[]",
    "[1, 2, 3]",
    "NaN",
    "-Infinity",
    "1e999",
    "9" * 5000,  # more digits than int() converts
    "[" * 20_000 + "]" * 20_000,  # deeper than the JSON parser recurses
    '{"jsonrpc": "2.0", "method": "subscription"}',
    '{"jsonrpc": "2.0", "method": "subscription", "params": null}',
    '{"jsonrpc": "2.0", "method": "subscription", "params": []}',
    '{"jsonrpc": "2.0", "method": "subscription", "params": "x"}',
    '{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": 5}}',
    '{"jsonrpc": "2.0", "method": "subscription", "params": {"data": {}}}',
    '{"jsonrpc": "2.0", "method": "heartbeat", "params": []}',
    '{"jsonrpc": "2.0", "method": "heartbeat", "params": "test_request"}',
    '{"jsonrpc": "2.0", "method": "heartbeat"}',
    '{"jsonrpc": "2.0", "id": 999999, "result": {"order": {}}}',
    '{"jsonrpc": "2.0", "id": true, "result": "x"}',
    '{"jsonrpc": "2.0", "id": "1", "error": {"code": 10000, "message": "unauthorized"}}',
    '{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}',
    '{"jsonrpc": "2.0", "id": 888888, "error": "boom"}',
    '{"jsonrpc": "2.0", "error": {"code": 11050, "message": "bad_request"}}',
    '{"jsonrpc": "2.0", "method": "private/buy", "params": {"amount": 1}}',
    '{"jsonrpc": "2.0", "method": 5}',
    '{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "\\u0000", "data": 1}}',
]
raw_garbage = st.sampled_from(RAW_GARBAGE) | safe_text.map(lambda s: s) | json_values.map(dumps)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", None, 2]),
        "id": st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), safe_text),
        "method": st.sampled_from(
            ["subscription", "heartbeat", "public/test", "private/buy", "", "SUBSCRIPTION"]
        )
        | json_scalars,
        "params": json_values,
        "result": json_values,
        "error": json_values,
        "testnet": json_scalars,
    },
).map(dumps)


# ------------------------------------------------- defective user.changes / portfolio
CHANGES = "user.changes.any.BTC.raw"
PORTFOLIO = "user.portfolio.btc"


def defective_position(draw: st.DrawFn, names: list[str]) -> Any:
    """A `user.changes` position entry with at least one defect that must get it refused
    (unknown or missing name, size not a finite number, size against `direction`, not an
    object); other fields hostile at random."""
    name = draw(st.sampled_from(names))
    base: dict[str, Any] = {
        "instrument_name": name,
        "size": draw(st.floats(-1e6, 1e6, allow_nan=False)),
        "direction": draw(st.sampled_from(["buy", "sell", "zero", None])),
        "kind": draw(st.sampled_from(["future", "option", None])),
    }
    for extra in ("average_price", "size_currency", "delta", "mark_price", "settlement_price"):
        if draw(st.booleans()):
            base[extra] = draw(json_values)
    defect = draw(st.sampled_from(["name", "no_name", "size", "no_size", "sign", "not_a_mapping"]))
    if defect == "name":
        base["instrument_name"] = draw(st.sampled_from(UNKNOWN_NAMES))
    elif defect == "no_name":
        del base["instrument_name"]
    elif defect == "size":
        base["size"] = draw(st.sampled_from(BAD_NUMBERS))
    elif defect == "no_size":
        del base["size"]
    elif defect == "sign":
        base["direction"] = "buy"
        base["size"] = -draw(st.floats(1e-9, 1e12))
    else:
        return draw(st.sampled_from([[base], name, 5, None]))
    return base


def defective_trade(draw: st.DrawFn, names: list[str]) -> Any:
    """A trade with one field spoiled (amount, price, timestamp, side, id or name)."""
    trade: dict[str, Any] = {
        "instrument_name": draw(st.sampled_from(names)),
        "trade_id": f"fz-{draw(st.integers(0, 10**9))}",
        "order_id": "1",
        "direction": draw(st.sampled_from(["buy", "sell"])),
        "amount": draw(st.floats(1.0, 1e4)),
        "price": draw(st.floats(1.0, 1e5)),
        "timestamp": 1_767_000_000_000,
        "label": draw(st.sampled_from([None, "", "h-x", 7, True])),
        "fee": draw(json_values),
    }
    key, values = draw(
        st.sampled_from(
            [
                ("amount", [*BAD_NUMBERS, 0, -1.0, -1e308]),
                ("price", [*BAD_NUMBERS, 0, -5.0]),
                ("timestamp", [*BAD_NUMBERS, -1, 1e20, 10**30]),
                ("direction", ["BUY", "", None, 1, "zero"]),
                ("trade_id", [None, "", [], {}, True]),
                ("instrument_name", [None, 5, [], ""]),
            ]
        )
    )
    trade[key] = draw(st.sampled_from(values))
    return trade


def defective_portfolio(draw: st.DrawFn) -> Any:
    """A `user.portfolio` payload whose `balance` and `delta_total` are both missing or not
    numbers (each part is judged on its own: a valid one would rightly be applied)."""
    data: dict[str, Any] = {
        k: draw(st.sampled_from([*BAD_NUMBERS, *HUGE_NUMBERS, 1.5]))
        for k in ("options_delta", "equity", "options_gamma", "options_vega")
        if draw(st.booleans())
    }
    data["currency"] = draw(st.sampled_from(["BTC", "btc", None, 5, "", [], "ÉTH"]))
    for key in ("balance", "delta_total"):
        if draw(st.booleans()):
            data[key] = draw(st.sampled_from(BAD_NUMBERS))
    return data


@st.composite
def changes_frames(draw: st.DrawFn, names: list[str]) -> list[str]:
    """1-4 notifications on the private channels, none of which may change the book."""
    frames = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["changes", "portfolio", "changes_shape"]))
        if kind == "changes":
            data: Any = {
                "positions": [
                    defective_position(draw, names) for _ in range(draw(st.integers(0, 3)))
                ],
                "trades": [defective_trade(draw, names) for _ in range(draw(st.integers(0, 2)))],
                "orders": draw(st.lists(json_values, max_size=2)),
            }
            frames.append(notification(CHANGES, data))
        elif kind == "portfolio":
            frames.append(notification(PORTFOLIO, defective_portfolio(draw)))
        else:  # the right channel, the wrong shape
            data = draw(
                st.sampled_from(
                    [
                        None,
                        [],
                        "positions",
                        {"positions": {"instrument_name": "BTC-PERPETUAL", "size": 1}},
                        {"positions": "BTC-PERPETUAL"},
                        {"positions": 5, "trades": 5, "orders": 5},
                        {"trades": [None, 1, "x"]},
                    ]
                )
                | json_values
            )
            frames.append(notification(draw(st.sampled_from([CHANGES, PORTFOLIO])), data))
    return frames


# ------------------------------------------------------------------------ the event loop
class LoopRunner:
    """One event loop kept for a whole module, so that a synchronous hypothesis test can run
    each example against long-lived async fixtures (a simulator, a daemon)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float, what: str
) -> None:
    """Poll `predicate` (every 5 ms) until it holds; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)
