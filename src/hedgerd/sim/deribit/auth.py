"""Authentication for the simulator, as Deribit does it.

- REST: `Authorization: deri-hmac-sha256 id=KEY,ts=MS,sig=HEX,nonce=N` where
  `sig = HMAC-SHA256(secret, ts \\n nonce \\n METHOD \\n URI \\n BODY \\n)` (fields joined and
  ended by newlines); URI is the path and query string as received, or re-encoded the way
  ccxt encoded it before the HTTP library normalised its escapes;
  `Authorization: Bearer TOKEN`; `Authorization: Basic base64(key:secret)`.
- `public/auth` with `grant_type` client_credentials, client_signature
  (`sig = HMAC-SHA256(secret, timestamp + "\\n" + nonce + "\\n" + data)`) or refresh_token.

Signature timestamps are checked against the wall clock (the client's clock is a real one,
whatever the simulated time), within `window_ms`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode

from hedgerd.sim.protocol import (
    ERR_INVALID_ARGUMENTS,
    ERR_INVALID_CREDENTIALS,
    ERR_UNAUTHORIZED,
    Account,
    DeribitError,
)

DEFAULT_SCOPE = (
    "account:read_write block_trade:read_write connection mainaccount "
    "trade:read_write wallet:read_write"
)


def sign_rest(
    secret: str, ts_ms: int | str, nonce: str, method: str, uri: str, body: str = ""
) -> str:
    """The hex HMAC-SHA256 Deribit (and ccxt) put in a `deri-hmac-sha256` header."""
    request_data = f"{method.upper()}\n{uri}\n{body}\n"
    msg = f"{ts_ms}\n{nonce}\n{request_data}"
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def sign_client_signature(secret: str, ts_ms: int | str, nonce: str, data: str = "") -> str:
    """The hex HMAC-SHA256 for `public/auth` with grant_type client_signature."""
    msg = f"{ts_ms}\n{nonce}\n{data}"
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def invalid_credentials(reason: str = "invalid_credentials") -> DeribitError:
    return DeribitError(ERR_INVALID_CREDENTIALS, "invalid_credentials", {"reason": reason})


def unauthorized(reason: str = "unauthorized") -> DeribitError:
    return DeribitError(ERR_UNAUTHORIZED, "unauthorized", {"reason": reason})


def _missing(param: str) -> DeribitError:
    return DeribitError(
        ERR_INVALID_ARGUMENTS, "Invalid params", {"reason": "value required", "param": param}
    )


@dataclass(slots=True)
class Token:
    """An issued token. `session_id` ties tokens to the WebSocket session that asked for them
    (None for HTTP), so `private/logout` can invalidate a session's tokens."""

    value: str
    account: Account
    expires_at_s: float  # wall clock, seconds
    kind: str  # "access" | "refresh"
    session_id: int | None
    scope: str


@dataclass(slots=True)
class Authenticator:
    """Looks up accounts by key (through `lookup`, usually `engine.account_for_key`), verifies
    signatures and issues tokens."""

    lookup: Callable[[str], Account | None]
    window_ms: int = 60_000
    access_ttl_s: int = 31_536_000  # what Deribit returns to ccxt (one year)
    refresh_ttl_s: int = 31_536_000
    wall_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    _tokens: dict[str, Token] = field(default_factory=dict)

    # ----------------------------------------------------------------------------- tokens
    def _issue(self, account: Account, session_id: int | None, scope: str) -> dict[str, Any]:
        now_s = self.wall_ms() / 1000.0
        stamp = self.wall_ms()
        access = f"{stamp}.{secrets.token_urlsafe(32)}"
        refresh = f"{stamp}.{secrets.token_urlsafe(32)}"
        self._tokens[access] = Token(
            access, account, now_s + self.access_ttl_s, "access", session_id, scope
        )
        self._tokens[refresh] = Token(
            refresh, account, now_s + self.refresh_ttl_s, "refresh", session_id, scope
        )
        return {
            "access_token": access,
            "expires_in": self.access_ttl_s,
            "refresh_token": refresh,
            "scope": scope,
            "enabled_features": [],
            "token_type": "bearer",
        }

    def account_for_token(self, value: str, kind: str = "access") -> Account:
        tok = self._tokens.get(value)
        if tok is None or tok.kind != kind:
            raise unauthorized("invalid_token")
        if tok.expires_at_s < self.wall_ms() / 1000.0:
            del self._tokens[value]
            raise unauthorized("token_expired")
        return tok.account

    def revoke_session(self, session_id: int) -> int:
        """Invalidate every token issued to a WebSocket session; returns how many."""
        gone = [k for k, t in self._tokens.items() if t.session_id == session_id]
        for k in gone:
            del self._tokens[k]
        return len(gone)

    def clear(self) -> None:
        self._tokens.clear()

    # ----------------------------------------------------------------------------- checks
    def _account(self, key: str | None) -> Account:
        if not key:
            raise invalid_credentials()
        acct = self.lookup(key)
        if acct is None:
            raise invalid_credentials()
        return acct

    def _check_ts(self, ts: Any) -> int:
        try:
            ts_ms = int(ts)
        except (TypeError, ValueError):
            raise DeribitError(
                ERR_INVALID_ARGUMENTS,
                "Invalid params",
                {"reason": "invalid format", "param": "timestamp"},
            ) from None
        if abs(self.wall_ms() - ts_ms) > self.window_ms:
            raise invalid_credentials("timestamp outside the allowed window")
        return ts_ms

    def public_auth(
        self, params: Mapping[str, Any], session_id: int | None
    ) -> tuple[Account, dict[str, Any]]:
        """`public/auth`: returns the account and Deribit's result object."""
        grant = params.get("grant_type")
        scope_in = str(params.get("scope") or "")
        if grant == "client_credentials":
            acct = self._account(params.get("client_id"))
            secret = params.get("client_secret")
            if not isinstance(secret, str) or not hmac.compare_digest(secret, acct.api_secret):
                raise invalid_credentials()
        elif grant == "client_signature":
            acct = self._account(params.get("client_id"))
            for p in ("timestamp", "signature"):
                if params.get(p) in (None, ""):
                    raise _missing(p)
            self._check_ts(params["timestamp"])
            expected = sign_client_signature(
                acct.api_secret,
                str(params["timestamp"]),
                str(params.get("nonce") or ""),
                str(params.get("data") or ""),
            )
            if not hmac.compare_digest(expected, str(params["signature"]).lower()):
                raise invalid_credentials("invalid signature")
        elif grant == "refresh_token":
            value = params.get("refresh_token")
            if not isinstance(value, str) or not value:
                raise _missing("refresh_token")
            acct = self.account_for_token(value, "refresh")
            self._tokens.pop(value, None)  # a refresh token is good once
        elif grant is None:
            raise _missing("grant_type")
        else:
            raise DeribitError(
                ERR_INVALID_ARGUMENTS,
                "Invalid params",
                {"reason": "wrong format", "param": "grant_type"},
            )
        scope = DEFAULT_SCOPE
        extra = [
            s
            for s in scope_in.split()
            if s.startswith(("session:", "expires:")) or s == "connection"
        ]
        if extra:
            scope = " ".join(sorted(set(DEFAULT_SCOPE.split()) | set(extra)))
        result = self._issue(acct, session_id, scope)
        if "state" in params:
            result["state"] = str(params["state"])
        return acct, result

    def http_account(self, authorization: str | None, method: str, uri: str, body: str) -> Account:
        """The account behind an HTTP request's `Authorization` header (raises 13009 if none)."""
        if not authorization:
            raise unauthorized("authorization_required")
        scheme, _, rest = authorization.strip().partition(" ")
        scheme_l = scheme.lower()
        if scheme_l == "bearer":
            return self.account_for_token(rest.strip())
        if scheme_l == "basic":
            try:
                key, _, secret = base64.b64decode(rest.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise unauthorized("invalid basic credentials") from None
            acct = self._account(key)
            if not hmac.compare_digest(secret, acct.api_secret):
                raise invalid_credentials()
            return acct
        if scheme_l == "deri-hmac-sha256":
            fields: dict[str, str] = {}
            for part in rest.split(","):
                k, _, v = part.strip().partition("=")
                fields[k.strip()] = v.strip()
            acct = self._account(fields.get("id"))
            ts = fields.get("ts")
            sig = fields.get("sig")
            if not ts or not sig:
                raise unauthorized("malformed signature header")
            self._check_ts(ts)
            nonce = fields.get("nonce", "")
            for candidate in _uri_variants(uri):
                expected = sign_rest(acct.api_secret, ts, nonce, method, candidate, body)
                if hmac.compare_digest(expected, sig.lower()):
                    return acct
            raise invalid_credentials("invalid signature")
        raise unauthorized("unsupported authorization scheme")


def _uri_variants(uri: str) -> list[str]:
    """The URI as received, and re-encoded as clients encode it before signing: HTTP
    libraries may normalise percent-escapes (aiohttp sends `a%3Ab` as `a:b`) after ccxt signed
    `urlencode(params)`."""
    path, sep, query = uri.partition("?")
    if not sep:
        return [uri]
    pairs = parse_qsl(query, keep_blank_values=True)
    out = [uri]
    for quote_via in (quote_plus, quote):
        v = path + "?" + urlencode(pairs, quote_via=quote_via)
        if v not in out:
            out.append(v)
    return out
