"""Book files: a desk's positions, marks and balances in CSV or JSON, read into a GreeksBook.

JSON (``.json``)::

    {
      "valuation_time": "2026-11-20T11:00:00Z",       # ISO 8601 with zone, or epoch ms
      "index_prices_usd": {"BTC": 91250.0, "ETH": 3050.0},
      "balances": {"BTC": 12.5, "ETH": 150.0, "USDC": 250000.0},
      "positions": [
        {"instrument": "BTC-27NOV26-95000-C", "size": -25.0, "mark_iv_pct": 52.0},
        {"instrument": "BTC-25DEC26-80000-P", "size": 10.0, "mark_price": 0.0125,
         "underlying_price_usd": 91900.0},
        {"instrument": "BTC-PERPETUAL", "size": -1500000, "average_price_usd": 90500.0}
      ]
    }

CSV (``.csv``; ``#`` starts a comment line), one record per line::

    record,name,size,mark_iv_pct,mark_price,average_price_usd,underlying_price_usd,value
    time,,,,,,,2026-11-20T11:00:00Z
    index,BTC,,,,,,91250
    balance,BTC,,,,,,12.5
    position,BTC-27NOV26-95000-C,-25,52,,,,

Fields (units are in the names; Deribit's own conventions):

- ``venue`` (JSON key, or a CSV ``venue`` record before the positions): the exchange whose
  instrument names and sizes the file uses, ``deribit`` (the default) or ``okx``.
- ``instrument``/``name``: an instrument name of that exchange (Deribit ``BTC-PERPETUAL``,
  see `hedgerd.venues.deribit.names`; OKX ``BTC-USD-SWAP``, see `hedgerd.venues.okx.names`).
- ``size``: signed position in hedgerd's amount unit: USD for inverse perpetuals and futures
  (a multiple of the contract size: Deribit 10 USD on BTC, OKX 100 USD), coin for options,
  linear contracts and spot (a multiple of the step; OKX contracts times their coin size,
  e.g. 3 BTC option contracts are 0.03).
- ``mark_iv_pct``: the option's mark implied vol in percent (52 = 52 %, as Deribit shows it).
- ``mark_price``: the option's mark in its price unit (coin per coin for inverse options,
  USDC for linear ones); used, through implied vol, when ``mark_iv_pct`` is absent.
- ``underlying_price_usd``: the option's forward (Deribit's ``underlying_price``); sets the
  expiry's forward ratio (default: the index).
- ``average_price_usd``: entry price of a perpetual, future or spot position; without it the
  floating P&L is taken as zero (already in the balance).
- balances: cash balances per currency (Deribit's ``balance``, not ``equity``: floating P&L
  and option values come from the positions). Coin balances are collateral; USDC is cash.

Every error names its row (CSV line number, or the 1-based entry of ``positions`` in JSON)
and raises `BookFileError`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hedgerd.book.greeks_book import BookError, GreeksBook
from hedgerd.model.instruments import Instrument, InstrumentKind
from hedgerd.venues.registry import UnknownExchangeError, parse_instrument_name, venue_spec

CSV_COLUMNS = (
    "record",
    "name",
    "size",
    "mark_iv_pct",
    "mark_price",
    "average_price_usd",
    "underlying_price_usd",
    "value",
)
_POSITION_KEYS = frozenset(
    {"instrument", "size", "mark_iv_pct", "mark_price", "average_price_usd", "underlying_price_usd"}
)
_STEP_TOLERANCE = 1e-9


class BookFileError(ValueError):
    """A book file that cannot be read; the message names the file's offending row."""


@dataclass(frozen=True, slots=True)
class PositionRow:
    """One position line. ``size`` in the instrument's amount unit."""

    row: str
    instrument: Instrument
    size: float
    mark_iv: float | None
    mark_price: float | None
    average_price_usd: float | None
    underlying_price_usd: float | None


@dataclass(frozen=True, slots=True)
class IndexRow:
    row: str
    underlying: str
    price_usd: float


@dataclass(frozen=True, slots=True)
class BalanceRow:
    row: str
    currency: str
    amount: float


@dataclass(frozen=True, slots=True)
class BookFile:
    source: str
    valuation_time_ms: int
    index_prices: tuple[IndexRow, ...]
    balances: tuple[BalanceRow, ...]
    positions: tuple[PositionRow, ...]


# ---- parsing helpers -----------------------------------------------------------------------


def _number(row: str, field: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool):
        raise BookFileError(f"{row}: {field} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise BookFileError(f"{row}: {field} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise BookFileError(f"{row}: {field} must be finite, got {value!r}")
    if positive and x <= 0:
        raise BookFileError(f"{row}: {field} must be positive, got {value!r}")
    return x


def _optional(row: str, field: str, value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _number(row, field, value, positive=True)


def parse_time_ms(row: str, value: Any) -> int:
    """ISO 8601 with a zone (``2026-11-20T11:00:00Z``) or integer epoch milliseconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BookFileError(
            f"{row}: valuation time {value!r} is not ISO 8601 (e.g. 2026-11-20T11:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise BookFileError(f"{row}: valuation time {value!r} needs a zone (e.g. Z for UTC)")
    return round(when.timestamp() * 1000)


def _exchange(row: str, value: Any) -> str:
    """The exchange a file's names belong to (`venue`), checked against the registry."""
    if not isinstance(value, str) or not value.strip():
        raise BookFileError(f"{row}: venue must be an exchange name (deribit, okx)")
    exchange = value.strip().lower()
    try:
        venue_spec(exchange)
    except UnknownExchangeError as exc:
        raise BookFileError(f"{row}: {exc}") from None
    return exchange


def _position(row: str, fields: Mapping[str, Any], exchange: str = "deribit") -> PositionRow:
    name = fields.get("instrument")
    if not isinstance(name, str) or not name.strip():
        raise BookFileError(f"{row}: missing instrument name")
    name = name.strip()
    try:
        inst = parse_instrument_name(exchange, name)
    except ValueError as exc:  # UnknownInstrumentError
        raise BookFileError(f"{row}: {exc}") from None
    if fields.get("size") in (None, ""):
        raise BookFileError(f"{row}: {name}: missing size")
    size = _number(row, "size", fields["size"])
    unit = "USD" if inst.amount_unit.value == "usd" else inst.underlying
    steps = size / inst.amount_step
    if abs(steps - round(steps)) > _STEP_TOLERANCE * max(1.0, abs(steps)):
        raise BookFileError(
            f"{row}: {name}: size {size:g} {unit} is not a multiple of the venue's step "
            f"{inst.amount_step:g} {unit}"
        )
    iv_pct = _optional(row, "mark_iv_pct", fields.get("mark_iv_pct"))
    mark_price = fields.get("mark_price")
    price: float | None = None
    if mark_price is not None and not (isinstance(mark_price, str) and not mark_price.strip()):
        price = _number(row, "mark_price", mark_price)
        if price < 0:
            raise BookFileError(f"{row}: mark_price must not be negative, got {mark_price!r}")
    if inst.is_option:
        if iv_pct is None and price is None:
            raise BookFileError(f"{row}: option {name} needs mark_iv_pct or mark_price")
        if iv_pct is not None and iv_pct < 1.0:
            raise BookFileError(
                f"{row}: mark_iv_pct {iv_pct:g} looks like a fraction; give percent (52 means 52 %)"
            )
    elif iv_pct is not None:
        raise BookFileError(f"{row}: mark_iv_pct is only for options, not {name}")
    avg = _optional(row, "average_price_usd", fields.get("average_price_usd"))
    if avg is not None and inst.is_option:
        raise BookFileError(
            f"{row}: average_price_usd is for perpetuals, futures and spot; option value "
            "comes from its mark"
        )
    return PositionRow(
        row=row,
        instrument=inst,
        size=size,
        mark_iv=None if iv_pct is None else iv_pct / 100.0,
        mark_price=price,
        average_price_usd=avg,
        underlying_price_usd=_optional(
            row, "underlying_price_usd", fields.get("underlying_price_usd")
        ),
    )


def parse_book_json(text: str, source: str = "<json>") -> BookFile:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BookFileError(f"{source}: not valid JSON: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise BookFileError(f"{source}: expected a JSON object at the top")
    known = {"valuation_time", "index_prices_usd", "balances", "positions", "comment", "venue"}
    for key in doc:
        if key not in known:
            raise BookFileError(
                f"{source}: unknown key {key!r} (known: {', '.join(sorted(known))})"
            )
    if "valuation_time" not in doc:
        raise BookFileError(f"{source}: missing valuation_time")
    when = parse_time_ms("valuation_time", doc["valuation_time"])
    exchange = _exchange("venue", doc["venue"]) if "venue" in doc else "deribit"
    index = doc.get("index_prices_usd", {})
    balances = doc.get("balances", {})
    positions = doc.get("positions", [])
    if not isinstance(index, dict):
        raise BookFileError('index_prices_usd: expected an object {"BTC": price, ...}')
    if not isinstance(balances, dict):
        raise BookFileError('balances: expected an object {"BTC": amount, ...}')
    if not isinstance(positions, list):
        raise BookFileError("positions: expected a list")
    idx = tuple(
        IndexRow(
            f"index_prices_usd.{k}",
            str(k).upper(),
            _number(f"index_prices_usd.{k}", "index price", v, positive=True),
        )
        for k, v in index.items()
    )
    bal = tuple(
        BalanceRow(f"balances.{k}", str(k).upper(), _number(f"balances.{k}", "balance", v))
        for k, v in balances.items()
    )
    rows = []
    for i, entry in enumerate(positions, start=1):
        row = f"positions row {i}"
        if not isinstance(entry, dict):
            raise BookFileError(f"{row}: expected an object")
        extra = set(entry) - _POSITION_KEYS
        if extra:
            raise BookFileError(f"{row}: unknown field(s) {', '.join(sorted(extra))}")
        rows.append(_position(row, entry, exchange))
    return BookFile(source, when, idx, bal, tuple(rows))


def parse_book_csv(text: str, source: str = "<csv>") -> BookFile:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)]
    data = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not data:
        raise BookFileError(f"{source}: empty file")
    header_line, header_text = data[0]
    header = [h.strip() for h in next(csv.reader([header_text]))]
    missing = [c for c in ("record", "name") if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown:
        raise BookFileError(
            f"row {header_line}: bad header (columns: {', '.join(CSV_COLUMNS)}; "
            f"missing {missing or 'none'}, unknown {unknown or 'none'})"
        )
    when: int | None = None
    idx: list[IndexRow] = []
    bal: list[BalanceRow] = []
    rows: list[PositionRow] = []
    exchange = "deribit"
    for n, line in data[1:]:
        values = next(csv.reader(io.StringIO(line)))
        row = f"row {n}"
        if len(values) > len(header):
            raise BookFileError(f"{row}: {len(values)} fields, header has {len(header)}")
        rec = dict(zip(header, (v.strip() for v in values), strict=False))
        kind = rec.get("record", "").lower()
        name = rec.get("name", "")
        if kind == "time":
            when = parse_time_ms(row, rec.get("value") or name)
        elif kind == "venue":
            if rows:
                raise BookFileError(f"{row}: the venue record must come before the positions")
            exchange = _exchange(row, rec.get("value") or name)
        elif kind == "index":
            idx.append(
                IndexRow(
                    row, name.upper(), _number(row, "index price", rec.get("value"), positive=True)
                )
            )
        elif kind == "balance":
            bal.append(BalanceRow(row, name.upper(), _number(row, "balance", rec.get("value"))))
        elif kind == "position":
            fields: dict[str, Any] = {k: v for k, v in rec.items() if k in _POSITION_KEYS}
            fields["instrument"] = name
            rows.append(_position(row, fields, exchange))
        else:
            raise BookFileError(
                f"{row}: unknown record {rec.get('record')!r} "
                "(time, venue, index, balance, position)"
            )
    if when is None:
        raise BookFileError(f"{source}: missing 'time' record (the valuation time)")
    return BookFile(source, when, tuple(idx), tuple(bal), tuple(rows))


def load_book_file(path: str | Path) -> BookFile:
    """Read a ``.json`` or ``.csv`` book file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BookFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    suffix = p.suffix.lower()
    if suffix == ".json":
        return parse_book_json(text, str(p))
    if suffix == ".csv":
        return parse_book_csv(text, str(p))
    raise BookFileError(f"{p}: unknown format {suffix!r} (use .json or .csv)")


# ---- into a GreeksBook -------------------------------------------------------------------


def build_book(bf: BookFile) -> GreeksBook:
    """A GreeksBook holding the file's book, valued later at ``bf.valuation_time_ms``.

    Refuses (with the row) duplicates, expired contracts, positions in an underlying without
    an index price, and option marks that imply no vol.
    """
    book = GreeksBook()
    now = bf.valuation_time_ms
    seen_index: dict[str, str] = {}
    for ir in bf.index_prices:
        if ir.underlying in seen_index:
            raise BookFileError(
                f"{ir.row}: second index price for {ir.underlying} "
                f"(first at {seen_index[ir.underlying]})"
            )
        seen_index[ir.underlying] = ir.row
        book.set_index(ir.underlying, ir.price_usd)
    seen_bal: dict[str, str] = {}
    for br in bf.balances:
        if br.currency in seen_bal:
            raise BookFileError(f"{br.row}: second balance in {br.currency}")
        seen_bal[br.currency] = br.row
        if br.currency not in seen_index and br.currency not in {"USD", "USDC", "USDT"}:
            raise BookFileError(f"{br.row}: balance in {br.currency} but no index price for it")
        book.set_balance(br.currency, br.amount)
    seen: dict[str, str] = {}
    forwards: dict[tuple[str, int], tuple[float, str]] = {}
    for pr in bf.positions:
        inst = pr.instrument
        if inst.name in seen:
            raise BookFileError(
                f"{pr.row}: second position in {inst.name} (first at {seen[inst.name]})"
            )
        seen[inst.name] = pr.row
        if inst.underlying not in seen_index:
            raise BookFileError(f"{pr.row}: {inst.name}: no index price for {inst.underlying}")
        if inst.expiry_ms is not None and inst.expiry_ms <= now:
            raise BookFileError(f"{pr.row}: {inst.name} has expired at the valuation time")
        if pr.underlying_price_usd is not None and inst.expiry_ms is not None:
            key = (inst.underlying, inst.expiry_ms)
            prev = forwards.get(key)
            if prev is not None and abs(prev[0] - pr.underlying_price_usd) > 1e-9 * prev[0]:
                raise BookFileError(
                    f"{pr.row}: underlying_price_usd {pr.underlying_price_usd:g} differs from "
                    f"{prev[0]:g} at {prev[1]} for the same expiry"
                )
            forwards[key] = (pr.underlying_price_usd, pr.row)
    try:
        for (und, expiry), (fwd, row) in forwards.items():
            try:
                book.set_forward(und, expiry, fwd)
            except BookError as exc:
                raise BookFileError(f"{row}: {exc}") from None
        for pr in bf.positions:
            _apply(book, pr, now)
    except BookError as exc:  # pragma: no cover - every path above names its row
        raise BookFileError(str(exc)) from None
    # anything the book had to leave out is an input error here: name its row
    for u in book.snapshot(now).underlyings:
        for q in u.quarantined:
            raise BookFileError(f"{seen.get(q.instrument, bf.source)}: {q.instrument}: {q.reason}")
    return book


def _apply(book: GreeksBook, pr: PositionRow, now_ms: int) -> None:
    inst = pr.instrument
    book.add_instrument(inst)
    try:
        if inst.kind is InstrumentKind.OPTION:
            if pr.mark_iv is not None:
                book.set_option_vol(inst.name, pr.mark_iv)
            else:
                assert pr.mark_price is not None
                vol = book.set_option_mark_price(inst.name, pr.mark_price, now_ms)
                if math.isnan(vol):
                    unit = inst.underlying if inst.inverse else "USDC"
                    raise BookFileError(
                        f"{pr.row}: {inst.name}: mark_price {pr.mark_price:g} {unit} implies no "
                        f"volatility (outside no-arbitrage bounds or no time value); give "
                        "mark_iv_pct"
                    )
        book.set_position(inst.name, pr.size, inst.amount_unit, pr.average_price_usd)
    except BookError as exc:
        raise BookFileError(f"{pr.row}: {exc}") from None
