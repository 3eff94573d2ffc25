"""Pictures: the one matplotlib set-up, and the hedging picture of `hedgerd paper --plot` and
`hedgerd journal export --plot`.

matplotlib is optional (the `plot` extra): `pyplot()` imports it only when a picture is asked
for, on the Agg backend (files only: no display, safe in a daemon, a container or a test), and
raises `PlotUnavailableError` with the install hint when it is missing.

The hedging picture has, per underlying, a delta panel (net delta in coin of the underlying
against its no-trade band, shaded, and its target, over UTC time, with each hedge fill marked as
a buy or sell on the delta line at its time) above a cost panel (cumulative hedge cost, USD).
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hedgerd.model.orders import OrderSide

#: What to print when a `--plot` cannot be drawn for want of matplotlib.
MISSING_MATPLOTLIB = "--plot needs matplotlib: pip install 'hedgerd[plot]'"


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed (the message says how to get it)."""


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend, imported on first use."""
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotUnavailableError(MISSING_MATPLOTLIB) from exc
    # Before pyplot's import: a GUI backend would need a display and can stall a headless run.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True, slots=True)
class DeltaPoint:
    """One evaluation of an underlying: UTC epoch ms; net delta, band edges and target in coin
    of the underlying."""

    ts_ms: int
    delta_coin: float
    band_lower_coin: float
    target_coin: float
    band_upper_coin: float


@dataclass(frozen=True, slots=True)
class HedgeMark:
    """One hedge fill: UTC epoch ms, its side and its cost (fee + slippage, USD; negative for a
    rebate or a price better than the reference)."""

    ts_ms: int
    side: OrderSide
    cost_usd: float


@dataclass(frozen=True, slots=True)
class UnderlyingSeries:
    """What the picture shows of one underlying, points and hedges in time order."""

    underlying: str
    points: tuple[DeltaPoint, ...]
    hedges: tuple[HedgeMark, ...]

    def delta_at(self, ts_ms: int) -> float:
        """The net delta (coin) in force at `ts_ms`: the last point at or before it (the first
        point before any; NaN without points). A hedge's marker sits there: on the delta line,
        at the delta the fill corrects."""
        if not self.points:
            return math.nan
        i = bisect.bisect_right([p.ts_ms for p in self.points], ts_ms)
        return self.points[max(i - 1, 0)].delta_coin

    def cumulative_cost_usd(self) -> tuple[tuple[int, float], ...]:
        """(UTC epoch ms, hedge cost so far in USD) after each hedge, in time order."""
        total = 0.0
        out: list[tuple[int, float]] = []
        for h in sorted(self.hedges, key=lambda h: h.ts_ms):
            total += h.cost_usd
            out.append((h.ts_ms, total))
        return tuple(out)


# ------------------------------------------------------------------------ the picture


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def hedge_figure(series: Sequence[UnderlyingSeries], *, title: str, cost_label: str) -> Any:
    """The hedging figure (a matplotlib Figure): two panels per underlying, underlyings one
    below the other. `cost_label` says how the hedge cost was measured (it differs between a
    live run and a journal). The caller closes it (`write_hedge_plot` does)."""
    if not series:
        raise ValueError("nothing to draw: no underlying")
    plt = pyplot()
    import matplotlib.dates as mdates

    fig, axes = plt.subplots(
        2 * len(series),
        1,
        figsize=(11, 5.2 * len(series)),
        gridspec_kw={"height_ratios": [3, 1.4] * len(series)},
        squeeze=False,
    )
    fig.suptitle(title)
    for i, s in enumerate(series):
        _delta_panel(axes[2 * i][0], s)
        _cost_panel(axes[2 * i + 1][0], s, cost_label)
        # One time axis per underlying: its cost panel follows its delta panel's range.
        axes[2 * i + 1][0].sharex(axes[2 * i][0])
    for row in axes:
        ax = row[0]
        # Short tick labels (a run spans minutes, a journal days) with the date once at the
        # axis end, all in UTC. matplotlib's date locators and formatters have no annotations.
        locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        concise = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(concise)
        ax.set_xlabel("time (UTC)")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


#: Buys point up, sells down.
_HEDGE_MARKERS = ((OrderSide.BUY, "^", "tab:green"), (OrderSide.SELL, "v", "tab:red"))


def _delta_panel(ax: Any, s: UnderlyingSeries) -> None:
    u = s.underlying
    ax.set_title(f"{u}: net delta vs no-trade band ({u})")
    ax.set_ylabel(f"delta ({u})")
    points = list(s.points)
    if points and s.hedges and s.hedges[-1].ts_ms > points[-1].ts_ms:
        # The last point holds until the last hedge (a journal knows the delta only at its
        # decisions; their sliced fills come later).
        points.append(replace(points[-1], ts_ms=s.hedges[-1].ts_ms))
    if points:
        t = [_utc(p.ts_ms) for p in points]
        # Steps: a band holds from one evaluation to the next.
        ax.fill_between(
            t,
            [p.band_lower_coin for p in points],
            [p.band_upper_coin for p in points],
            step="post",
            alpha=0.2,
            label="band",
        )
        ax.step(t, [p.target_coin for p in points], where="post", ls="--", lw=1, label="target")
        ax.plot(t, [p.delta_coin for p in points], lw=1.2, label="net delta")
    for side, marker, color in _HEDGE_MARKERS:
        marks = [h for h in s.hedges if h.side is side]
        if marks:
            ax.scatter(
                [_utc(h.ts_ms) for h in marks],
                [s.delta_at(h.ts_ms) for h in marks],
                marker=marker,
                color=color,
                zorder=3,
                label=f"hedge {side.value}",
            )
    if s.points or s.hedges:
        ax.legend(loc="upper left", fontsize="small")


def _cost_panel(ax: Any, s: UnderlyingSeries, cost_label: str) -> None:
    ax.set_title(f"{s.underlying}: cumulative hedge cost (USD)")
    ax.set_ylabel("USD")
    cum = s.cumulative_cost_usd()
    if cum:
        t = [ms for ms, _ in cum]
        v = [c for _, c in cum]
        # From zero at the first point shown, so the first hedge's cost is a visible step, and
        # flat to the last point shown, so the cost panel spans the delta panel's time.
        start = min(s.points[0].ts_ms, t[0]) if s.points else t[0]
        end = max(s.points[-1].ts_ms, t[-1]) if s.points else t[-1]
        ax.step(
            [_utc(ms) for ms in (start, *t, end)],
            [0.0, *v, v[-1]],
            where="post",
            label=cost_label,
        )
        ax.legend(loc="upper left", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no hedges", transform=ax.transAxes, ha="center", va="center")


def write_hedge_plot(
    path: Path, series: Sequence[UnderlyingSeries], *, title: str, cost_label: str
) -> None:
    """Draw `hedge_figure` into `path` (PNG). A new file is created owner-only, like the
    journal and `journal export --out`: it shows the book's positions and trades."""
    plt = pyplot()
    fig = hedge_figure(series, title=title, cost_label=cost_label)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as out:
            fig.savefig(out, dpi=100, format="png")
    finally:
        plt.close(fig)


__all__ = [
    "MISSING_MATPLOTLIB",
    "DeltaPoint",
    "HedgeMark",
    "PlotUnavailableError",
    "UnderlyingSeries",
    "hedge_figure",
    "pyplot",
    "write_hedge_plot",
]
