"""Engine: bad input never raises anything but DeribitError, and never an internal error."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.protocol import ERR_INTERNAL, DeribitError
from hedgerd.sim.scenario import Scenario

EX = SimExchange(Scenario(seed=3))
ACCT = EX.add_account("fuzz", "fuzz")
METHODS = [*sorted(EX._methods), "public/nope", "private/nope", "", "buy"]
NAMES = [
    "BTC-PERPETUAL",
    "ETH-PERPETUAL",
    "BTC_USDC-PERPETUAL",
    "BTC-5JAN26-90000-C",
    "BTC-27MAR26",
    "btc-perpetual",
    "",
    "BTC-PERPETUAL\x00",
]
KEYS = [
    "instrument_name",
    "amount",
    "contracts",
    "type",
    "price",
    "label",
    "time_in_force",
    "post_only",
    "reject_post_only",
    "reduce_only",
    "currency",
    "kind",
    "order_id",
    "depth",
    "count",
    "index_name",
    "expired",
    "extended",
    "sorting",
    "start_id",
    "end_id",
    "start_timestamp",
    "end_timestamp",
    "offset",
    "zzz",
]

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            *NAMES,
            "BTC",
            "ETH",
            "USDC",
            "any",
            "true",
            "false",
            "10",
            "1e3",
            "limit",
            "market",
            "option",
            "future",
            "nan",
            "-1",
            "0.1",
            "good_til_cancelled",
            "fill_or_kill",
            "btc_usd",
        ]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(METHODS),
    params=st.dictionaries(st.sampled_from(KEYS), values, max_size=6),
    private=st.booleans(),
)
def test_dispatch_only_raises_deribit_errors(
    method: str, params: dict[str, Any], private: bool
) -> None:
    try:
        EX.dispatch(method, params, ACCT if private else None)
    except DeribitError as e:
        assert e.code != ERR_INTERNAL, e.data
        assert isinstance(e.to_json()["message"], str)


def test_non_mapping_params() -> None:
    for bad in ([1, 2], "x", 3):
        try:
            EX.dispatch("public/ticker", bad, None)  # type: ignore[arg-type]
        except DeribitError as e:
            assert e.code == -32602
