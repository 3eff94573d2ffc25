"""OKX error codes → hedgerd's error classes and neutral reject reasons.

ccxt 4.5.90 maps OKX codes coarsely: 51016 (duplicate `clOrdId`) is InvalidOrder rather than a
duplicate, 51169/51170 (reduce-only refusals) are unmapped (plain ExchangeError), 50102 (stale
timestamp) is InvalidNonce. OKX's codes are strings (`"code":"51008"`); a single-order failure
carries the real code in the item's `sCode` under a top-level `"code":"1"`, which
`ccxt_venue.venue_error_code` reads first.
"""

from __future__ import annotations

from collections.abc import Mapping

from hedgerd.venues.base import ErrorClass, RejectReason, VenueErrorCode
from hedgerd.venues.ccxt_venue import ERROR_CODES

RATE_LIMIT = 50011
DUPLICATE_CLORDID = 51016
INSUFFICIENT_BALANCE = 51008
REDUCE_ONLY_NO_POSITION = 51169
REDUCE_ONLY_TOO_LARGE = 51170
ORDER_NOT_FOUND = 51603
#: "Order timed out. Please try again." (HTTP 500): the order's outcome is unknown, so it is
#: asked for by `clOrdId` before anything else goes.
ORDER_TIMED_OUT = 51149
#: "The expTime can't be earlier than the current system time": the place/amend request
#: arrived after its `expTime` and OKX did not process it ("the request will not be processed
#: if the current system time of the server is after the expTime"). A definitive refusal,
#: as Deribit's 13888 `timed_out` for `valid_until`: no reject streak, a new intent follows.
REQUEST_EXPIRED = 50036

_D, _R = ErrorClass.DEFINITIVE, ErrorClass.RETRYABLE
_RL, _A = ErrorClass.RATE_LIMITED, ErrorClass.AUTH

CODES: Mapping[int, VenueErrorCode] = {
    # transient: service unavailable, request timeout, system busy, order book busy
    50001: VenueErrorCode(_R),
    50004: VenueErrorCode(_R),
    50013: VenueErrorCode(_R),
    50026: VenueErrorCode(_R),
    51410: VenueErrorCode(_R),  # cancel pending
    ORDER_TIMED_OUT: VenueErrorCode(_R),
    REQUEST_EXPIRED: VenueErrorCode(_D, RejectReason.REQUEST_EXPIRED),
    # rate limits (REST and WebSocket orders share them)
    RATE_LIMIT: VenueErrorCode(_RL, RejectReason.RATE_LIMITED),
    50061: VenueErrorCode(_RL, RejectReason.RATE_LIMITED),
    60014: VenueErrorCode(_RL, RejectReason.RATE_LIMITED),
    # credentials, signature, timestamp window (a clock off by 30 s needs an operator too)
    **{c: VenueErrorCode(_A, RejectReason.AUTH) for c in (50100, 50101, 50102, 50103, 50104,
                                                          50105, 50106, 50107, 50111, 50112,
                                                          50113, 50114, 60009)},
    # refusals
    INSUFFICIENT_BALANCE: VenueErrorCode(_D, RejectReason.INSUFFICIENT_FUNDS),
    51119: VenueErrorCode(_D, RejectReason.INSUFFICIENT_FUNDS),
    51127: VenueErrorCode(_D, RejectReason.INSUFFICIENT_FUNDS),
    51131: VenueErrorCode(_D, RejectReason.INSUFFICIENT_FUNDS),
    DUPLICATE_CLORDID: VenueErrorCode(_D, RejectReason.DUPLICATE_CLIENT_ID),
    REDUCE_ONLY_NO_POSITION: VenueErrorCode(_D, RejectReason.REDUCE_ONLY),
    REDUCE_ONLY_TOO_LARGE: VenueErrorCode(_D, RejectReason.REDUCE_ONLY),
    51001: VenueErrorCode(_D, RejectReason.UNKNOWN_INSTRUMENT),
    51000: VenueErrorCode(_D, RejectReason.INVALID_ORDER),
    51006: VenueErrorCode(_D, RejectReason.INVALID_ORDER),
    51121: VenueErrorCode(_D, RejectReason.INVALID_ORDER),
    51020: VenueErrorCode(_D, RejectReason.INVALID_ORDER),  # below the minimum size
    **{c: VenueErrorCode(_D, RejectReason.ORDER_NOT_FOUND) for c in (51400, 51401, 51402,
                                                                     51503, ORDER_NOT_FOUND)},
}  # fmt: skip

ERROR_CODES["okx"] = CODES

__all__ = [
    "CODES",
    "DUPLICATE_CLORDID",
    "INSUFFICIENT_BALANCE",
    "ORDER_NOT_FOUND",
    "ORDER_TIMED_OUT",
    "RATE_LIMIT",
    "REDUCE_ONLY_NO_POSITION",
    "REDUCE_ONLY_TOO_LARGE",
    "REQUEST_EXPIRED",
]
