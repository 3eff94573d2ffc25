"""Compatibility alias of `hedgerd.venues.deribit.payloads` for modules another lane owns
(`hedgerd.accounts.runtime`): remove once they call `Venue.resolve_instrument`."""

from hedgerd.venues.deribit.payloads import resolve_instrument

__all__ = ["resolve_instrument"]
