"""The daemon's status and command documents as hedgerctl reads them: frozen views built once,
at the edge, from the JSON. A key a daemon does not send (an older daemon, a test double) reads
as None (shown as "-"). `summarize_freshness` is also what the daemon sends as
`data_freshness_summary`, so both sides summarise alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hedgerd.textfmt import utc_time

#: How a missing figure shows.
NONE = "-"


def as_float(value: Any) -> float | None:
    """A finite number, else None (the daemon sends null for NaN; anything else is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def as_int(value: Any) -> int | None:
    """A whole number (counts, epoch ms), else None."""
    f = as_float(value)
    return int(f) if f is not None else None


def as_str(value: Any, default: str = NONE) -> str:
    return str(value) if value is not None else default


def opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class ReasonView:
    """Why the state is not ACTIVE: code, detail, who raised it and since when (UTC ms)."""

    code: str
    detail: str
    actor: str
    since_ms: int | None

    @classmethod
    def from_json(cls, data: Any) -> ReasonView:
        if not isinstance(data, Mapping):  # a plain string from a simple state source
            return cls(code=str(data), detail="", actor="", since_ms=None)
        return cls(
            code=as_str(data.get("code")),
            detail=as_str(data.get("detail"), ""),
            actor=as_str(data.get("actor"), ""),
            since_ms=as_int(data.get("since_ms")),
        )

    def text(self) -> str:
        """`stale_data (auto, since 2026-12-06 10:00:00 UTC): <detail>`"""
        when = [self.actor] if self.actor else []
        if self.since_ms is not None:
            when.append(f"since {utc_time(self.since_ms)}")
        head = f"{self.code} ({', '.join(when)})" if when else self.code
        return f"{head}: {self.detail}" if self.detail else head


@dataclass(frozen=True, slots=True)
class StateView:
    """The trading state, its reasons and since when (UTC ms) it holds."""

    state: str
    reasons: tuple[ReasonView, ...]
    since_ms: int | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StateView:
        return cls(
            state=as_str(doc.get("state"), "UNKNOWN"),
            reasons=tuple(ReasonView.from_json(r) for r in doc.get("reasons") or ()),
            since_ms=as_int(doc.get("since_ms")),
        )


@dataclass(frozen=True, slots=True)
class BandInputsView:
    """The market inputs of the hedge band the daemon's last evaluation priced: the book's
    mark vol (fraction per year), the marks' realised vol-of-vol (1/sqrt(year)), the
    index's variance over the marks' (dimensionless, >= 1), the jumps' lean (a signed log
    return, dimensionless, within +-0.2), the coherence of the book's gamma (|net| / gross,
    in [0, 1]), its gamma averaged over the spot range ahead (coin per USD of index move)
    and the delta variance rate of its own option trades (coin^2 per year). None: not sent
    (an older daemon), not evaluated yet, or not computed."""

    vol: float | None = None
    vol_of_vol_per_sqrt_year: float | None = None
    jump_var_ratio: float | None = None
    jump_skew: float | None = None
    gamma_coherence: float | None = None
    gamma_ahead_coin_per_usd: float | None = None
    flow_var_coin2_per_year: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> BandInputsView:
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            vol=as_float(data.get("vol")),
            vol_of_vol_per_sqrt_year=as_float(data.get("vol_of_vol_per_sqrt_year")),
            jump_var_ratio=as_float(data.get("jump_var_ratio")),
            jump_skew=as_float(data.get("jump_skew")),
            gamma_coherence=as_float(data.get("gamma_coherence")),
            gamma_ahead_coin_per_usd=as_float(data.get("gamma_ahead_coin_per_usd")),
            flow_var_coin2_per_year=as_float(data.get("flow_var_coin2_per_year")),
        )


@dataclass(frozen=True, slots=True)
class UnderlyingView:
    """One underlying's risk. Coin of the underlying: delta, band, target; gamma coin per USD
    of index move; vega USD per 1.00 of vol; theta USD per day; hedge cost USD; time in band
    a fraction of the evaluations."""

    name: str
    delta_coin: float | None
    lower_coin: float | None
    upper_coin: float | None
    target_coin: float | None
    gamma_coin_per_usd: float | None
    vega_usd_per_vol: float | None
    theta_usd_per_day: float | None
    index_usd: float | None
    hedges: int | None
    hedge_cost_usd: float | None
    time_in_band: float | None
    band_inputs: BandInputsView = field(default_factory=BandInputsView)

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> UnderlyingView:
        raw_band = data.get("band")
        band: Mapping[str, Any] = raw_band if isinstance(raw_band, Mapping) else {}
        return cls(
            name=name,
            delta_coin=as_float(data.get("delta")),
            lower_coin=as_float(band.get("lower")),
            upper_coin=as_float(band.get("upper")),
            target_coin=as_float(data.get("target")),
            gamma_coin_per_usd=as_float(data.get("gamma")),
            vega_usd_per_vol=as_float(data.get("vega")),
            theta_usd_per_day=as_float(data.get("theta")),
            index_usd=as_float(data.get("index_usd")),
            hedges=as_int(data.get("hedges")),
            hedge_cost_usd=as_float(data.get("hedge_cost_usd")),
            time_in_band=as_float(data.get("time_in_band")),
            band_inputs=BandInputsView.from_json(data.get("band_inputs")),
        )

    @property
    def gamma_coin_per_pct(self) -> float | None:
        """Change of delta (coin) for a 1 % index move."""
        return self._per_pct(self.gamma_coin_per_usd)

    @property
    def gamma_ahead_coin_per_pct(self) -> float | None:
        """The band's averaged gamma ahead as a change of delta (coin) for a 1 % index move
        (comparable with `gamma_coin_per_pct`)."""
        return self._per_pct(self.band_inputs.gamma_ahead_coin_per_usd)

    def _per_pct(self, gamma_coin_per_usd: float | None) -> float | None:
        if gamma_coin_per_usd is None or self.index_usd is None:
            return None
        return gamma_coin_per_usd * self.index_usd * 0.01


@dataclass(frozen=True, slots=True)
class OrderView:
    """An open order of the hedger: `amount` in `amount_unit`, `limit_price` in `price_unit`
    ("usd", or "coin" of `underlying`)."""

    label: str
    instrument: str
    underlying: str | None
    side: str
    amount: float | None
    amount_unit: str | None
    limit_price: float | None
    price_unit: str | None
    status: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrderView:
        return cls(
            label=as_str(data.get("label")),
            instrument=as_str(data.get("instrument")),
            underlying=opt_str(data.get("underlying")),
            side=as_str(data.get("side")),
            amount=as_float(data.get("amount")),
            amount_unit=opt_str(data.get("amount_unit")),
            limit_price=as_float(data.get("limit_price")),
            price_unit=opt_str(data.get("price_unit")),
            status=as_str(data.get("status")),
        )


@dataclass(frozen=True, slots=True)
class SourceFreshness:
    """One kind of data (positions, tickers, index, ...): how many sources, the oldest age
    (seconds; None when one never arrived) and the stale ones by key."""

    source: str
    count: int
    oldest_age_s: float | None
    stale: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "count": self.count,
            "oldest_age_s": self.oldest_age_s,
            "stale": list(self.stale),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceFreshness:
        return cls(
            source=as_str(data.get("source")),
            count=as_int(data.get("count")) or 0,
            oldest_age_s=as_float(data.get("oldest_age_s")),
            stale=tuple(str(k) for k in data.get("stale") or ()),
        )


def summarize_freshness(
    entries: Iterable[tuple[str, str, float | None, bool]],
) -> list[SourceFreshness]:
    """(source, key, age in s or None for never, stale) per data source, summarised per kind
    of source in first-seen order. A source never received counts as the oldest."""
    kinds: dict[str, list[tuple[str, float | None, bool]]] = {}
    for source, key, age_s, stale in entries:
        kinds.setdefault(source, []).append((key, age_s, stale))
    out = []
    for source, items in kinds.items():
        ages = [a for _k, a, _s in items]
        oldest = None if any(a is None for a in ages) else max(a for a in ages if a is not None)
        stale_keys = tuple(k or "account" for k, _a, s in items if s)
        out.append(SourceFreshness(source, len(items), oldest, stale_keys))
    return out


@dataclass(frozen=True, slots=True)
class AccountView:
    """One venue account's rows of the status document: its own state and the state its
    orders are judged in (the tighter of the portfolio's and its own), its reasons (code and
    detail: why its own state is not ACTIVE), why it is out of routing (None: in), its delta
    per underlying (coin), maintenance margin over equity per settlement currency (fraction)
    and equity (that currency), hedge positions (each instrument's amount unit, and in coin
    of delta) and the oldest data age (s)."""

    name: str
    exchange: str
    roles: tuple[str, ...]
    state: str
    effective_state: str
    reasons: tuple[ReasonView, ...]
    out_of_routing: str | None
    delta_coin: Mapping[str, float | None]
    margin_use: Mapping[str, float | None]
    equity: Mapping[str, float | None]
    hedge_positions: Mapping[str, float]
    oldest_age_s: float | None
    stale: int
    #: Each hedge position's delta (coin of the underlying): where the hedge delta sits.
    hedge_delta_coin: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> AccountView:
        margin = data.get("margin") if isinstance(data.get("margin"), Mapping) else {}
        assert isinstance(margin, Mapping)
        fresh = [SourceFreshness.from_json(f) for f in data.get("data_freshness_summary") or ()]
        ages = [f.oldest_age_s for f in fresh if f.oldest_age_s is not None]
        return cls(
            name=name,
            exchange=as_str(data.get("exchange")),
            roles=tuple(as_str(r) for r in data.get("roles") or ()),
            state=as_str(data.get("state")),
            effective_state=as_str(data.get("effective_state")),
            reasons=tuple(ReasonView.from_json(r) for r in data.get("reasons") or ()),
            out_of_routing=opt_str(data.get("out_of_routing")),
            delta_coin={u: as_float(d) for u, d in (data.get("delta") or {}).items()},
            margin_use={c: as_float(m.get("margin_use")) for c, m in margin.items()},
            equity={c: as_float(m.get("equity")) for c, m in margin.items()},
            hedge_positions={
                k: v for k, v in (data.get("hedge_positions") or {}).items() if as_float(v)
            },
            hedge_delta_coin={
                k: d
                for k, v in (data.get("hedge_delta_coin") or {}).items()
                if (d := as_float(v)) is not None
            },
            oldest_age_s=max(ages) if ages else None,
            stale=sum(len(f.stale) for f in fresh),
        )


@dataclass(frozen=True, slots=True)
class StatusView:
    """The status document as hedgerctl shows it. Times UTC epoch ms on the daemon's clock
    (the simulator's in paper mode); `speed` simulated seconds per wall second."""

    state: StateView
    venue: str
    mode: str | None
    dry_run: bool
    speed: float | None
    numeraire: str
    now_ms: int | None
    started_ms: int | None
    orders_sent: int | None
    errors: int | None
    in_flight: int | None
    underlyings: tuple[UnderlyingView, ...]
    orders: tuple[OrderView, ...]
    freshness: tuple[SourceFreshness, ...]
    accounts: tuple[AccountView, ...] = ()

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StatusView:
        raw_unds = doc.get("underlyings")
        unds: Mapping[str, Any] = raw_unds if isinstance(raw_unds, Mapping) else {}
        if isinstance(doc.get("data_freshness_summary"), list):
            fresh = [SourceFreshness.from_json(f) for f in doc["data_freshness_summary"]]
        else:  # a daemon that sends only the per-source list
            fresh = summarize_freshness(
                (
                    as_str(f.get("source")),
                    as_str(f.get("key"), ""),
                    as_float(f.get("age_s")),
                    bool(f.get("stale")),
                )
                for f in doc.get("data_freshness") or ()
            )
        errors = doc.get("errors")
        return cls(
            state=StateView.from_json(doc),
            venue=as_str(doc.get("venue")),
            mode=opt_str(doc.get("mode")),
            dry_run=doc.get("dry_run") is True,
            speed=as_float(doc.get("speed")),
            numeraire=as_str(doc.get("numeraire")),
            now_ms=as_int(doc.get("now_ms")),
            started_ms=as_int(doc.get("started_ms")),
            orders_sent=as_int(doc.get("orders_sent_total")),
            errors=len(errors) if isinstance(errors, list) else as_int(errors),
            in_flight=as_int(doc.get("executions_in_flight")),
            underlyings=tuple(UnderlyingView.from_json(n, u) for n, u in unds.items()),
            orders=tuple(OrderView.from_json(o) for o in doc.get("open_orders") or ()),
            freshness=tuple(fresh),
            accounts=tuple(
                AccountView.from_json(name, a)
                for name, a in (doc.get("accounts") or {}).items()
                if isinstance(a, Mapping)
            ),
        )


__all__ = [
    "NONE",
    "AccountView",
    "BandInputsView",
    "OrderView",
    "ReasonView",
    "SourceFreshness",
    "StateView",
    "StatusView",
    "UnderlyingView",
    "as_float",
    "as_int",
    "as_str",
    "opt_str",
    "summarize_freshness",
]
