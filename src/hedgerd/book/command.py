"""`hedgerd book --positions FILE [--json] [--numeraire usd|coin]`: what is my delta, really?

Reads a book file (`hedgerd.book.positions_file`), values it at the file's valuation time and
prints, per underlying: the delta to hedge in the chosen numeraire (with the other beside
it), the delta split by instrument kind, the Greeks per expiry, and the scenario grid of P&L.
Exit codes: 0 printed, 2 bad input (the message names the file's row).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from hedgerd.book.greeks_book import (
    GREEK_FIELDS,
    NO_EXPIRY,
    BookError,
    BookSnapshot,
    Greeks,
    Numeraire,
    ScenarioGrid,
    UnderlyingGreeks,
)
from hedgerd.book.positions_file import BookFileError, build_book, load_book_file
from hedgerd.textfmt import coin as _coin
from hedgerd.textfmt import table as _table
from hedgerd.textfmt import usd as _usd
from hedgerd.textfmt import utc_time as _iso
from hedgerd.venues.deribit.names import format_expiry

EXIT_OK = 0
EXIT_INPUT = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``book`` subcommand."""
    p = sub.add_parser(
        "book",
        help="value a book file: delta per underlying and expiry in both numeraires, "
        "Greeks and a scenario grid",
        description="Read positions, marks and balances from a CSV or JSON book file "
        "(Deribit instrument names, sizes in the venue's units) and print the book's delta "
        "in USD and coin numeraires, gamma, vega, theta per underlying and expiry, and a "
        "spot x vol scenario grid of P&L.",
    )
    p.add_argument(
        "--positions",
        required=True,
        metavar="FILE",
        help="book file (.json or .csv); see config/example-book.json",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument(
        "--numeraire",
        choices=("usd", "coin"),
        default="usd",
        help="which P&L to be neutral in: usd (coin collateral counts as delta) or "
        "coin (inverse option delta net of premium); default usd",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    numeraire: Numeraire = "coin" if args.numeraire == "coin" else "usd"
    try:
        bf = load_book_file(args.positions)
        book = build_book(bf)
        snap = book.snapshot(bf.valuation_time_ms, with_scenarios=True)
        grids = {g.underlying: g for g in snap.scenarios}
    except (BookFileError, BookError) as exc:
        print(f"hedgerd book: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        json.dump(snapshot_json(snap, grids, numeraire, bf.source), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_text(sys.stdout, snap, grids, numeraire, bf.source)
    return EXIT_OK


# ---- text ----------------------------------------------------------------------------------


def _expiry_label(expiry_ms: int | None) -> str:
    return "perp/spot/collateral" if expiry_ms is None else format_expiry(expiry_ms)


def _greeks_cells(g: Greeks, S: float, numeraire: Numeraire) -> list[str]:
    return [
        _usd(g.value_usd),
        _coin(g.delta_usdnum_coin),
        _coin(g.delta_coinnum_coin),
        _coin(g.gamma_coin_per_usd(numeraire) * S * 0.01),
        _usd(g.vega_usd_per_vol / 100.0),
        _usd(g.theta_usd_per_day),
    ]


def render_underlying(u: UnderlyingGreeks, grid: ScenarioGrid, numeraire: Numeraire) -> list[str]:
    c = u.underlying
    S = u.index_price_usd
    other: Numeraire = "coin" if numeraire == "usd" else "usd"
    lines = [f"{c}  index {S:,.2f} USD", ""]
    hedge = u.delta_coin(numeraire)
    lines.append(
        f"  Delta to hedge ({numeraire} numeraire): {_coin(hedge)} {c}"
        f"    [{other} numeraire: {_coin(u.delta_coin(other))} {c}]"
    )
    if u.in_settlement_window:
        table = u.by_expiry
        for i in range(len(table)):
            if table.in_settlement_window[i]:
                e = table.expiry(i)
                g = table.greeks(i)
                lines.append(
                    f"  Settlement window: {_expiry_label(e)} settles at 08:00 UTC; its delta "
                    f"({_coin(g.delta_coin(numeraire))} {c}) is excluded above (Deribit decays "
                    "it to 0)."
                )
    for q in u.quarantined:
        lines.append(f"  WARNING: {q.instrument} left out: {q.reason}")
    lines.append("")
    # by instrument kind
    rows = [
        [
            "options",
            _coin(u.total.options_delta_usdnum_coin),
            _coin(u.total.options_delta_coinnum_coin),
            _usd(u.total.value_usd - sum(h.value_usd for h in u.hedges)),
        ]
    ]
    rows += [
        [h.kind.label, _coin(h.delta_usdnum_coin), _coin(h.delta_coinnum_coin), _usd(h.value_usd)]
        for h in u.hedges
    ]
    rows.append(
        [
            "total",
            _coin(u.total.delta_usdnum_coin),
            _coin(u.total.delta_coinnum_coin),
            _usd(u.total.value_usd),
        ]
    )
    lines += _table(
        ["delta by kind", f"delta USD-num ({c})", f"delta coin-num ({c})", "value (USD)"],
        rows,
        last_is_total=True,
    )
    lines.append("")
    # by expiry
    table = u.by_expiry
    rows = []
    for i in range(len(table)):
        label = _expiry_label(table.expiry(i))
        if table.in_settlement_window[i]:
            label += " *settling*"
        rows.append([label, *_greeks_cells(table.greeks(i), S, numeraire)])
    rows.append(["total", *_greeks_cells(u.total, S, numeraire)])
    lines += _table(
        [
            "expiry",
            "value (USD)",
            f"delta USD-num ({c})",
            f"delta coin-num ({c})",
            f"gamma {numeraire}-num ({c} per 1%)",
            "vega (USD per vol pt)",
            "theta (USD/day)",
        ],
        rows,
        last_is_total=True,
    )
    lines.append("")
    # scenario grid
    pnl = grid.pnl_usd if numeraire == "usd" else grid.pnl_coin
    unit = "USD" if numeraire == "usd" else c
    fmt = _usd if numeraire == "usd" else (lambda x: f"{x:+,.3f}")
    lines.append(
        f"  Scenario P&L in {unit} ({c} book incl. hedges and {c} collateral; instantaneous, "
        "vol shift added to every mark)"
    )
    headers = ["vol \\ index", *(f"{s * 100:+.0f}%" for s in grid.spot_shocks)]
    grows = [
        [f"{v * 100:+.0f} vol pts", *(fmt(x) for x in pnl[j])]
        for j, v in enumerate(grid.vol_shocks)
    ]
    widths = [max(len(h), *(len(r[i]) for r in grows)) for i, h in enumerate(headers)]
    lines.append(
        "  "
        + "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    for r in grows:
        lines.append(
            "  "
            + "  ".join(
                x.rjust(w) if i else x.ljust(w)
                for i, (x, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return lines


def render_text(
    out: TextIO,
    snap: BookSnapshot,
    grids: dict[str, ScenarioGrid],
    numeraire: Numeraire,
    source: str,
) -> None:
    lines = [
        f"hedgerd book: {source}",
        f"valued at {_iso(snap.valued_at_ms)}; numeraire {numeraire} "
        + (
            "(USD P&L neutral: coin collateral counts as delta)"
            if numeraire == "usd"
            else "(coin P&L neutral: inverse options count delta net of premium)"
        ),
        "delta in coin of the underlying; USD-num = dV/dS, coin-num = dV/dS - V/S "
        "(like Deribit's delta_total); gamma as the change of delta for a 1% index move",
        "",
    ]
    for u in snap.underlyings:
        lines += render_underlying(u, grids[u.underlying], numeraire)
        lines.append("")
    if snap.cash_usd:
        lines.append(f"USD/USDC cash: {_usd(snap.cash_usd)} USD (no delta in USD numeraire)")
    for q in snap.unpriced:
        lines.append(f"WARNING: {q.instrument} not valued: {q.reason}")
    out.write("\n".join(lines).rstrip() + "\n")


# ---- JSON ----------------------------------------------------------------------------------


def _greeks_json(g: Greeks) -> dict[str, float]:
    return {f: getattr(g, f) for f in GREEK_FIELDS}


def underlying_json(
    u: UnderlyingGreeks, grid: ScenarioGrid, numeraire: Numeraire
) -> dict[str, Any]:
    table = u.by_expiry
    by_expiry = []
    for i in range(len(table)):
        e = int(table.expiry_ms[i])
        by_expiry.append(
            {
                "expiry": _expiry_label(None if e == NO_EXPIRY else e),
                "expiry_ms": None if e == NO_EXPIRY else e,
                "in_settlement_window": bool(table.in_settlement_window[i]),
                **_greeks_json(table.greeks(i)),
                "scenario_pnl_usd": grid.by_expiry_pnl_usd[i].tolist(),
            }
        )
    return {
        "underlying": u.underlying,
        "index_price_usd": u.index_price_usd,
        "delta_to_hedge_coin": u.delta_coin(numeraire),
        "projected_delta_usdnum_coin": u.projected_delta_usdnum_coin,
        "projected_delta_coinnum_coin": u.projected_delta_coinnum_coin,
        "in_settlement_window": u.in_settlement_window,
        "next_expiry_ms": u.next_expiry_ms,
        "complete": u.complete,
        "quarantined": [{"instrument": q.instrument, "reason": q.reason} for q in u.quarantined],
        "total": _greeks_json(u.total),
        "hedges": [
            {
                "kind": h.kind.label,
                "value_usd": h.value_usd,
                "delta_usdnum_coin": h.delta_usdnum_coin,
                "delta_coinnum_coin": h.delta_coinnum_coin,
            }
            for h in u.hedges
        ],
        "by_expiry": by_expiry,
        "scenario": {
            "spot_shocks": list(grid.spot_shocks),
            "vol_shocks": list(grid.vol_shocks),
            "pnl_usd": grid.pnl_usd.tolist(),
            "pnl_coin": grid.pnl_coin.tolist(),
        },
    }


def snapshot_json(
    snap: BookSnapshot, grids: dict[str, ScenarioGrid], numeraire: Numeraire, source: str
) -> dict[str, Any]:
    return {
        "source": source,
        "valuation_time_ms": snap.valued_at_ms,
        "valuation_time": _iso(snap.valued_at_ms),
        "numeraire": numeraire,
        "units": {
            "delta": "coin of the underlying; usdnum = dV/dS, coinnum = dV/dS - V/S",
            "gamma": "coin per USD of index move",
            "vega": "USD per 1.00 of vol (divide by 100 for a vol point)",
            "theta": "USD per calendar day",
            "vanna": "coin per 1.00 of vol",
            "value": "USD",
            "scenario": "spot_shocks: fraction of the index; vol_shocks: per 1.00 of vol "
            "added to every mark (floored at 1 %); pnl_usd in USD, pnl_coin in coin; rows "
            "are vol shocks, columns spot shocks",
        },
        "cash_usd": snap.cash_usd,
        "unpriced": [{"underlying": q.instrument, "reason": q.reason} for q in snap.unpriced],
        "underlyings": [
            underlying_json(u, grids[u.underlying], numeraire) for u in snap.underlyings
        ],
    }
