"""`SimWorld`: one simulated market seen by several venues.

The world is the clock, the index path of each underlying, the vol surface and the option
flow (today held by the Deribit venue, `SimExchange`, which steps them), plus one venue object
per exchange: Deribit (`SimExchange`) and, when served, OKX (`okx.venue.OkxVenue`). Every
market tick moves the shared market first, then lets each other venue do its own tick work
(books, funding, timers) at the same instant, so all venues see the same index at all times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hedgerd.sim.clock import SimClock
from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.okx.venue import OkxVenue
from hedgerd.sim.scenario import Scenario

VENUES = ("deribit", "okx")


def parse_venues(text: str | Sequence[str]) -> tuple[str, ...]:
    """`deribit,okx` -> ("deribit", "okx"); unknown names raise ValueError. Deribit is always
    present (it holds the shared market for now)."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    bad = [n for n in names if n not in VENUES]
    if bad:
        raise ValueError(f"unknown venue(s) {', '.join(bad)}; known: {', '.join(VENUES)}")
    if "deribit" not in names:
        names.insert(0, "deribit")
    return tuple(dict.fromkeys(names))


@dataclass(slots=True)
class SimWorld:
    """The shared clock and market, and the venues on it."""

    clock: SimClock
    deribit: SimExchange
    okx: OkxVenue | None = None

    @classmethod
    def build(
        cls, scenario: Scenario, clock: SimClock, venues: Sequence[str] = ("deribit",)
    ) -> SimWorld:
        deribit = SimExchange(scenario, clock=clock)
        world = cls(clock, deribit)
        if "okx" in venues:
            okx = OkxVenue(deribit, scenario.venues.okx)
            world.okx = okx
            deribit.followers.append(okx.advance_to)
        deribit.world = world
        return world

    def index_price(self, currency: str) -> float:
        """The shared index of `currency`, USD: what every venue marks against."""
        return self.deribit.index_price(currency)

    def venue_names(self) -> tuple[str, ...]:
        return ("deribit", "okx") if self.okx is not None else ("deribit",)
