"""The Deribit adapter, one folder per venue (see `hedgerd.venues.registry`).

- `venue`: `DeribitVenue` (ccxt REST + ccxt.pro tickers, private JSON-RPC session).
- `session`: the private session (auth, heartbeat, cancel-on-disconnect, `user.changes`).
- `payloads`: Deribit JSON → hedgerd's model (positions, fills, orders, tickers, summaries).
- `names`: Deribit instrument names ↔ `Instrument`.
- `errors`: Deribit error codes whose meaning ccxt's mapping blurs; `limits`: rate lanes.

`from hedgerd.venues.deribit import DeribitVenue` keeps working: the adapter's public names
are re-exported here, loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hedgerd.venues.deribit.venue import (
        CAPABILITIES,
        DeribitSession,
        DeribitVenue,
        SessionClosedError,
        as_venue,
        balance_from_summary,
        check_environment,
        fill_from_deribit,
        greeks_from_summary,
        make_venue,
        order_from_deribit,
        position_from_deribit,
        quote_from_deribit,
        resolve_instrument,
        ticker_from_deribit,
    )


def __getattr__(name: str) -> Any:
    # The adapter (and ccxt) load on first use: `venues.deribit.names` alone stays light
    # for the simulator, position files and `hedgerd book`.
    if name in __all__:
        return getattr(importlib.import_module("hedgerd.venues.deribit.venue"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CAPABILITIES",
    "DeribitSession",
    "DeribitVenue",
    "SessionClosedError",
    "as_venue",
    "balance_from_summary",
    "check_environment",
    "fill_from_deribit",
    "greeks_from_summary",
    "make_venue",
    "order_from_deribit",
    "position_from_deribit",
    "quote_from_deribit",
    "resolve_instrument",
    "ticker_from_deribit",
]
