"""Client order ids (Deribit `label`), derived deterministically from the decision.

    hg1-<decision key>-<leg>-<slice>-<attempt>        e.g. hg1-3f9a0c2d11e84b7a-0-2-1

- `hg1` marks an order placed by hedgerd (format version 1); any other label is foreign
  (placed by hand or by another tool) and `parse_label` returns None for it.
- The decision key is the decision id itself when it is at most 40 characters of
  `[A-Za-z0-9_-]` (so a label shows its decision at a glance), otherwise `x` followed by the
  first 31 characters of the base32 SHA-256 of the decision id (155 bits: collisions are not a
  concern). Either way the same decision id always gives the same key.
- `leg` is the decision's leg index, `slice_no` the slice of a sliced leg (0 when not sliced),
  `attempt` the try at that slice: a re-priced maker order or the taker fallback is a new
  order with attempt + 1, never a second send of the same label.

Labels are at most 60 characters (Deribit allows 64) of `[A-Za-z0-9_-]`, which every venue
hedgerd targets accepts in a client id. Because the label is a function of (decision id, leg,
slice, attempt), a restarted daemon recomputes the labels of the orders a journalled decision
may have sent and asks the venue about exactly those.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

LABEL_PREFIX = "hg1"
MAX_LABEL_LEN = 64
MAX_DECISION_KEY_LEN = 40
MAX_LEG = 999
MAX_SLICE = 99_999
MAX_ATTEMPT = 99_999

_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_INT = r"(0|[1-9][0-9]*)"
_LABEL = re.compile(
    rf"{LABEL_PREFIX}-(?P<key>[A-Za-z0-9_-]{{1,{MAX_DECISION_KEY_LEN}}})"
    rf"-(?P<leg>{_INT})-(?P<slice>{_INT})-(?P<attempt>{_INT})"
)


def decision_key(decision_id: str) -> str:
    """The part of a label that stands for `decision_id` (see the module doc)."""
    if not decision_id:
        raise ValueError("decision id must not be empty")
    if len(decision_id) <= MAX_DECISION_KEY_LEN and _SAFE.fullmatch(decision_id):
        return decision_id
    digest = hashlib.sha256(decision_id.encode("utf-8")).digest()
    return "x" + base64.b32encode(digest).decode("ascii").lower()[:31]


@dataclass(frozen=True, slots=True)
class ClientId:
    """A parsed hedgerd label. `decision_key` is `decision_key(decision_id)`."""

    decision_key: str
    leg: int
    slice_no: int
    attempt: int

    def __post_init__(self) -> None:
        if not (
            0 < len(self.decision_key) <= MAX_DECISION_KEY_LEN
            and _SAFE.fullmatch(self.decision_key)
        ):
            raise ValueError(f"bad decision key {self.decision_key!r}")
        for name, value, high in (
            ("leg", self.leg, MAX_LEG),
            ("slice_no", self.slice_no, MAX_SLICE),
            ("attempt", self.attempt, MAX_ATTEMPT),
        ):
            if not 0 <= value <= high:
                raise ValueError(f"{name} must be in 0..{high}, got {value}")

    @property
    def label(self) -> str:
        return f"{LABEL_PREFIX}-{self.decision_key}-{self.leg}-{self.slice_no}-{self.attempt}"

    def is_for(self, decision_id: str) -> bool:
        """True if this label belongs to `decision_id`."""
        return decision_key(decision_id) == self.decision_key

    def next_attempt(self) -> ClientId:
        """The id of the next try at the same leg and slice (re-price or taker fallback)."""
        return ClientId(self.decision_key, self.leg, self.slice_no, self.attempt + 1)


def client_id(decision_id: str, leg: int, slice_no: int = 0, attempt: int = 0) -> ClientId:
    """The client id of leg `leg`, slice `slice_no`, try `attempt` of decision `decision_id`."""
    return ClientId(decision_key(decision_id), leg, slice_no, attempt)


def client_label(decision_id: str, leg: int, slice_no: int = 0, attempt: int = 0) -> str:
    """The Deribit `label` for leg `leg`, slice `slice_no`, try `attempt` of `decision_id`."""
    return client_id(decision_id, leg, slice_no, attempt).label


def parse_label(label: str | None) -> ClientId | None:
    """The client id a hedgerd label encodes, or None for a foreign or malformed label (None,
    empty, placed by hand, another format). Only canonical labels parse: no leading zeros, so a
    label and its parsed id map one to one."""
    if not label or len(label) > MAX_LABEL_LEN:
        return None
    match = _LABEL.fullmatch(label)
    if match is None:
        return None
    try:
        return ClientId(match["key"], int(match["leg"]), int(match["slice"]), int(match["attempt"]))
    except ValueError:
        return None


def is_hedgerd_label(label: str | None) -> bool:
    """True if `label` is one hedgerd makes."""
    return parse_label(label) is not None


def new_decision_id(ts_ms: int, entropy: bytes | None = None) -> str:
    """A fresh decision id for callers that do not derive one from their inputs: 9 base-36
    digits of milliseconds (sorts by time) and 8 hex digits of randomness, e.g.
    `0mi8k2v5c-9f1c04ab`.
    `entropy` (4 bytes) makes it reproducible in tests."""
    if ts_ms < 0:
        raise ValueError("ts_ms must be >= 0")
    raw = entropy if entropy is not None else secrets.token_bytes(4)
    if len(raw) != 4:
        raise ValueError("entropy must be 4 bytes")
    return f"{_base36(ts_ms).rjust(9, '0')}-{raw.hex()}"


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
        if value == 0:
            return out


__all__ = [
    "LABEL_PREFIX",
    "MAX_ATTEMPT",
    "MAX_DECISION_KEY_LEN",
    "MAX_LEG",
    "MAX_SLICE",
    "ClientId",
    "client_id",
    "client_label",
    "decision_key",
    "is_hedgerd_label",
    "new_decision_id",
    "parse_label",
]
