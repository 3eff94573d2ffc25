"""Plain-text output for people: aligned tables, UTC times and figures with fixed decimals.

One module so that `hedgerd book`, `hedgerd journal` and `hedgerctl` print alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime


def utc_time(ms: int) -> str:
    """UTC epoch milliseconds as `2026-12-06 10:14:00 UTC` (to the second)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def utc_iso(ms: int) -> str:
    """UTC epoch milliseconds as ISO 8601 with milliseconds: `2026-12-06T10:14:00.000+00:00`."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def usd(x: float) -> str:
    """USD (or any money figure) to the unit, with thousands separators."""
    return f"{round(x) + 0.0:,.0f}"  # + 0.0: no "-0"


def coin(x: float) -> str:
    """A coin amount (delta, gamma) signed, to 4 decimals."""
    return f"{round(x, 4) + 0.0:+,.4f}"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    indent: str = "  ",
    align: str | None = None,
    last_is_total: bool = False,
) -> list[str]:
    """Lines of an aligned table: header, a rule, the rows.

    A header may hold "\\n" to stack a second line (a unit) under its name. `align` has one
    letter per column, "l" or "r" (default: the first column left, the others right, as
    figures read best). `last_is_total` sets the last row apart under a second rule."""
    stacked = [h.split("\n") for h in headers]
    depth = max(len(s) for s in stacked)
    stacked = [s + [""] * (depth - len(s)) for s in stacked]
    widths = [
        max([*(len(x) for x in s), *(len(r[i]) for r in rows)]) for i, s in enumerate(stacked)
    ]
    sides = align or "l" + "r" * (len(headers) - 1)

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if side == "l" else c.rjust(w)
            for c, w, side in zip(cells, widths, sides, strict=True)
        ]
        return (indent + "  ".join(padded)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    out = [line([s[k] for s in stacked]) for k in range(depth)]
    out.append(rule)
    body = list(rows)
    if last_is_total and body:
        out += [line(r) for r in body[:-1]]
        out.append(rule)
        out.append(line(body[-1]))
    else:
        out += [line(r) for r in body]
    return out


def duration(seconds: float) -> str:
    """A span for people: `45s`, `12m 05s`, `3h 02m`, `2d 04h`."""
    s = max(0, int(seconds))
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


__all__ = ["coin", "duration", "table", "usd", "utc_iso", "utc_time"]
