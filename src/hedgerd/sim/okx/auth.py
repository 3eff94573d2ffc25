"""OKX request signing (okx.md §2): REST `OK-ACCESS-SIGN = base64(HMAC_SHA256(secret,
timestamp + METHOD + requestPath(+query) + body))` with an ISO-8601 millisecond timestamp that
must lie within 30 s of the venue's simulated clock; WebSocket login signs
`timestamp + "GET" + "/users/self/verify"` with the timestamp in epoch seconds.

`now_ms` may hold several clocks: by default the dialect accepts a timestamp within the window
of the simulated clock or of the wall clock, because ccxt.pro signs its WebSocket login with
the wall clock and no time difference, and a stepped test jumps simulated time by hours (REST
clients can follow the simulated clock with ccxt's `load_time_difference()`); the dialect's
`auth_clock="sim"` makes the simulated clock the only one, as OKX's is."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from hedgerd.sim.okx import errors
from hedgerd.sim.okx.accounts import OkxCredentials
from hedgerd.sim.okx.errors import OkxError

WINDOW_MS = 30_000
WS_VERIFY_PATH = "/users/self/verify"


def sign(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def parse_iso_ms(text: str) -> int:
    """`2020-12-08T09:08:57.715Z` -> UTC epoch ms (ValueError when malformed)."""
    if not text.endswith("Z"):
        raise ValueError("not UTC")
    dt = datetime.fromisoformat(text[:-1] + "+00:00")
    return round(dt.timestamp() * 1000)


def verify_rest(
    headers: Mapping[str, str],
    method: str,
    path_qs: str,
    body: str,
    lookup: Callable[[str], OkxCredentials | None],
    now_ms: Sequence[int],
) -> OkxCredentials:
    """The account a signed REST request belongs to; OkxError (HTTP 401) otherwise."""
    key = headers.get("OK-ACCESS-KEY", "")
    if not key:
        raise OkxError(errors.KEY_EMPTY, "Request header OK-ACCESS-KEY cannot be empty.", 401)
    passphrase = headers.get("OK-ACCESS-PASSPHRASE", "")
    if not passphrase:
        raise OkxError(
            errors.PASSPHRASE_EMPTY, "Request header OK-ACCESS-PASSPHRASE cannot be empty.", 401
        )
    ts = headers.get("OK-ACCESS-TIMESTAMP", "")
    if not ts:
        raise OkxError(
            errors.TIMESTAMP_EMPTY, "Request header OK-ACCESS-TIMESTAMP cannot be empty.", 401
        )
    creds = lookup(key)
    if creds is None:
        raise OkxError(errors.WRONG_KEY, "Invalid OK-ACCESS-KEY.", 401)
    if not hmac.compare_digest(passphrase, creds.passphrase):
        raise OkxError(errors.WRONG_PASSPHRASE, "Invalid OK-ACCESS-PASSPHRASE.", 401)
    try:
        ts_ms = parse_iso_ms(ts)
    except ValueError:
        raise OkxError(errors.BAD_TIMESTAMP, "Invalid OK-ACCESS-TIMESTAMP.", 401) from None
    if all(abs(ts_ms - now) > WINDOW_MS for now in now_ms):
        raise OkxError(errors.TIMESTAMP_EXPIRED, "Timestamp request expired.", 401)
    want = sign(creds.api_secret, ts + method.upper() + path_qs + body)
    if not hmac.compare_digest(headers.get("OK-ACCESS-SIGN", ""), want):
        raise OkxError(errors.BAD_SIGNATURE, "Invalid signature.", 401)
    return creds


def verify_ws_login(
    arg: Mapping[str, object],
    lookup: Callable[[str], OkxCredentials | None],
    now_ms: Sequence[int],
) -> OkxCredentials | None:
    """The account of a WebSocket login `args[0]`, or None (OKX answers 60009)."""
    key, passphrase = str(arg.get("apiKey", "")), str(arg.get("passphrase", ""))
    ts, signature = str(arg.get("timestamp", "")), str(arg.get("sign", ""))
    creds = lookup(key)
    if creds is None or not hmac.compare_digest(passphrase, creds.passphrase):
        return None
    try:
        ts_s = float(ts)
    except ValueError:
        return None
    if all(abs(ts_s * 1000 - now) > WINDOW_MS for now in now_ms):
        return None
    want = sign(creds.api_secret, ts + "GET" + WS_VERIFY_PATH)
    return creds if hmac.compare_digest(signature, want) else None
