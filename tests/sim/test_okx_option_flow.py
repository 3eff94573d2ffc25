"""The client option flow trades on OKX too: against the OKX account it is given (`hedgerd
paper`: the market maker's twin), so that account's options book changes over a run as the
Deribit one does; none given, none trades. Deribit's flow is the same draw for draw whether or
not OKX is served."""

from __future__ import annotations

from hedgerd.sim.clock import SimClock
from hedgerd.sim.command import build_scenario
from hedgerd.sim.okx.starting_options import twin_balances
from hedgerd.sim.scenario import Scenario
from hedgerd.sim.world import SimWorld
from pinned_clock import TEST_START_MS

HOUR_MS = 3_600_000


def _scenario() -> Scenario:
    return build_scenario(
        None, seed=3, tick_ms=10_000, flow_rate_per_min=2.0, start_ms=TEST_START_MS
    )


def _run(venues: tuple[str, ...], twin: bool) -> SimWorld:
    sc = _scenario()
    world = SimWorld.build(sc, SimClock(sc.start_ms, stepped=True), venues)
    if world.okx is not None:
        mm = sc.accounts[0]
        creds = world.okx.add_account(mm.api_key, mm.api_secret, "pass", name="mm-okx")
        if twin:
            world.okx.flow.account_id = creds.account_id
    world.clock.advance(HOUR_MS)
    world.deribit.advance_to(world.clock.now_ms())
    return world


def test_flow_books_options_on_the_market_makers_okx_account() -> None:
    world = _run(("deribit", "okx"), twin=True)
    okx = world.okx
    assert okx is not None
    acct = okx.accounts["mm-okx"]
    options = {i: p for i, p in acct.positions.items() if okx.instruments[i].is_option}
    # About 60 client trades an hour on each venue, half of them on each currency.
    assert okx.flow.count >= 30
    assert len(options) >= 10
    assert {okx.instruments[i].base for i in options} == {"BTC", "ETH"}
    # Each at the world's option mark plus an edge, recorded as a fill of the account.
    assert len(acct.fills) == okx.flow.count


def test_no_okx_account_given_no_okx_trades_and_deribits_flow_unchanged() -> None:
    alone = _run(("deribit",), twin=False)
    both = _run(("deribit", "okx"), twin=False)
    assert both.okx is not None and both.okx.flow.count == 0
    assert both.deribit.flow.count == alone.deribit.flow.count > 0
    mm = _scenario().accounts[0].name
    positions = {k: p.size for k, p in alone.deribit.accounts[mm].positions.items()}
    assert {k: p.size for k, p in both.deribit.accounts[mm].positions.items()} == positions


def test_the_paper_okx_starting_book_is_traded_before_the_flow_window() -> None:
    """The starting book is a desk's book built before the run, not client flow: its fills
    are stamped before the option-flow estimator's window, so the daemon's seed from the
    fills history does not read it as flow."""
    from hedgerd.hedging.flow import FLOW_WINDOW_MS
    from hedgerd.sim.okx.starting_options import book_starting_options

    world = _run(("deribit", "okx"), twin=False)
    okx = world.okx
    assert okx is not None
    booked = book_starting_options(okx, "mm-okx")
    assert booked
    acct = okx.accounts["mm-okx"]
    assert {i for i, p in acct.positions.items() if okx.instruments[i].is_option} == {
        i for i, _ in booked
    }
    assert len(acct.fills) == len(booked)
    assert all(f.ts < okx.now_ms() - FLOW_WINDOW_MS for f in acct.fills)


def _twin_margin_use(balances: dict[str, float] | None, hours: int) -> float:
    """The paper OKX twin's maintenance margin over its adjusted equity (what the margin
    switch judges on a unified account) after `hours` of the default scenario's flow."""
    from hedgerd.sim.okx.starting_options import open_paper_twin
    from hedgerd.sim.okx.views import balance_json

    sc = build_scenario(None, seed=1, tick_ms=10_000, start_ms=TEST_START_MS)
    world = SimWorld.build(sc, SimClock(sc.start_ms, stepped=True), ("deribit", "okx"))
    okx = world.okx
    assert okx is not None
    mm = sc.accounts[0]
    creds = okx.add_account(mm.api_key, mm.api_secret, "pass", name="mm-okx")
    assert open_paper_twin(okx, creds.account_id, balances)
    world.clock.advance(hours * HOUR_MS)
    world.deribit.advance_to(world.clock.now_ms())
    data = balance_json(okx, okx.accounts[creds.account_id])
    return float(data["mmr"]) / float(data["adjEq"])


def test_the_paper_okx_twin_is_funded_like_the_market_maker_and_stays_in_margin() -> None:
    """The client flow books as much on the OKX twin as on Deribit and the simulated OKX
    margins each short option on its own, so its maintenance margin grows with the flow.
    On a new account's 10 BTC / 100 ETH / 100,000 USDT it passes the margin switch's 50%
    within two simulated hours (the paper run's OKX account went REDUCE_ONLY after 54
    simulated minutes); funded like the Deribit market maker it stays well under."""
    mm = _scenario().accounts[0].balances
    assert twin_balances(mm) == {"BTC": 50.0, "ETH": 500.0, "USDT": 1_000_000.0}
    assert _twin_margin_use(None, 2) > 0.5
    assert _twin_margin_use(mm, 2) < 0.25
