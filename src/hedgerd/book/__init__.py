"""hedgerd.book: the live Greeks of the options book (pure: no I/O, no clock).

- `valuation`: value functions and deltas of every instrument kind in USD and coin numeraires
  (the spec, DESIGN.md "Units and conventions").
- `greeks_book`: `GreeksBook`, incremental per underlying and expiry, and its snapshots.
- `positions_file`: CSV/JSON book files; `command`: ``hedgerd book``.
"""

from hedgerd.book.greeks_book import (
    GREEK_FIELDS,
    NO_EXPIRY,
    SCENARIO_VOL_FLOOR,
    SETTLEMENT_WINDOW_MS,
    SPOT_SHOCKS,
    VOL_SHOCKS,
    BadMarketDataError,
    BookError,
    BookSnapshot,
    ExpiryTable,
    Greeks,
    GreeksBook,
    HedgeDelta,
    Numeraire,
    Quarantined,
    ScenarioGrid,
    UnderlyingGreeks,
    UnknownInstrumentError,
)
from hedgerd.book.valuation import RowKind

__all__ = [
    "GREEK_FIELDS",
    "NO_EXPIRY",
    "SCENARIO_VOL_FLOOR",
    "SETTLEMENT_WINDOW_MS",
    "SPOT_SHOCKS",
    "VOL_SHOCKS",
    "BadMarketDataError",
    "BookError",
    "BookSnapshot",
    "ExpiryTable",
    "Greeks",
    "GreeksBook",
    "HedgeDelta",
    "Numeraire",
    "Quarantined",
    "RowKind",
    "ScenarioGrid",
    "UnderlyingGreeks",
    "UnknownInstrumentError",
]
