"""Deribit error codes whose meaning ccxt's exception mapping blurs, and hedgerd's neutral
reject reasons for Deribit's refusals. ccxt maps 10028 too_many_requests to DDoSProtection
(a NetworkError) and 11094 internal_server_error to a plain ExchangeError (which would read
as definitive)."""

from __future__ import annotations

from collections.abc import Mapping

from hedgerd.venues.base import ErrorClass, RejectReason, VenueErrorCode
from hedgerd.venues.ccxt_venue import ERROR_CODES

#: Deribit's `not_enough_funds`.
NOT_ENOUGH_FUNDS = 10009
#: Deribit's `too_many_requests` (the venue may also end the session).
TOO_MANY_REQUESTS = 10028
#: Deribit's `timed_out`: the request's `valid_until` passed before the matching engine
#: took it, so it was not processed.
TIMED_OUT = 13888

CODES: Mapping[int, VenueErrorCode] = {
    NOT_ENOUGH_FUNDS: VenueErrorCode(ErrorClass.DEFINITIVE, RejectReason.INSUFFICIENT_FUNDS),
    TOO_MANY_REQUESTS: VenueErrorCode(ErrorClass.RATE_LIMITED, RejectReason.RATE_LIMITED),
    11094: VenueErrorCode(ErrorClass.RETRYABLE),
    10041: VenueErrorCode(ErrorClass.RETRYABLE),  # settlement in progress: seconds at 08:00 UTC
    10000: VenueErrorCode(ErrorClass.AUTH, RejectReason.AUTH),
    13004: VenueErrorCode(ErrorClass.AUTH, RejectReason.AUTH),
    13009: VenueErrorCode(ErrorClass.AUTH, RejectReason.AUTH),
    10004: VenueErrorCode(ErrorClass.DEFINITIVE, RejectReason.ORDER_NOT_FOUND),
    11054: VenueErrorCode(ErrorClass.DEFINITIVE, RejectReason.POST_ONLY),  # post_only_reject
    TIMED_OUT: VenueErrorCode(ErrorClass.DEFINITIVE, RejectReason.REQUEST_EXPIRED),
}

ERROR_CODES["deribit"] = CODES

__all__ = ["CODES", "NOT_ENOUGH_FUNDS", "TIMED_OUT", "TOO_MANY_REQUESTS"]
