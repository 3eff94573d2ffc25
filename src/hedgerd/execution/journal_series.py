"""The hedging picture's data (`hedgerd.ops.plots`) from a journal: `hedgerd journal export
--plot`.

The journal keeps the decisions that sent orders, not every evaluation, so an underlying's delta
is known at each such decision: the net delta it judged and the delta once its legs fill (two
points at the decision's time), against the band and target it used. Hedges are the journalled
fills, each on the underlying of the decision its order came from. Fills of orders with no
decision (adopted, placed by hand) are not hedges, and neither is a fill of an instrument its
order did not trade (a `fill_conflict`): both are left out.

A fill's cost is its fee plus its distance from the index at the decision (`spot_usd`, USD per
coin), both in USD (`hedging.costs.fill_cost`): the journal holds no mid, so unlike the live
count (distance from the mid at the fill) this includes the instrument's basis to the index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hedgerd.execution.journal import DecisionRecord, JournalStore
from hedgerd.hedging.costs import fill_cost
from hedgerd.model.instruments import AmountUnit, PriceUnit
from hedgerd.model.orders import Fill
from hedgerd.ops.plots import DeltaPoint, HedgeMark, UnderlyingSeries

#: How `journal_series` measures a hedge's cost (the picture's legend).
JOURNAL_COST_LABEL = "fees + distance from the index at the decision"


@dataclass(frozen=True, slots=True)
class DecidedFill:
    """A journalled fill and the decision id of its order (None: no decision)."""

    fill: Fill
    decision_id: str | None


@dataclass(frozen=True, slots=True)
class _LegUnits:
    amount_unit: AmountUnit
    price_unit: PriceUnit


@dataclass(frozen=True, slots=True)
class _Decision:
    """What the picture needs of a journalled decision (coin deltas, USD per coin index)."""

    ts_ms: int
    underlying: str
    net_delta_coin: float
    delta_after_coin: float
    band_lower_coin: float
    target_coin: float
    band_upper_coin: float
    spot_usd: float
    legs: dict[str, _LegUnits]  # by instrument

    @classmethod
    def of(cls, record: DecisionRecord) -> _Decision | None:
        """None for a payload that is not a `HedgeDecision`'s (a record written by hand or by
        another version): one unreadable row should not cost the whole picture."""
        try:
            return cls._of(record)
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def _of(cls, record: DecisionRecord) -> _Decision:
        # The payload is `dataclasses.asdict(HedgeDecision)` as JSON (enums as their values).
        p = record.payload
        return cls(
            ts_ms=record.ts_ms,
            underlying=record.underlying,
            net_delta_coin=float(p["net_delta_coin"]),
            delta_after_coin=float(p["delta_after_coin"]),
            band_lower_coin=float(p["band_lower_coin"]),
            target_coin=float(p["target_delta_coin"]),
            band_upper_coin=float(p["band_upper_coin"]),
            spot_usd=float(p["spot_usd"]),
            legs={
                str(leg["instrument"]): _LegUnits(
                    AmountUnit(leg["amount_unit"]), PriceUnit(leg["price_unit"])
                )
                for leg in p.get("legs", ())
            },
        )


def journal_series(
    decisions: Iterable[DecisionRecord], fills: Iterable[DecidedFill]
) -> list[UnderlyingSeries]:
    """Per underlying (sorted by name), the delta points of `decisions` and the hedges of
    `fills` (see the module doc). `decisions` must include every decision a fill refers to; one
    whose payload is not a `HedgeDecision`'s is left out, with its fills."""
    by_id = {r.decision_id: d for r in decisions if (d := _Decision.of(r)) is not None}
    points: dict[str, list[DeltaPoint]] = {}
    for d in sorted(by_id.values(), key=lambda d: d.ts_ms):
        band = (d.band_lower_coin, d.target_coin, d.band_upper_coin)
        points.setdefault(d.underlying, []).extend(
            (
                DeltaPoint(d.ts_ms, d.net_delta_coin, *band),
                DeltaPoint(d.ts_ms, d.delta_after_coin, *band),
            )
        )
    hedges: dict[str, list[HedgeMark]] = {}
    for df in sorted(fills, key=lambda df: df.fill.ts_ms):
        made = by_id.get(df.decision_id) if df.decision_id is not None else None
        if made is None:
            continue
        f = df.fill
        units = made.legs.get(f.instrument)
        if units is None:
            # Not what its order traded: the journal kept it as a `fill_conflict`, not a hedge.
            continue
        paid = fill_cost(
            f,
            underlying=made.underlying,
            amount_unit=units.amount_unit,
            price_unit=units.price_unit,
            index_usd=made.spot_usd,
            # No index in coin: a coin-priced leg's slippage is unknown here, its fee still counts.
            reference_price=made.spot_usd if units.price_unit is PriceUnit.USD else f.price,
        )
        hedges.setdefault(made.underlying, []).append(HedgeMark(f.ts_ms, f.side, paid.cost_usd))
    return [
        UnderlyingSeries(u, tuple(points.get(u, ())), tuple(hedges.get(u, ())))
        for u in sorted(points.keys() | hedges.keys())
    ]


def load_journal_series(
    store: JournalStore, since_ms: int, until_ms: int | None
) -> list[UnderlyingSeries]:
    """`journal_series` of the decisions and fills in [since_ms, until_ms) (a fill's decision
    is included even when it came just before `since_ms`)."""
    decisions = {r.decision_id: r for r in store.decisions_since(since_ms, until_ms)}
    fills: list[DecidedFill] = []
    for f in store.fills_since(since_ms, until_ms):
        # Matched like the journal matched it: by label, else by the venue's order id.
        order = store.order(f.label) if f.label else None
        if order is None and f.order_id:
            order = store.order_by_venue_id(f.venue, f.order_id)
        decision_id = order.decision_id if order is not None else None
        if decision_id is not None and decision_id not in decisions:
            earlier = store.decision(decision_id)
            if earlier is not None:
                decisions[decision_id] = earlier
        fills.append(DecidedFill(f, decision_id))
    return journal_series(decisions.values(), fills)


__all__ = [
    "JOURNAL_COST_LABEL",
    "DecidedFill",
    "journal_series",
    "load_journal_series",
]
