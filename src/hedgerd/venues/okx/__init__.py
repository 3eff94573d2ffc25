"""The OKX (API v5) adapter, one folder per venue (see `hedgerd.venues.registry`).

- `venue`: `OkxVenue` (ccxt `okx` REST, `ccxt.pro.okx` streams, cancel-all-after dead-man).
- `names`: OKX `instId`s ↔ `Instrument` with OKX's default contract specs.
- `contracts`: OKX contracts ↔ hedgerd amounts; `public/instruments` entries → `Instrument`.
- `payloads`: OKX JSON → hedgerd's model (positions, fills, orders, balances, Greeks, quotes).
- `errors`: OKX error codes → error classes and neutral reject reasons; `limits`: rate lanes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hedgerd.venues.okx.venue import CAPABILITIES, OkxVenue, as_venue, make_venue

__all__ = ["CAPABILITIES", "OkxVenue", "as_venue", "make_venue"]


def __getattr__(name: str) -> Any:
    # The adapter (and ccxt) load on first use: `venues.okx.names` alone stays light.
    if name in __all__:
        return getattr(importlib.import_module("hedgerd.venues.okx.venue"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
