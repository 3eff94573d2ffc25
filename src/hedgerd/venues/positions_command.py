"""`hedgerd positions --config FILE [--json]`: the live book of every configured account,
read-only, then exit.

It connects with REST only (no private session, no cancel-on-disconnect, no orders), so
read-only API keys are enough: a desk's first contact with hedgerd. It prints, per account and
underlying, the index, the Greeks (total and per expiry), the hedge positions, every position
in the venue's units and in coin, and hedgerd's delta next to the venue's own in both
numeraires.

Exit codes: 0 ok, 1 a venue could not be read (or refused: testnet/live mismatch), 2 bad
config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import structlog

from hedgerd.book.greeks_book import GreeksBook, UnderlyingGreeks
from hedgerd.config import ConfigError, HedgerdConfig, load_config
from hedgerd.ops.logging import configure_logging
from hedgerd.venues.base import VenueError, VenueModeMismatchError
from hedgerd.venues.book_feed import BookFeed
from hedgerd.venues.registry import make_venue
from hedgerd.venues.units import amount_to_qty_coin

log = structlog.get_logger(__name__)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `positions` on an argparse subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "positions",
        help="print the live book of every configured account (read-only) and exit",
        description="Connect read-only (REST), print positions, Greeks per underlying and "
        "per expiry, hedge positions, and hedgerd's delta next to the venue's.",
    )
    p.add_argument("--config", type=Path, required=True, help="hedgerd TOML config file")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"positions: {exc}", file=sys.stderr)
        return 2
    # Logs go to stderr (redacted), so `--json` output on stdout stays one document.
    configure_logging(config.log.level, config.log.format, secrets=config.secret_values())
    if not config.venues:
        print(f"positions: {args.config}: no [venues.*] configured", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(collect(config))
    except VenueModeMismatchError as exc:
        print(f"positions: refused: {exc}", file=sys.stderr)
        return 1
    except (VenueError, ConfigError) as exc:
        print(f"positions: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render_text(report))
    return 0


async def collect(config: HedgerdConfig) -> dict[str, Any]:
    """Read every configured account once and return the report (JSON-ready)."""
    accounts = []
    for name, settings in config.venues.items():
        venue = make_venue(name, settings, private_stream=False)
        try:
            await venue.connect()
            book = GreeksBook()
            feed = BookFeed(venue, book, clock_ms=venue.venue_time_ms)
            await feed.rebuild(stream=False)
            now = feed.clock_ms()
            accounts.append(_account_report(name, settings.mode, feed, now))
        finally:
            await venue.close()
    return {"numeraire": config.numeraire, "accounts": accounts}


def _account_report(name: str, mode: str, feed: BookFeed, now_ms: int) -> dict[str, Any]:
    venue = feed.venue
    divergences = {(d.underlying, d.numeraire): d for d in feed.cross_check(now_ms)}
    underlyings = []
    for u in feed.underlyings:
        held = [
            p
            for p in feed.positions.values()
            if venue.instruments().get(p.instrument) is not None
            and venue.instruments()[p.instrument].underlying == u
        ]
        if not held and u not in feed.venue_greeks:
            continue
        try:
            snap: UnderlyingGreeks | None = feed.book.underlying_snapshot(u, now_ms)
        except Exception:  # no positions or no index: still list what there is
            snap = None
        index = feed.book.index_price(u)
        positions = []
        for p in sorted(held, key=lambda p: p.instrument):
            inst = venue.instruments()[p.instrument]
            qty_coin = feed.venue_qty_coin.get(p.instrument)
            if qty_coin is None:
                qty_coin = amount_to_qty_coin(inst, p.amount, feed.book.index_price(u))
            positions.append(
                {
                    "instrument": p.instrument,
                    "kind": str(inst.kind),
                    "amount": p.amount,
                    "amount_unit": str(p.amount_unit),
                    "qty_coin": qty_coin,
                    "average_price": p.average_price,
                    "venue_delta_coin": p.venue_delta_coin,
                }
            )
        entry: dict[str, Any] = {"underlying": u, "index_price_usd": index, "positions": positions}
        if snap is not None:
            entry["greeks"] = _greeks_dict(snap.total)
            entry["complete"] = snap.complete
            entry["quarantined"] = [f"{q.instrument}: {q.reason}" for q in snap.quarantined]
            entry["by_expiry"] = [{"expiry_ms": e, **_greeks_dict(g)} for e, g in snap.by_expiry]
            entry["hedges"] = [
                {
                    "kind": h.kind.label,
                    "value_usd": h.value_usd,
                    "delta_usdnum_coin": h.delta_usdnum_coin,
                    "delta_coinnum_coin": h.delta_coinnum_coin,
                }
                for h in snap.hedges
            ]
        entry["venue_vs_hedgerd"] = [
            {
                "numeraire": num,
                "hedgerd_delta_coin": d.hedgerd_delta_coin,
                "venue_delta_coin": d.venue_delta_coin,
                "diff_coin": d.diff_coin,
                "exceeded": d.exceeded,
            }
            for (und, num), d in sorted(divergences.items())
            if und == u
        ]
        underlyings.append(entry)
    return {
        "name": name,
        "account": venue.account,
        "mode": mode,
        "valued_at_ms": now_ms,
        "underlyings": underlyings,
    }


def _greeks_dict(g: Any) -> dict[str, float]:
    return {
        "value_usd": g.value_usd,
        "delta_usdnum_coin": g.delta_usdnum_coin,
        "delta_coinnum_coin": g.delta_coinnum_coin,
        "gamma_usdnum_coin_per_usd": g.gamma_usdnum_coin_per_usd,
        "vega_usd_per_vol": g.vega_usd_per_vol,
        "theta_usd_per_day": g.theta_usd_per_day,
    }


def render_text(report: dict[str, Any]) -> str:
    """The report as a readable text table."""
    lines = [f"numeraire: {report['numeraire']}"]
    for acct in report["accounts"]:
        lines.append(f"\n== {acct['name']} (account {acct['account']}, mode {acct['mode']})")
        if not acct["underlyings"]:
            lines.append("   no positions")
        for u in acct["underlyings"]:
            lines.append(f"-- {u['underlying']}  index {u['index_price_usd']:,.2f} USD")
            g = u.get("greeks")
            if g is not None:
                lines.append(
                    f"   delta {g['delta_usdnum_coin']:+.6f} coin (usd numeraire)  "
                    f"{g['delta_coinnum_coin']:+.6f} coin (coin numeraire)  "
                    f"vega {g['vega_usd_per_vol'] / 100:+,.2f} USD/vol pt  "
                    f"theta {g['theta_usd_per_day']:+,.2f} USD/day"
                )
                if not u.get("complete", True):
                    lines.append(f"   INCOMPLETE: {'; '.join(u['quarantined'])}")
                lines.append("   expiry (UTC ms)      delta usd-num  delta coin-num   vega/pt")
                for e in u["by_expiry"]:
                    exp = "perpetual/spot/cash" if e["expiry_ms"] is None else str(e["expiry_ms"])
                    lines.append(
                        f"   {exp:<20} {e['delta_usdnum_coin']:+13.6f} "
                        f"{e['delta_coinnum_coin']:+15.6f} {e['vega_usd_per_vol'] / 100:+9.2f}"
                    )
                for h in u["hedges"]:
                    lines.append(
                        f"   hedge {h['kind']:<18} delta {h['delta_usdnum_coin']:+.6f} (usd) "
                        f"{h['delta_coinnum_coin']:+.6f} (coin)"
                    )
            lines.append("   position                        amount        unit     coin")
            for p in u["positions"]:
                lines.append(
                    f"   {p['instrument']:<28} {p['amount']:>12,.4f} {p['amount_unit']:>5} "
                    f"{p['qty_coin']:+10.6f}"
                )
            for d in u["venue_vs_hedgerd"]:
                flag = "  <-- DIVERGES" if d["exceeded"] else ""
                lines.append(
                    f"   venue vs hedgerd ({d['numeraire']} numeraire): venue "
                    f"{d['venue_delta_coin']:+.6f}  hedgerd {d['hedgerd_delta_coin']:+.6f}  "
                    f"diff {d['diff_coin']:+.6f} coin{flag}"
                )
    return "\n".join(lines)


__all__ = ["add_parser", "collect", "render_text", "run"]
