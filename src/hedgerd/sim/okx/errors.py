"""OKX's error codes as the dialect answers them (okx.md §2; docs "Error Code")."""

from __future__ import annotations


class OkxError(Exception):
    """A request-level error: `{"code": code, "msg": msg, "data": []}` with `http_status`."""

    def __init__(self, code: str, msg: str, http_status: int = 200) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status


class OrderRejectedError(Exception):
    """A per-order failure: the item's `sCode`/`sMsg` (request code "1" when all failed)."""

    def __init__(self, s_code: str, s_msg: str) -> None:
        super().__init__(f"{s_code} {s_msg}")
        self.s_code = s_code
        self.s_msg = s_msg


def param_error(name: str) -> OrderRejectedError:
    return OrderRejectedError(PARAM_ERROR, f"Parameter {name} error")


PARAM_ERROR = "51000"
RATE_LIMITED = "50011"
TIMESTAMP_EXPIRED = "50102"
KEY_EMPTY = "50103"
PASSPHRASE_EMPTY = "50104"
WRONG_PASSPHRASE = "50105"
TIMESTAMP_EMPTY = "50107"
WRONG_KEY = "50111"
BAD_TIMESTAMP = "50112"
BAD_SIGNATURE = "50113"
WRONG_ENVIRONMENT = "50101"
BODY_EMPTY = "50000"
BAD_INSTRUMENT = "51001"
LOT_SIZE = "51121"
MIN_SIZE = "51020"
INSUFFICIENT = "51008"
DUPLICATE_CLORDID = "51016"
#: A place/amend request whose `expTime` (request effective deadline) had passed when it
#: arrived: "the request will not be processed if the current system time of the server is
#: after the expTime". OKX's error table lists 50036 "The expTime can't be earlier than the
#: current system time. Please adjust the expTime and try again." for it (OKX v5 docs, error
#: codes, general class; 51149 "Order timed out", HTTP 500, is the ambiguous timeout).
REQUEST_EXPIRED = "50036"
CANCEL_FAILED = "51400"
ORDER_NOT_EXIST = "51603"
REDUCE_NO_POSITION = "51169"
REDUCE_SAME_SIDE = "51170"
EXPIRED_INSTRUMENT = "51015"
ENDPOINT_NOT_FOUND = "50014"
WS_LOGIN_FAILED = "60009"
WS_BAD_REQUEST = "60012"
WS_BAD_ARGS = "60013"
WS_NOT_LOGGED_IN = "60011"
WS_TOO_MANY = "60014"
