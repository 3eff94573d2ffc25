"""The portfolio book: one risk per underlying summed over the accounts, breakdown kept."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.portfolio.book import concat_options, sum_risks

FINITE = st.floats(-1e4, 1e4, allow_nan=False)
GAMMA = st.floats(-1e-2, 1e-2, allow_nan=False)


def _risk(
    delta: float,
    gamma: float,
    vol: float = 0.5,
    tau: float = 0.1,
    settles: int | None = None,
    expiring: float = 0.0,
) -> UnderlyingRisk:
    return UnderlyingRisk(
        underlying="BTC",
        spot_usd=90_000.0,
        net_delta_coin=delta,
        gamma_coin_per_usd=gamma,
        vol=vol,
        tau_years=tau,
        expiring_delta_coin=expiring,
        next_settlement_ms=settles,
        options_delta_coin=delta / 2,
    )


def test_one_account_is_its_own_portfolio() -> None:
    r = _risk(1.5, 1e-4)
    p = sum_risks({"main": r})
    assert p.total is r and p.delta_by_account() == {"main": 1.5}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(FINITE, GAMMA, st.floats(0.05, 3.0), st.floats(0.0, 2.0)),
        min_size=1,
        max_size=6,
    )
)
@example([(0.0, 0.0, 1.0, 0.0), (0.0, 2.2250738585e-313, 1.75, 0.0)])  # a subnormal gamma
def test_sums_and_weighted_vol(parts: list[tuple[float, float, float, float]]) -> None:
    risks = {f"a{i}": _risk(d, g, v, t) for i, (d, g, v, t) in enumerate(parts)}
    p = sum_risks(risks)
    assert math.isclose(
        p.total.net_delta_coin, math.fsum(d for d, *_ in parts), rel_tol=1e-12, abs_tol=1e-9
    )
    assert math.isclose(
        p.total.gamma_coin_per_usd, math.fsum(g for _, g, *_ in parts), abs_tol=1e-15
    )
    assert math.isclose(
        p.total.options_delta_coin, math.fsum(d / 2 for d, *_ in parts), abs_tol=1e-9
    )
    vols = [v for *_, v, _ in parts]
    assert min(vols) - 1e-12 <= p.total.vol <= max(vols) + 1e-12
    assert p.delta_by_account() == {k: r.net_delta_coin for k, r in risks.items()}


def test_only_the_earliest_settlement_counts_as_expiring() -> None:
    p = sum_risks(
        {
            "a": _risk(1.0, 1e-4, settles=1_000, expiring=0.4),
            "b": _risk(2.0, 1e-4, settles=2_000, expiring=0.7),
            "c": _risk(3.0, 1e-4),
        }
    )
    assert p.total.next_settlement_ms == 1_000
    assert p.total.expiring_delta_coin == pytest.approx(0.4)
    assert p.total.net_delta_coin == pytest.approx(6.0)


def test_refuses_nothing_and_mixed_underlyings() -> None:
    with pytest.raises(ValueError, match="no account"):
        sum_risks({})
    eth = UnderlyingRisk("ETH", 3_000.0, 1.0, 0.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="disagree"):
        sum_risks({"a": _risk(1.0, 0.0), "b": eth})


def test_the_accounts_options_are_put_side_by_side() -> None:
    # The averaged-gamma band takes the whole book's options (`kernel.gamma_ahead`).
    import numpy as np

    from hedgerd.hedging.kernel import OptionArrays

    a = OptionArrays(np.array([True]), np.array([100.0]), np.array([0.1]), np.array([-1.0]))
    b = OptionArrays(
        np.array([False, True]), np.array([90.0, 110.0]), np.array([0.2, 0.3]), np.array([2.0, 1.0])
    )
    both = concat_options([a, b])
    assert list(both.qty_coin) == [-1.0, 2.0, 1.0]
    assert list(both.is_call) == [True, False, True]
    assert list(both.strike_usd) == [100.0, 90.0, 110.0]
    assert both.vol is None
    with_vol = concat_options(
        [replace(a, vol=np.array([0.5])), replace(b, vol=np.array([0.6, 0.7]))]
    )
    assert with_vol.vol is not None and list(with_vol.vol) == [0.5, 0.6, 0.7]
