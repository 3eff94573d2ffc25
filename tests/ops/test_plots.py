"""`hedgerd.ops.plots`: the one matplotlib set-up and the hedging picture (two panels per
underlying, UTC time), fed by `hedgerd paper --plot`'s recorder."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.image
import pytest

from hedgerd.model import OrderSide
from hedgerd.model.orders import Fill
from hedgerd.ops.plots import (
    MISSING_MATPLOTLIB,
    DeltaPoint,
    HedgeMark,
    PlotUnavailableError,
    UnderlyingSeries,
    hedge_figure,
    pyplot,
    write_hedge_plot,
)
from hedgerd.paper import PaperRecorder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hedging"))
from hedging_builders import hedge_decision

T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z


def _fill(ts_ms: int, side: OrderSide) -> Fill:
    return Fill(
        "sim", "BTC-PERPETUAL", f"t{ts_ms}", "o", "l", side, 10.0, 50_000.0, 0.0, "BTC", ts_ms
    )


def _recorded() -> list[UnderlyingSeries]:
    rec = PaperRecorder()
    rec.on_decision(hedge_decision("BTC", T0, 0.5))
    rec.on_decision(hedge_decision("ETH", T0, -3.0))
    rec.on_decision(hedge_decision("BTC", T0 + 1_000, 1.4))
    rec.on_hedge_fill("BTC", _fill(T0 + 1_200, OrderSide.SELL), 2.5)
    rec.on_decision(hedge_decision("BTC", T0 + 2_000, 0.1))
    rec.on_hedge_fill("BTC", _fill(T0 + 2_500, OrderSide.BUY), 1.0)
    return rec.series(["BTC", "ETH", "SOL"])


def test_recorder_keeps_every_evaluation_and_fill() -> None:
    btc, eth, sol = _recorded()
    assert [(p.ts_ms, p.delta_coin) for p in btc.points] == [
        (T0, 0.5),
        (T0 + 1_000, 1.4),
        (T0 + 2_000, 0.1),
    ]
    assert btc.points[0] == DeltaPoint(T0, 0.5, -1.0, 0.0, 1.0)
    assert btc.hedges == (
        HedgeMark(T0 + 1_200, OrderSide.SELL, 2.5),
        HedgeMark(T0 + 2_500, OrderSide.BUY, 1.0),
    )
    assert btc.cumulative_cost_usd() == ((T0 + 1_200, 2.5), (T0 + 2_500, 3.5))
    # Markers sit on the delta line: the delta the fill corrects.
    assert btc.delta_at(T0 + 1_200) == 1.4
    assert btc.delta_at(T0 - 1) == 0.5  # before the first point: the first
    assert [p.delta_coin for p in eth.points] == [-3.0] and eth.hedges == ()
    assert sol == UnderlyingSeries("SOL", (), ())


def test_figure_has_two_titled_panels_per_underlying_on_a_utc_axis() -> None:
    plt = pyplot()
    fig = hedge_figure(_recorded()[:2], title="run", cost_label="fees + slippage")
    try:
        titles = [ax.get_title() for ax in fig.axes]
        labels = fig.axes[0].get_legend_handles_labels()[1]
        fig.canvas.draw()  # tick labels exist once drawn
        ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        date = fig.axes[0].xaxis.get_offset_text().get_text()
    finally:
        plt.close(fig)
    assert titles == [
        "BTC: net delta vs no-trade band (BTC)",
        "BTC: cumulative hedge cost (USD)",
        "ETH: net delta vs no-trade band (ETH)",
        "ETH: cumulative hedge cost (USD)",
    ]
    assert labels == ["band", "target", "net delta", "hedge buy", "hedge sell"]
    # T0 is midnight UTC: the axis's date is 2026-01-05 and a tick at T0 reads 00:00.
    assert date.startswith("2026-Jan-05"), date
    assert "00:00" in ticks, ticks  # the minute's tick at T0 reads midnight


def test_write_png(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    write_hedge_plot(png, _recorded()[:2], title="run", cost_label="c")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert (width, height) == (1100, 1040)
    with pytest.raises(ValueError, match="nothing to draw"):
        hedge_figure([], title="run", cost_label="c")


def test_missing_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    with pytest.raises(PlotUnavailableError) as err:
        pyplot()
    assert str(err.value) == MISSING_MATPLOTLIB
    assert "pip install 'hedgerd[plot]'" in MISSING_MATPLOTLIB
