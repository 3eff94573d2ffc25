"""Client order ids, derived deterministically from the decision: one codec per venue.

Every id hedgerd sends names the account that sent it (a 4-character tag), the decision, the
leg, the slice of a sliced leg, the try at that slice, and the epoch of the lease the sending
daemon held (0 without high availability). Because an id is a function of those inputs, a
restarted daemon recomputes the ids a journalled decision may have sent and asks the venue
about exactly those; the journal's `orders.label` is their primary key, so ids are unique across
accounts (the account tag) and across leaders (the epoch).

Deribit `label` (at most 64 characters of `[A-Za-z0-9_-]`):

    hg2-<tag>-<epoch>-<decision key>-<leg>-<slice>-<attempt>
    e.g. hg2-Q7xa-0-0mi8k2v5c-9f1c04ab-0-2-1

    The decision key is the decision id itself when it is at most 28 characters of
    `[A-Za-z0-9_-]` (a label shows its decision at a glance), otherwise `x` and the first 27
    characters of the base32 SHA-256 of the decision id (135 bits). The numbers are decimal
    without leading zeros; the key may hold `-`, the tag and the numbers cannot, so the
    split is unambiguous. At most 63 characters.

    Format 1 (`hg1-<decision key>-<leg>-<slice>-<attempt>`, key up to 40 characters, no account
    tag, epoch 0) is what journals written before accounts hold; it still parses (and a retry of
    such an order keeps format 1), so a daemon upgraded over an old journal reconciles it.

OKX `clOrdId` (1 to 32 ASCII letters and digits, case-sensitive):

    hg2<tag:4><decision key:12><leg:2><slice:3><attempt:3><epoch:5>          always 32 characters

    Fixed-width base62 fields (0-9, A-Z, a-z). The decision key is always the first 12 base62
    digits of the SHA-256 of the decision id (71 bits): two decision ids of one account
    collide with probability 2**-71 per pair, about 2**-25 over ten million decisions.

The account tag is `account_tag(account name)` (4 base62 digits of the name's SHA-256) unless
the configuration names one; the configuration refuses two accounts with the same tag.

A codec's `decode` is exact: it returns a `ClientId` only for an id the same codec would make
(canonical form: its `label` is the input), so any other id (placed by hand, another tool,
another account, another venue's format) is foreign and gives None.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

LABEL_PREFIX = "hg1"
"""Prefix of format-1 Deribit labels (before accounts; parse only, see the module doc)."""
PREFIX = "hg2"
"""Prefix of the per-account ids of every codec."""
MAX_LABEL_LEN = 64
"""Deribit's limit on `label`, in characters."""
OKX_CLORDID_LEN = 32
"""OKX's limit on `clOrdId`, in characters (hedgerd's are always exactly this long)."""
MAX_DECISION_KEY_LEN = 40
"""Longest decision key of a format-1 label, in characters."""
MAX_DERIBIT_KEY_LEN = 28
"""Longest decision key of a format-2 Deribit label, in characters."""
OKX_KEY_LEN = 12
"""Length of an OKX id's decision key, in base62 digits."""
ACCOUNT_TAG_LEN = 4
"""Length of an account tag, in base62 digits."""
MAX_LEG = 999
MAX_SLICE = 99_999
MAX_ATTEMPT = 99_999
MAX_EPOCH = 62**5 - 1
"""Largest lease epoch an id carries (916,132,831: five base62 digits in an OKX id)."""

Scheme = Literal["hg1", "deribit", "okx"]
"""Which codec made an id: format-1 Deribit label, format-2 Deribit label, OKX clOrdId."""

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_INDEX = {c: i for i, c in enumerate(_B62)}
_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_TAG = re.compile(rf"[0-9A-Za-z]{{{ACCOUNT_TAG_LEN}}}")
_OKX_KEY = re.compile(rf"[0-9A-Za-z]{{{OKX_KEY_LEN}}}")
_INT = r"(0|[1-9][0-9]*)"
_LABEL_V1 = re.compile(
    rf"{LABEL_PREFIX}-(?P<key>[A-Za-z0-9_-]{{1,{MAX_DECISION_KEY_LEN}}})"
    rf"-(?P<leg>{_INT})-(?P<slice>{_INT})-(?P<attempt>{_INT})"
)
_LABEL_V2 = re.compile(
    rf"{PREFIX}-(?P<tag>[0-9A-Za-z]{{{ACCOUNT_TAG_LEN}}})-(?P<epoch>{_INT})"
    rf"-(?P<key>[A-Za-z0-9_-]{{1,{MAX_DERIBIT_KEY_LEN}}})"
    rf"-(?P<leg>{_INT})-(?P<slice>{_INT})-(?P<attempt>{_INT})"
)
# Widths of the OKX id's fixed base62 fields after the prefix, in order.
_OKX_FIELDS = (
    ("tag", ACCOUNT_TAG_LEN),
    ("key", OKX_KEY_LEN),
    ("leg", 2),
    ("slice", 3),
    ("attempt", 3),
    ("epoch", 5),
)
_OKX_ID = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{OKX_CLORDID_LEN - len(PREFIX)}}}")


def _b62(value: int, width: int) -> str:
    """`value` in `width` base62 digits (most significant first)."""
    digits = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        digits.append(_B62[rem])
    if value:
        raise ValueError(f"value does not fit {width} base62 digits")
    return "".join(reversed(digits))


def _from_b62(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 62 + _B62_INDEX[ch]
    return value


def _sha256_b62(text: str, width: int) -> str:
    """The first `width` base62 digits of the SHA-256 of `text` (UTF-8)."""
    number = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")
    return _b62(number % 62**width, width)


def account_tag(account: str) -> str:
    """The default client-id tag of account `account` (its `[venues.NAME]` name): 4 base62
    digits of the name's SHA-256. Deterministic, so a restart gives the same ids."""
    if not account:
        raise ValueError("account name must not be empty")
    return _sha256_b62("account:" + account, ACCOUNT_TAG_LEN)


def _hashed_key(decision_id: str, length: int) -> str:
    digest = hashlib.sha256(decision_id.encode("utf-8")).digest()
    return "x" + base64.b32encode(digest).decode("ascii").lower()[: length - 1]


def decision_key(decision_id: str) -> str:
    """The part of a format-1 label that stands for `decision_id` (see the module doc)."""
    if not decision_id:
        raise ValueError("decision id must not be empty")
    if len(decision_id) <= MAX_DECISION_KEY_LEN and _SAFE.fullmatch(decision_id):
        return decision_id
    return _hashed_key(decision_id, 32)


def deribit_decision_key(decision_id: str) -> str:
    """The part of a format-2 Deribit label that stands for `decision_id`."""
    if not decision_id:
        raise ValueError("decision id must not be empty")
    if len(decision_id) <= MAX_DERIBIT_KEY_LEN and _SAFE.fullmatch(decision_id):
        return decision_id
    return _hashed_key(decision_id, MAX_DERIBIT_KEY_LEN)


def okx_decision_key(decision_id: str) -> str:
    """The part of an OKX `clOrdId` that stands for `decision_id` (12 base62 digits)."""
    if not decision_id:
        raise ValueError("decision id must not be empty")
    return _sha256_b62(decision_id, OKX_KEY_LEN)


_KEY_OF = {"hg1": decision_key, "deribit": deribit_decision_key, "okx": okx_decision_key}


@dataclass(frozen=True, slots=True)
class ClientId:
    """A parsed hedgerd client id. `decision_key` is the scheme's key of the decision id
    (`decision_key`, `deribit_decision_key` or `okx_decision_key`); `account_tag` is empty and
    `epoch` 0 only in format-1 labels."""

    decision_key: str
    leg: int
    slice_no: int
    attempt: int
    account_tag: str = ""
    epoch: int = 0
    scheme: Scheme = "hg1"

    def __post_init__(self) -> None:
        key = self.decision_key
        if self.scheme == "hg1":
            key_ok = 0 < len(key) <= MAX_DECISION_KEY_LEN and _SAFE.fullmatch(key) is not None
            if self.account_tag or self.epoch:
                raise ValueError("a format-1 label has no account tag and epoch 0")
        elif self.scheme == "deribit":
            key_ok = 0 < len(key) <= MAX_DERIBIT_KEY_LEN and _SAFE.fullmatch(key) is not None
        elif self.scheme == "okx":
            key_ok = _OKX_KEY.fullmatch(key) is not None
        else:
            raise ValueError(f"unknown client-id scheme {self.scheme!r}")
        if not key_ok:
            raise ValueError(f"bad decision key {key!r} for scheme {self.scheme}")
        if self.scheme != "hg1" and _TAG.fullmatch(self.account_tag) is None:
            raise ValueError(
                f"account tag must be {ACCOUNT_TAG_LEN} letters or digits, got {self.account_tag!r}"
            )
        for name, value, high in (
            ("leg", self.leg, MAX_LEG),
            ("slice_no", self.slice_no, MAX_SLICE),
            ("attempt", self.attempt, MAX_ATTEMPT),
            ("epoch", self.epoch, MAX_EPOCH),
        ):
            if not 0 <= value <= high:
                raise ValueError(f"{name} must be in 0..{high}, got {value}")

    @property
    def label(self) -> str:
        """The id as sent to the venue (Deribit `label`, OKX `clOrdId`)."""
        if self.scheme == "hg1":
            return f"{LABEL_PREFIX}-{self.decision_key}-{self.leg}-{self.slice_no}-{self.attempt}"
        if self.scheme == "deribit":
            return (
                f"{PREFIX}-{self.account_tag}-{self.epoch}-{self.decision_key}"
                f"-{self.leg}-{self.slice_no}-{self.attempt}"
            )
        values = {
            "leg": self.leg,
            "slice": self.slice_no,
            "attempt": self.attempt,
            "epoch": self.epoch,
        }
        parts = [PREFIX, self.account_tag, self.decision_key]
        parts += [_b62(values[name], width) for name, width in _OKX_FIELDS[2:]]
        return "".join(parts)

    def is_for(self, decision_id: str) -> bool:
        """True if this id belongs to `decision_id`."""
        return _KEY_OF[self.scheme](decision_id) == self.decision_key

    def next_attempt(self) -> ClientId:
        """The id of the next try at the same leg and slice (re-price or taker fallback)."""
        return dataclasses.replace(self, attempt=self.attempt + 1)


class ClientIdCodec(Protocol):
    """Makes and reads one account's client ids on one venue."""

    @property
    def account_tag(self) -> str: ...

    def client_id(
        self, decision_id: str, leg: int, slice_no: int = 0, attempt: int = 0, epoch: int = 0
    ) -> ClientId:
        """The id of leg `leg`, slice `slice_no`, try `attempt` of `decision_id` under lease
        epoch `epoch`."""
        ...

    def decode(self, text: str | None) -> ClientId | None:
        """The id `text` encodes if this codec (this account) makes it, else None."""
        ...


@dataclass(frozen=True, slots=True)
class _AccountCodec:
    """What both venues' codecs share: one account's tag, ids of one scheme."""

    account_tag: str
    scheme: ClassVar[Scheme]

    def __post_init__(self) -> None:
        if _TAG.fullmatch(self.account_tag) is None:
            raise ValueError(f"bad account tag {self.account_tag!r}")

    def client_id(
        self, decision_id: str, leg: int, slice_no: int = 0, attempt: int = 0, epoch: int = 0
    ) -> ClientId:
        key = _KEY_OF[self.scheme](decision_id)
        return ClientId(key, leg, slice_no, attempt, self.account_tag, epoch, self.scheme)


@dataclass(frozen=True, slots=True)
class DeribitLabels(_AccountCodec):
    """Deribit `label`s of one account (format 2; format-1 labels decode too)."""

    scheme: ClassVar[Scheme] = "deribit"

    def decode(self, text: str | None) -> ClientId | None:
        cid = _parse_deribit(text)
        if cid is None or cid.scheme == "okx":
            return None
        if cid.scheme == "deribit" and cid.account_tag != self.account_tag:
            return None
        return cid


@dataclass(frozen=True, slots=True)
class OkxClOrdIds(_AccountCodec):
    """OKX `clOrdId`s of one account."""

    scheme: ClassVar[Scheme] = "okx"

    def decode(self, text: str | None) -> ClientId | None:
        cid = _parse_okx(text)
        if cid is None or cid.account_tag != self.account_tag:
            return None
        return cid


def codec_for(exchange: str, tag: str) -> ClientIdCodec:
    """The client-id codec of an account on `exchange` whose tag is `tag` (see `account_tag`)."""
    if exchange == "deribit":
        return DeribitLabels(tag)
    if exchange == "okx":
        return OkxClOrdIds(tag)
    raise ValueError(f"no client-id codec for exchange {exchange!r}")


def _parse_deribit(label: str | None) -> ClientId | None:
    if not label or len(label) > MAX_LABEL_LEN:
        return None
    try:
        if (m := _LABEL_V1.fullmatch(label)) is not None:
            return ClientId(m["key"], int(m["leg"]), int(m["slice"]), int(m["attempt"]))
        if (m := _LABEL_V2.fullmatch(label)) is not None:
            return ClientId(
                m["key"],
                int(m["leg"]),
                int(m["slice"]),
                int(m["attempt"]),
                m["tag"],
                int(m["epoch"]),
                "deribit",
            )
    except ValueError:  # a number out of range
        return None
    return None


def _parse_okx(text: str | None) -> ClientId | None:
    if not text or len(text) != OKX_CLORDID_LEN or _OKX_ID.fullmatch(text) is None:
        return None
    fields: dict[str, str] = {}
    pos = len(PREFIX)
    for name, width in _OKX_FIELDS:
        fields[name] = text[pos : pos + width]
        pos += width
    try:
        return ClientId(
            fields["key"],
            _from_b62(fields["leg"]),
            _from_b62(fields["slice"]),
            _from_b62(fields["attempt"]),
            fields["tag"],
            _from_b62(fields["epoch"]),
            "okx",
        )
    except ValueError:  # a number out of range: not an id hedgerd makes
        return None


def parse_label(label: str | None) -> ClientId | None:
    """The client id a hedgerd id of any scheme and account encodes (format-1 or format-2
    Deribit label, OKX clOrdId), or None for a foreign or malformed id (None, empty, placed by
    hand, another format). Only canonical ids parse: `parse_label(x).label == x`."""
    return _parse_deribit(label) or _parse_okx(label)


def is_hedgerd_label(label: str | None) -> bool:
    """True if `label` is one hedgerd makes (any scheme, any account)."""
    return parse_label(label) is not None


def client_id(decision_id: str, leg: int, slice_no: int = 0, attempt: int = 0) -> ClientId:
    """The format-1 id of leg `leg`, slice `slice_no`, try `attempt` of `decision_id` (the
    label of a journal written before accounts; new orders use an account's codec)."""
    return ClientId(decision_key(decision_id), leg, slice_no, attempt)


def client_label(decision_id: str, leg: int, slice_no: int = 0, attempt: int = 0) -> str:
    """The format-1 Deribit `label` (see `client_id`)."""
    return client_id(decision_id, leg, slice_no, attempt).label


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
    "ACCOUNT_TAG_LEN",
    "LABEL_PREFIX",
    "MAX_ATTEMPT",
    "MAX_DECISION_KEY_LEN",
    "MAX_DERIBIT_KEY_LEN",
    "MAX_EPOCH",
    "MAX_LABEL_LEN",
    "MAX_LEG",
    "MAX_SLICE",
    "OKX_CLORDID_LEN",
    "PREFIX",
    "ClientId",
    "ClientIdCodec",
    "DeribitLabels",
    "OkxClOrdIds",
    "Scheme",
    "account_tag",
    "client_id",
    "client_label",
    "codec_for",
    "decision_key",
    "deribit_decision_key",
    "is_hedgerd_label",
    "new_decision_id",
    "okx_decision_key",
    "parse_label",
]
