"""hedgerctl's human output: the status document as tables (the `hedgerd book` look), command
results as one-line confirmations, audit events one line each.

The JSON a daemon sends is read once, at the edge, into the frozen views of
`hedgerd.control.views`; a figure a daemon does not send shows as "-". Units: deltas, bands,
targets and gamma in coin of the underlying (gamma per 1 % index move); vega USD per vol
point; theta USD per day; the band's inputs: mark vol in % a year, vol-of-vol per
sqrt(year), jump ratio and gamma coherence dimensionless, jump skew a signed log return,
option flow coin^2 per year; ages seconds; times UTC. Everything fits in 100 columns.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hedgerd.control.views import (
    NONE,
    OrderView,
    ReasonView,
    StateView,
    StatusView,
    as_int,
    as_str,
)
from hedgerd.textfmt import coin, duration, table, usd, utc_iso, utc_time

WIDTH = 100
#: Stale sources named per data kind before "+N more".
STALE_NAMED = 2


# ---------------------------------------------------------------------------- rendering


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def _or_none(value: float | None, fmt: Callable[[float], str]) -> str:
    return fmt(value) if value is not None else NONE


def _ago(view: StatusView, ms: int | None) -> str:
    if ms is None:
        return ""
    ago = f" ({duration((view.now_ms - ms) / 1000)} ago)" if view.now_ms is not None else ""
    return f" since {utc_time(ms)}{ago}"


def _mode(view: StatusView) -> str:
    parts = [view.mode or NONE]
    if view.dry_run:
        parts.append("dry-run")
    if view.speed is not None and view.speed != 1.0:
        parts.append(f"{view.speed:g}x")  # simulated seconds per wall second
    return " ".join(parts)


def _wrap_parts(parts: Sequence[str], sep: str) -> list[str]:
    """`parts` joined by `sep`, a new line (indented) where the next would pass WIDTH."""
    lines: list[str] = []
    current = ""
    for part in parts:
        if current and len(current + sep + part) > WIDTH:
            lines.append(current)
            current = "  " + part
        else:
            current = current + sep + part if current else part
    return [*lines, current] if current else lines


def _reason_lines(reasons: Sequence[ReasonView], whose: str = "") -> list[str]:
    """`  - margin (auto, since ...): <detail>` a reason, wrapped (`whose`: an account's name
    before each)."""
    out: list[str] = []
    first = f"  - {whose}: " if whose else "  - "
    for r in reasons:
        out += textwrap.wrap(r.text(), WIDTH, initial_indent=first, subsequent_indent="    ")
    return out


def render_header(view: StatusView) -> list[str]:
    """State with its reasons and since when; venue, mode, numeraire, uptime, orders, errors."""
    first = [f"hedgerd {view.state.state}{_ago(view, view.state.since_ms)}"]
    if view.now_ms is not None:
        first.append(f"now {utc_time(view.now_ms)}")
    up = NONE
    if view.started_ms is not None and view.now_ms is not None:
        up = duration((view.now_ms - view.started_ms) / 1000)
    in_flight = f", {view.in_flight} in flight" if view.in_flight else ""
    facts = [
        f"venue {view.venue}",
        f"mode {_mode(view)}",
        f"numeraire {view.numeraire}",
        f"up {up}",
        f"orders sent {as_str(view.orders_sent)}{in_flight}",
        f"errors {as_str(view.errors)}",
    ]
    return [
        *_wrap_parts(first, "; "),
        *_reason_lines(view.state.reasons),
        *_wrap_parts(facts, " | "),
    ]


def render_underlyings(view: StatusView) -> list[str]:
    """One row per underlying; units under the column names."""
    if not view.underlyings:
        return ["  no underlyings yet"]
    rows = []
    for u in view.underlyings:
        band = NONE
        if u.lower_coin is not None and u.upper_coin is not None:
            band = f"{coin(u.lower_coin)}..{coin(u.upper_coin)}"
        rows.append(
            [
                u.name,
                _or_none(u.delta_coin, coin),
                band,
                _or_none(u.target_coin, coin),
                _or_none(u.gamma_coin_per_pct, coin),
                _or_none(u.vega_usd_per_vol, lambda v: usd(v / 100.0)),
                _or_none(u.theta_usd_per_day, usd),
                as_str(u.hedges),
                _or_none(u.hedge_cost_usd, usd),
                _or_none(u.time_in_band, lambda x: f"{x:.1%}"),
            ]
        )
    headers = [
        "",
        "delta\ncoin",
        "band\ncoin",
        "target\ncoin",
        "gamma\ncoin/1%",
        "vega\nUSD/vol pt",
        "theta\nUSD/day",
        "hedges",
        "cost\nUSD",
        "in band\nof time",
    ]
    names = ", ".join(u.name for u in view.underlyings)
    return [
        *table(headers, rows),
        _fit(f"  coin: the row's underlying ({names}); gamma: delta change per 1% index move;"),
        "  cost: the hedges' fees + distance from the mid at each fill",
    ]


def _figure(x: float) -> str:
    """A non-negative rate for people: 3 significant digits, whole units from 100 up."""
    return f"{x:,.0f}" if abs(x) >= 100.0 else f"{x:.3g}"


def render_band_inputs(view: StatusView) -> list[str]:
    """Why the band is where it is: the market inputs of the hedge band each underlying's
    last evaluation priced, one row per underlying (units under the column names; "-": not
    sent by the daemon, not evaluated yet, or not computed for the policy)."""
    if not view.underlyings:
        return []
    rows = []
    for u in view.underlyings:
        b = u.band_inputs
        rows.append(
            [
                u.name,
                _or_none(b.vol, lambda x: f"{x:.1%}"),
                _or_none(b.vol_of_vol_per_sqrt_year, _figure),
                _or_none(b.jump_var_ratio, lambda x: f"{x:.2f}"),
                _or_none(b.jump_skew, lambda x: f"{x:+.3f}"),
                _or_none(b.gamma_coherence, lambda x: f"{x:.2f}"),
                _or_none(u.gamma_ahead_coin_per_pct, coin),
                _or_none(b.flow_var_coin2_per_year, _figure),
            ]
        )
    # The two gamma columns' names stacked ("gamma" over "coherence", "ahead"): on one line
    # the table, with the jump skew, would pass 100 columns. The others' names start on the
    # second line, so "  band inputs" stays the line of names, the units the next.
    headers = [
        "\nband inputs",
        "\nmark vol\n%/year",
        "\nvol of vol\n1/sqrt(year)",
        "\njump ratio\nindex/marks",
        "\njump skew\nreturn",
        "gamma\ncoherence\n|net|/gross",
        "gamma\nahead\ncoin/1%",
        "\noption flow\ncoin^2/year",
    ]
    return [
        *(_fit(line) for line in table(headers, rows)),
        "  mark vol: the book's gamma-weighted implied vol; "
        "jump ratio: the index's variance over the",
        "  marks' (1: no jumps); jump skew: the jumps' lean, a signed log return (0: none found);",
        "  gamma ahead: the book's gamma averaged over the spot range ahead; option flow: the",
        "  delta variance rate of the book's own option trades; -: not computed",
    ]


def _unit(unit: str | None, underlying: str | None) -> str:
    """ "usd" as USD, "coin" as the underlying's coin (the raw unit when that is unknown)."""
    if unit == "usd":
        return "USD"
    if unit == "coin" and underlying:
        return underlying
    return unit or "?"


def _amount(o: OrderView) -> str:
    if o.amount is None:
        return NONE
    unit = _unit(o.amount_unit, o.underlying)
    figure = usd(o.amount) if unit == "USD" else f"{o.amount:,.4f}"
    return f"{figure} {unit}"


def _price(o: OrderView) -> str:
    if o.limit_price is None:
        return NONE
    return f"{o.limit_price:,.4f}".rstrip("0").rstrip(".") + " " + _unit(o.price_unit, o.underlying)


def render_orders(view: StatusView) -> list[str]:
    if not view.orders:
        return ["  open orders: none"]
    rows = [
        [o.instrument, o.side, _amount(o), _price(o), _short_status(o.status), o.label]
        for o in view.orders
    ]
    headers = ["open order", "side", "amount", "limit price", "status", "label"]
    # The label gets what the other columns leave of the width (hedgerd's labels are 42
    # characters); a cut label keeps both ends, where the decision id starts and the leg ends.
    others = table(headers[:-1], [r[:-1] for r in rows])
    room = max(_MIN_LABEL, WIDTH - max(len(line) for line in others) - 2)
    for r in rows:
        r[-1] = _middle_cut(r[-1], room)
    return table(headers, rows)


#: Order statuses as the table shows them (the full word is in `--json`).
_STATUS_SHORT = {"partially_filled": "partial"}


def _short_status(status: str) -> str:
    return _STATUS_SHORT.get(status, status)


_MIN_LABEL = 16


def _middle_cut(text: str, width: int) -> str:
    """`text` within `width` characters: its middle replaced by "…" when too long."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def render_freshness(view: StatusView) -> list[str]:
    """Per kind of data: how many sources, the oldest age, the stale ones named."""
    if not view.freshness:
        return ["  data freshness: not reported"]
    rows = []
    for f in view.freshness:
        stale = "none"
        if f.stale:
            named = ", ".join(f.stale[:STALE_NAMED])
            more = f", +{len(f.stale) - STALE_NAMED} more" if len(f.stale) > STALE_NAMED else ""
            stale = f"{len(f.stale)}: {named}{more}"
        oldest = f"{f.oldest_age_s:,.1f} s" if f.oldest_age_s is not None else "never"
        rows.append([f.source, str(f.count), oldest, stale])
    lines = table(["data", "sources", "oldest", "stale"], rows, align="lrrl")
    return [_fit(line) for line in lines]


def render_accounts(view: StatusView) -> list[str]:
    """The venue accounts under the portfolio's rows: one row each with its state (its own /
    the one its orders are judged in), reasons, routing, delta and data age; then why each
    account that is not ACTIVE is so (its reasons' detail, as the header gives the
    portfolio's); then its funds (equity and maintenance margin use per currency) and hedge
    positions."""
    if not view.accounts:
        return []
    rows = []
    funds = []
    for a in view.accounts:
        state = a.state if a.state == a.effective_state else f"{a.state}/{a.effective_state}"
        rows.append(
            [
                a.name,
                f"{a.exchange} {'+'.join(a.roles)}",
                state,
                ",".join(r.code for r in a.reasons) or "-",
                "out: " + a.out_of_routing if a.out_of_routing else "in",
                " ".join(f"{u} {_or_none(d, coin)}" for u, d in a.delta_coin.items()) or NONE,
                (f"{a.oldest_age_s:,.1f} s" if a.oldest_age_s is not None else NONE)
                + (f", {a.stale} stale" if a.stale else ""),
            ]
        )
        equity = " ".join(
            f"{c} {_or_none(e, coin)} ({_or_none(a.margin_use.get(c), lambda x: f'{x:.1%}')})"
            for c, e in a.equity.items()
        )
        hedges = " ".join(
            f"{k} {v:+g}"
            + (f" ({a.hedge_delta_coin[k]:+.4f} coin)" if k in a.hedge_delta_coin else "")
            for k, v in a.hedge_positions.items()
        )
        funds.append([a.name, equity or NONE, hedges or "-"])
    headers = [
        "account",
        "exchange\nroles",
        "state\nown/eff.",
        "reasons",
        "routing",
        "delta\ncoin",
        "data\noldest",
    ]
    fund_headers = [
        "account",
        "equity ccy (maint. margin / equity)",
        "hedge positions\namount unit",
    ]
    why = [line for a in view.accounts for line in _reason_lines(a.reasons, a.name)]
    return [
        *(_fit(line) for line in table(headers, rows)),
        *why,
        "",
        *(_fit(line) for line in table(fund_headers, funds, align="lll")),
    ]


def render_ha(doc: Mapping[str, Any]) -> list[str]:
    """`HA  active  epoch 7  lease age 0.4 s  last failover 2026-12-06 04:30:09Z` (none when
    HA is off)."""
    ha = doc.get("ha")
    if not isinstance(ha, Mapping):
        return []
    age = ha.get("lease_age_ms")
    age_text = f"{age / 1000:.1f} s" if isinstance(age, int) else "-"
    failover = ha.get("last_failover_ms")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(failover / 1000))
        if isinstance(failover, int)
        else "never"
    )
    line = (
        f"HA  {as_str(ha.get('role'))}  epoch {as_str(ha.get('epoch'))}  lease age {age_text}"
        f"  last failover {when}"
    )
    if ha.get("db_reachable") is False:
        line += "  DATABASE UNREACHABLE"
    return [_fit(line)]


def render_status(doc: Mapping[str, Any]) -> str:
    """The human `hedgerctl status` (and each `watch` frame)."""
    view = StatusView.from_json(doc)
    accounts = render_accounts(view)
    lines = [
        *render_header(view),
        *render_ha(doc),
        "",
        *render_underlyings(view),
        "",
        *([*band, ""] if (band := render_band_inputs(view)) else []),
        *([*accounts, ""] if accounts else []),
        *render_orders(view),
        "",
        *render_freshness(view),
    ]
    return "\n".join(lines)


def _state_lines(command: str, payload: Mapping[str, Any]) -> list[str]:
    """`halt: state now HALTED; 2 open orders cancelled` and a line per reason."""
    state = StateView.from_json(payload)
    first = f"{command}: state now {state.state}"
    if "cancelled_orders" in payload:
        first += f"; {as_str(payload.get('cancelled_orders'))} open order(s) cancelled"
    return [first, *_reason_lines(state.reasons)]


def _args_text(args: Mapping[str, Any]) -> str:
    parts = []
    for key, value in args.items():
        text = value if isinstance(value, str) and value and " " not in value else None
        parts.append(f"{key}={text if text is not None else json.dumps(value)}")
    return " ".join(parts)


def render_event(event: Mapping[str, Any]) -> str:
    """One audit event on one line: UTC ISO time, command, arguments, who, outcome. Takes the
    journal's entries and the live `--follow` notices alike."""
    ts = as_int(event.get("ts_ms"))
    when = utc_iso(ts) if ts is not None else NONE
    command = as_str(event.get("command") or event.get("event"))
    if isinstance(event.get("args"), Mapping):
        args = dict(event["args"])
    else:  # a live notice carries its arguments beside its name
        skip = {"event", "ts_ms", "seq"}
        args = {k: v for k, v in event.items() if k not in skip}
    who = as_str(event.get("surface"), "")
    if event.get("uid") is not None:
        who += f" uid={event['uid']}"
    outcome = as_str(event.get("outcome"), "")
    cells = [when, command, _args_text(args), f"by {who.strip()}" if who.strip() else "", outcome]
    return "  ".join(c for c in cells if c)


def render_events(events: Sequence[Mapping[str, Any]]) -> str:
    if not events:
        return "no events"
    return "\n".join(render_event(e) for e in events)


def _flatten_lines(payload: Mapping[str, Any]) -> list[str]:
    accounts = payload.get("accounts")
    if isinstance(accounts, Mapping):  # several accounts: each one's own flatten
        out: list[str] = []
        for name, res in accounts.items():
            if isinstance(res, Mapping) and res.get("refused"):
                out.append(f"{name}: refused: {res['refused']}")
            elif isinstance(res, Mapping):
                out += [f"{name}: {line}" for line in _flatten_lines(res)]
        return out or ["flatten: nothing to do"]
    cancelled = payload.get("cancelled_orders") or []
    lines: list[str] = []
    if cancelled:
        lines.append(f"cancelled {len(cancelled)} open order(s) first: {', '.join(cancelled)}")
    for u, res in (payload.get("underlyings") or {}).items():
        legs = res.get("legs") or []
        lines.append(f"flatten {u}: {len(legs)} order(s) sent ({as_str(res.get('decision_id'))})")
        for leg in legs:
            unit = "USD" if leg.get("amount_unit") == "usd" else u
            lines.append(
                f"  {leg.get('side')} {leg.get('amount')} {unit} {leg.get('instrument')}: "
                f"{leg.get('outcome')}, filled {leg.get('filled_amount')} {unit}"
            )
        lines += [
            f"  skipped {s.get('instrument')}: {s.get('why')}" for s in res.get("skipped") or []
        ]
    return lines or ["flatten: nothing to do"]


def _reconcile_lines(payload: Mapping[str, Any]) -> list[str]:
    accounts = payload.get("accounts")
    if isinstance(accounts, Mapping):  # several accounts: a report each
        return [
            line
            for name, report in accounts.items()
            if isinstance(report, Mapping)
            for line in _reconcile_lines({"venue": name, **report})
        ]
    counts = [
        f"{key.replace('_', ' ')} {len(value)}"
        for key, value in payload.items()
        if isinstance(value, list) and value and key != "errors"
    ]
    lines = [f"reconciled {as_str(payload.get('venue'))}: " + (", ".join(counts) or "all in order")]
    lines += [_fit(f"  error: {e}") for e in payload.get("errors") or []]
    return lines


def render_result(command: str, payload: Any) -> str:
    """A short confirmation of a command that acted: the state after it and its reasons,
    what was cancelled or sent."""
    if not isinstance(payload, Mapping):
        return str(payload)
    match command:
        case "halt" | "resume" | "reduce-only":
            return "\n".join(_state_lines(command, payload))
        case "cancel-all":
            return f"cancel-all: {as_str(payload.get('cancelled_orders'))} open order(s) cancelled"
        case "set":
            return f"set {as_str(payload.get('key'))} = {as_str(payload.get('value'))}"
        case "flatten":
            return "\n".join(_flatten_lines(payload))
        case "reconcile":
            return "\n".join(_reconcile_lines(payload))
        case "handoff":
            if payload.get("handed_off"):
                return f"handoff: lease of epoch {as_str(payload.get('epoch'))} released"
            return "handoff: this node does not hold the lease (nothing to hand off)"
    return json.dumps(payload, indent=2)


__all__ = [
    "render_accounts",
    "render_band_inputs",
    "render_event",
    "render_events",
    "render_ha",
    "render_result",
    "render_status",
]
