"""`hedgerd paper --venues`: which venues the simulator serves, and the OKX hedge account the
two-venue mode adds."""

from __future__ import annotations

import argparse

import pytest

from hedgerd.cli import build_parser
from hedgerd.config import VenueSettings
from hedgerd.paper import _venues_arg, okx_hedge_account


def test_paper_runs_both_venues_unless_told_deribit() -> None:
    parse = build_parser().parse_args
    assert parse(["paper"]).venues == ("deribit", "okx")
    assert parse(["paper", "--venues", "deribit"]).venues == ("deribit",)


def test_venues_are_deribit_or_deribit_and_okx() -> None:
    assert _venues_arg("deribit") == ("deribit",)
    assert _venues_arg("deribit, okx") == ("deribit", "okx")
    for bad in ("okx", "okx,deribit", "deribit,deribit", "deribit,binance", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _venues_arg(bad)


def test_the_okx_account_is_the_market_makers_twin_with_options_and_hedges() -> None:
    deribit = VenueSettings(
        mode="sim", account="mm", api_key="k", api_secret="s", underlyings=("BTC", "ETH")
    )
    okx = okx_hedge_account(deribit, speed=20.0)
    # Options are booked on it at start (sim/okx/starting_options.py), the client option
    # flow trades against it (sim/flow.py), and it hedges.
    assert okx.exchange == "okx" and okx.roles == ("options", "hedge")
    assert okx.api_key is not None and okx.api_key.get_secret_value() == "k"
    assert okx.hedge_instruments == {"BTC": ("BTC-USD-SWAP",), "ETH": ("ETH-USD-SWAP",)}
    # Renewed every third of dead_man_s simulated seconds: at 20x, once every 2 wall s.
    assert okx.dead_man_s == 120
    assert okx_hedge_account(deribit, speed=1.0).dead_man_s == 30
