"""One venue account's connected parts, shared by that account's services."""

from __future__ import annotations

from dataclasses import dataclass

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.config import VenueSettings
from hedgerd.execution.reconcile import Reconciler
from hedgerd.venues.base import FeedVenue
from hedgerd.venues.book_feed import BookFeed


@dataclass(slots=True)
class AccountParts:
    """The account's name (its `[venues.NAME]` section) and settings, and what
    `AccountRuntime` builds for it: the venue session, the order reconciler, the book and the
    feed that keeps the book equal to the account (None until built)."""

    name: str
    settings: VenueSettings
    venue: FeedVenue | None = None
    reconciler: Reconciler | None = None
    book: GreeksBook | None = None
    feed: BookFeed | None = None
