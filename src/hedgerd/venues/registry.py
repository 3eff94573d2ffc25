"""Venue registry: exchange name → the adapter factory and the instrument-name parser.

The one place that lists the venues hedgerd can trade; everything else (the daemon, the
`positions` and `book` commands, position files) asks here by `VenueSettings.exchange`
instead of importing a venue package. Adding a venue: a folder under `venues/` (adapter,
names, payloads, errors, limits) and one `VenueSpec` below (docs/architecture.md has the
checklist).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hedgerd.model import Instrument
from hedgerd.venues.deribit import names as deribit_names
from hedgerd.venues.okx import names as okx_names

if TYPE_CHECKING:
    from hedgerd.config import VenueSettings
    from hedgerd.venues.base import FeedVenue


class UnknownExchangeError(ValueError):
    """No adapter is registered for this exchange name."""


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """One venue hedgerd can trade.

    `parse_instrument_name(name, venue)` turns a venue instrument name into an `Instrument`
    (raising `ValueError`, e.g. `UnknownInstrumentError`, for a name it cannot read); amounts
    in the returned instrument's `amount_unit`, the venue's order-size unit.
    `make_venue(name, settings, **kwargs)` builds the adapter for one configured account."""

    exchange: str
    make_venue: Callable[..., FeedVenue]
    parse_instrument_name: Callable[[str, str], Instrument]
    description: str


# The adapters are imported when one is made: the name parsers (position files, `hedgerd
# book`) need neither ccxt nor the adapters.
def _make_deribit(name: str, settings: VenueSettings, **kwargs: Any) -> FeedVenue:
    from hedgerd.venues.deribit.venue import DeribitVenue

    return DeribitVenue(name, settings, **kwargs)


def _make_okx(name: str, settings: VenueSettings, **kwargs: Any) -> FeedVenue:
    from hedgerd.venues.okx.venue import OkxVenue

    return OkxVenue(name, settings, **kwargs)


_SPECS: dict[str, VenueSpec] = {
    "deribit": VenueSpec(
        exchange="deribit",
        make_venue=_make_deribit,
        parse_instrument_name=deribit_names.parse_instrument_name,
        description="Deribit: inverse options and futures on BTC/ETH, USDC linear products",
    ),
    "okx": VenueSpec(
        exchange="okx",
        make_venue=_make_okx,
        parse_instrument_name=okx_names.parse_instrument_name,
        description="OKX (API v5): inverse options, inverse and linear swaps, futures, spot",
    ),
}


def register(spec: VenueSpec) -> None:
    """Add (or replace) a venue's spec."""
    _SPECS[spec.exchange] = spec


def specs() -> Mapping[str, VenueSpec]:
    return dict(_SPECS)


def venue_spec(exchange: str) -> VenueSpec:
    try:
        return _SPECS[exchange]
    except KeyError:
        known = ", ".join(sorted(_SPECS))
        raise UnknownExchangeError(
            f"no adapter for exchange {exchange!r} (known: {known})"
        ) from None


def make_venue(name: str, settings: VenueSettings, **kwargs: Any) -> FeedVenue:
    """The adapter for a configured venue account, chosen by `settings.exchange`."""
    return venue_spec(settings.exchange).make_venue(name, settings, **kwargs)


def parse_instrument_name(exchange: str, name: str, venue: str | None = None) -> Instrument:
    """A venue instrument name → `Instrument` by the exchange's own name rules; `venue` is
    the account name stamped on it (default: the exchange name). Raises `ValueError`."""
    return venue_spec(exchange).parse_instrument_name(name, venue or exchange)


__all__ = [
    "UnknownExchangeError",
    "VenueSpec",
    "make_venue",
    "parse_instrument_name",
    "register",
    "specs",
    "venue_spec",
]
