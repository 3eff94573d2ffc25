"""Compatibility alias of `hedgerd.venues.deribit.names` for modules another lane owns
(`hedgerd.sim`): remove once they import the new path."""

from hedgerd.venues.deribit.names import (
    UnknownInstrumentError,
    format_expiry,
    option_name,
    parse_expiry_ms,
    parse_instrument_name,
)

__all__ = [
    "UnknownInstrumentError",
    "format_expiry",
    "option_name",
    "parse_expiry_ms",
    "parse_instrument_name",
]
