"""`hedgerd journal export --plot`: the picture's series from journal records (hedges at their
fill times, cost = fee + distance from the index at the decision, accumulated in time order),
and the command writing a PNG with both underlyings."""

from __future__ import annotations

import argparse
import stat
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import matplotlib.image
import pytest

from hedgerd.execution.client_ids import client_label
from hedgerd.execution.journal import DecisionRecord, JournalStore
from hedgerd.execution.journal_command import add_parser
from hedgerd.execution.journal_db import JournalLocation
from hedgerd.execution.journal_series import (
    DecidedFill,
    journal_series,
    load_journal_series,
)
from hedgerd.execution.order_state import OrderStyle, Sent, new_order
from hedgerd.model import AmountUnit, HedgeDecision, HedgeLeg, HedgeStyle, OrderSide, PriceUnit
from hedgerd.model.orders import Fill
from hedgerd.ops.plots import hedge_figure, pyplot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hedging"))
from hedging_builders import hedge_decision

from journal_backends import JournalBackend

T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decision(
    did: str,
    underlying: str,
    ts_ms: int,
    *,
    instrument: str,
    side: OrderSide,
    amount: float,
    amount_unit: AmountUnit,
    net: float,
    after: float,
    spot_usd: float,
) -> HedgeDecision:
    leg = HedgeLeg(
        venue="deribit",
        instrument=instrument,
        side=side,
        amount=amount,
        amount_unit=amount_unit,
        delta_coin=after - net,
        style=HedgeStyle.TAKER,
        limit_price=spot_usd * (1.01 if side is OrderSide.BUY else 0.99),
        price_unit=PriceUnit.USD,
        expected_cost_usd=1.0,
    )
    return hedge_decision(
        underlying,
        ts_ms,
        net,
        after_coin=after,
        legs=(leg,),
        band_coin=(-0.4, 0.1, 0.6),
        spot_usd=spot_usd,
        decision_id=did,
    )


def _fill(
    trade_id: str, d: HedgeDecision, ts_ms: int, *, price: float, fee: float, fee_ccy: str
) -> Fill:
    leg = d.legs[0]
    return Fill(
        venue="deribit",
        instrument=leg.instrument,
        trade_id=trade_id,
        order_id=f"o-{trade_id}",
        label=client_label(d.decision_id, 0),
        side=leg.side,
        amount=leg.amount,
        price=price,
        fee=fee,
        fee_currency=fee_ccy,
        ts_ms=ts_ms,
    )


# BTC: an inverse perpetual (amount in USD, fee in BTC); ETH: a linear one (coin, fee in USDC).
BTC_BUY = _decision(
    "d-btc-1", "BTC", T0 + 1_000, instrument="BTC-PERPETUAL", side=OrderSide.BUY,
    amount=1_000.0, amount_unit=AmountUnit.USD, net=-2.0, after=0.1, spot_usd=50_000.0,
)  # fmt: skip
BTC_SELL = _decision(
    "d-btc-2", "BTC", T0 + 60_000, instrument="BTC-PERPETUAL", side=OrderSide.SELL,
    amount=500.0, amount_unit=AmountUnit.USD, net=1.5, after=0.2, spot_usd=50_000.0,
)  # fmt: skip
ETH_BUY = _decision(
    "d-eth-1", "ETH", T0 + 30_000, instrument="ETH_USDC-PERPETUAL", side=OrderSide.BUY,
    amount=2.0, amount_unit=AmountUnit.COIN, net=-12.0, after=0.0, spot_usd=3_000.0,
)  # fmt: skip
FILLS = (
    # 1000 USD bought 50 above the index: 1000 * 50 / 50_050 USD; fee 0.0001 BTC = 5 USD.
    (_fill("t1", BTC_BUY, T0 + 1_500, price=50_050.0, fee=0.0001, fee_ccy="BTC"), BTC_BUY),
    # 500 USD sold 100 below the index: 500 * 100 / 49_900 USD; fee 0.00002 BTC = 1 USD.
    (_fill("t2", BTC_SELL, T0 + 61_000, price=49_900.0, fee=0.00002, fee_ccy="BTC"), BTC_SELL),
    # 2 ETH bought 10 above the index: 20 USD; fee 1.5 USDC.
    (_fill("t3", ETH_BUY, T0 + 45_000, price=3_010.0, fee=1.5, fee_ccy="USDC"), ETH_BUY),
)
BTC_COSTS = (1_000 * 50 / 50_050 + 5.0, 500 * 100 / 49_900 + 1.0)
ETH_COSTS = (20.0 + 1.5,)


def _records() -> list[DecisionRecord]:
    return [DecisionRecord.of(d) for d in (BTC_BUY, ETH_BUY, BTC_SELL)]


def test_series_from_records_marks_hedges_and_accumulates_cost() -> None:
    fills = [DecidedFill(f, d.decision_id) for f, d in FILLS]
    # A fill of an order with no decision (adopted, placed by hand) is not a hedge.
    stray = _fill("t9", BTC_BUY, T0 + 2_000, price=1.0, fee=1.0, fee_ccy="BTC")
    # Nor is a decision (with its fills) whose payload is not a HedgeDecision's.
    odd = DecisionRecord("d-odd", T0, "BTC", "by hand", {"why": "no deltas"})
    odd_fill = DecidedFill(
        _fill("t8", BTC_BUY, T0 + 3_000, price=1.0, fee=1.0, fee_ccy="BTC"), "d-odd"
    )
    # Nor a fill of an instrument its decision did not trade (the journal's fill_conflict).
    conflict = replace(FILLS[0][0], trade_id="t7", instrument="BTC-27MAR26")
    btc, eth = journal_series(
        [*_records(), odd],
        [
            *reversed(fills),
            DecidedFill(stray, None),
            odd_fill,
            DecidedFill(conflict, BTC_BUY.decision_id),
        ],
    )

    assert (btc.underlying, eth.underlying) == ("BTC", "ETH")
    assert [(h.ts_ms, h.side) for h in btc.hedges] == [
        (T0 + 1_500, OrderSide.BUY),
        (T0 + 61_000, OrderSide.SELL),
    ]
    assert [(h.ts_ms, h.side) for h in eth.hedges] == [(T0 + 45_000, OrderSide.BUY)]
    assert [h.cost_usd for h in btc.hedges] == pytest.approx(BTC_COSTS)
    cumulative = btc.cumulative_cost_usd()
    assert [t for t, _ in cumulative] == [T0 + 1_500, T0 + 61_000]
    assert [c for _, c in cumulative] == pytest.approx([BTC_COSTS[0], sum(BTC_COSTS)])
    assert cumulative[0][1] < cumulative[1][1]  # every cost here is positive: it only rises
    ((eth_t, eth_cost),) = eth.cumulative_cost_usd()
    assert (eth_t, eth_cost) == (T0 + 45_000, pytest.approx(ETH_COSTS[0]))
    # Each decision gives its delta before and after, with its band and target.
    assert [(p.ts_ms, p.delta_coin) for p in btc.points] == [
        (T0 + 1_000, -2.0),
        (T0 + 1_000, 0.1),
        (T0 + 60_000, 1.5),
        (T0 + 60_000, 0.2),
    ]
    assert {(p.band_lower_coin, p.target_coin, p.band_upper_coin) for p in btc.points} == {
        (-0.4, 0.1, 0.6)
    }
    # A hedge's marker sits on the delta line at its time: after its decision.
    assert btc.delta_at(T0 + 1_500) == 0.1
    assert btc.delta_at(T0 + 61_000) == 0.2


def test_a_rebate_or_a_better_price_lowers_the_running_cost() -> None:
    """Costs are signed (like the daemon's count): a maker rebate and a price better than the
    index give a negative cost, and the running total falls."""
    maker = _fill("t4", BTC_SELL, T0 + 62_000, price=50_100.0, fee=-0.00001, fee_ccy="BTC")
    fills = [DecidedFill(f, d.decision_id) for f, d in FILLS[:2]]
    (btc,) = journal_series(
        [DecisionRecord.of(BTC_BUY), DecisionRecord.of(BTC_SELL)],
        [*fills, DecidedFill(maker, BTC_SELL.decision_id)],
    )
    expected = -500 * 100 / 50_100 - 0.5
    assert btc.hedges[-1].cost_usd == pytest.approx(expected)
    assert btc.cumulative_cost_usd()[-1][1] == pytest.approx(sum(BTC_COSTS) + expected)


def _write_journal(path: JournalLocation) -> None:
    store = JournalStore(path)
    for f, d in FILLS:
        leg = d.legs[0]
        order = new_order(
            label=client_label(d.decision_id, 0),
            decision_id=d.decision_id,
            venue="deribit",
            instrument=leg.instrument,
            side=leg.side,
            amount=leg.amount,
            amount_unit=leg.amount_unit,
            limit_price=leg.limit_price,
            style=OrderStyle.IOC_LIMIT,
            reduce_only=False,
            created_ms=d.ts_ms,
        )
        assert order.label == f.label
        store.record_intent(order, DecisionRecord.of(d))
        store.apply_event(order.label, Sent(d.ts_ms + 1))
        store.record_fill(f)
    store.close()


@pytest.fixture
def journal(journal_backend: JournalBackend) -> Iterator[JournalLocation]:
    """The same journal on SQLite and on PostgreSQL."""
    with journal_backend.fresh() as location:
        _write_journal(location)
        yield location


def test_load_from_a_journal(journal: JournalLocation) -> None:
    store = JournalStore(journal, readonly=True)
    try:
        series = load_journal_series(store, T0, None)
        # BTC's first fill's decision came before `since`: the fill still finds it.
        late = load_journal_series(store, T0 + 1_200, None)
    finally:
        store.close()
    assert [s.underlying for s in series] == ["BTC", "ETH"]
    assert [h.cost_usd for h in series[0].hedges] == pytest.approx(BTC_COSTS)
    assert [h.cost_usd for h in series[1].hedges] == pytest.approx(ETH_COSTS)
    assert [h.cost_usd for h in late[0].hedges] == pytest.approx(BTC_COSTS)

    plt = pyplot()
    fig = hedge_figure(series, title="t", cost_label="c")
    try:
        titles = [ax.get_title() for ax in fig.axes]
    finally:
        plt.close(fig)
    # Two panels per underlying (their titles: tests/ops/test_plots.py), BTC's first.
    assert [t.split(":")[0] for t in titles] == ["BTC", "BTC", "ETH", "ETH"]


def _export(journal: JournalLocation, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hedgerd")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["journal", "export", "--journal", str(journal), *extra])


def test_export_plot_writes_a_png_with_both_underlyings(
    journal: JournalLocation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "hedges.png"
    args = _export(journal, "--since", str(T0), "--plot", str(png))
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert out == ""  # without --out, the picture is the only output
    assert f"wrote {png} (BTC, ETH)" in err
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    height, width, _ = matplotlib.image.imread(png).shape
    assert (width, height) == (1100, 1040)  # 11 in wide, 5.2 in per underlying, at 100 dpi
    assert stat.S_IMODE(png.stat().st_mode) == 0o600

    rows = tmp_path / "fills.csv"
    args = _export(journal, "--since", str(T0), "--table", "fills", "--out", str(rows))
    args.plot = png
    assert args.func(args) == 0
    assert len(rows.read_text().splitlines()) == 1 + len(FILLS)  # --out still gets the rows


def test_export_plot_with_nothing_to_draw(
    journal: JournalLocation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "none.png"
    args = _export(journal, "--since", str(T0 + 3_600_000), "--plot", str(png))
    assert args.func(args) == 2
    assert "nothing to draw" in capsys.readouterr().err
    assert not png.exists()
    nowhere = tmp_path / "no-such-dir" / "p.png"
    args = _export(journal, "--since", str(T0), "--plot", str(nowhere))
    assert args.func(args) == 2
    assert f"--plot {nowhere}" in capsys.readouterr().err
