"""The hedge loop's cache of the whole book's options (`portfolio.book.BookOptions`, over
`GreeksBook.option_arrays`' own per-version cache): a position change, a mark update, a
forward or an expiry gives new arrays; the index moving does not; and what the cache gives
equals the same book built afresh."""

from __future__ import annotations

import numpy as np

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.kernel import OptionArrays, gamma_ahead, gamma_ahead_key
from hedgerd.model import AmountUnit
from hedgerd.portfolio.book import BookOptions, concat_options
from hedgerd.venues.deribit.names import parse_expiry_ms, parse_instrument_name

NOW = parse_expiry_ms("20NOV26") + 3 * 3_600_000
KEY = (43_200.0, "abs")
STRIKES = (80_000, 90_000, 100_000)
EXPIRIES = ("21NOV26", "27NOV26", "25DEC26")


def _names() -> list[str]:
    return [f"BTC-{e}-{k}-{cp}" for e in EXPIRIES for k in STRIKES for cp in ("C", "P")]


def _book(state: dict[str, tuple[float, float]], index: float = 91_000.0) -> GreeksBook:
    """A book of the options in `state` (name: (position coin, mark vol))."""
    book = GreeksBook()
    book.set_index("BTC", index)
    book.set_forward("BTC", parse_expiry_ms("25DEC26"), index * 1.01)
    for name, (qty, vol) in state.items():
        book.add_instrument(parse_instrument_name(name))
        book.set_option_vol(name, vol)
        book.set_position(name, qty, AmountUnit.COIN)
    return book


def _states() -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    rng = np.random.default_rng(3)
    names = _names()
    a = {n: (float(rng.integers(-20, 20)) / 10 or 0.1, float(rng.uniform(0.4, 0.9))) for n in names}
    b = {n: (float(rng.integers(-20, 20)) / 10 or 0.1, a[n][1]) for n in names[::2]}
    return a, b


def _same(x: OptionArrays, y: OptionArrays) -> None:
    for field in ("is_call", "strike_usd", "tau_years", "qty_coin", "vol"):
        assert np.array_equal(getattr(x, field), getattr(y, field)), field


def _fresh(states: list[dict[str, tuple[float, float]]], now: int) -> OptionArrays:
    return concat_options([_book(s).option_arrays("BTC", now) for s in states])


def test_cached_arrays_and_gamma_equal_a_fresh_book() -> None:
    sa, sb = _states()
    books = [_book(sa), _book(sb)]
    cache = BookOptions("BTC")
    first = cache.arrays(books, NOW)
    _same(first, _fresh([sa, sb], NOW))
    later = NOW + 60_000
    again = cache.arrays(books, later)
    assert again.qty_coin is first.qty_coin  # nothing changed but time: the same arrays
    _same(again, _fresh([sa, sb], later))
    want = float(gamma_ahead(KEY, _fresh([sa, sb], later), 91_000.0, 0.6))
    assert cache.gamma_ahead(KEY, books, later, 91_000.0, 0.6) == want
    assert cache.gamma_ahead(KEY, books, later, 91_000.0, 0.6) == want  # from the cache


def test_the_index_moving_keeps_the_arrays() -> None:
    sa, sb = _states()
    books = [_book(sa), _book(sb)]
    cache = BookOptions("BTC")
    first = cache.arrays(books, NOW)
    version = books[0].options_version("BTC")
    books[0].set_index("BTC", 92_500.0)
    assert books[0].options_version("BTC") == version
    assert cache.arrays(books, NOW).qty_coin is first.qty_coin
    # ... but the averaged gamma is taken at the new index
    g = cache.gamma_ahead(KEY, books, NOW, 92_500.0, 0.6)
    assert g == float(gamma_ahead(KEY, _fresh([sa, sb], NOW), 92_500.0, 0.6))


def test_a_position_change_or_a_mark_update_gives_new_arrays() -> None:
    sa, sb = _states()
    books = [_book(sa), _book(sb)]
    cache = BookOptions("BTC")
    first = cache.arrays(books, NOW)
    g0 = cache.gamma_ahead(KEY, books, NOW, 91_000.0, 0.6)
    name = _names()[7]
    # a fill: the position changes
    sa[name] = (sa[name][0] + 1.5, sa[name][1])
    books[0].set_position(name, sa[name][0], AmountUnit.COIN)
    after_fill = cache.arrays(books, NOW)
    assert after_fill.qty_coin is not first.qty_coin
    _same(after_fill, _fresh([sa, sb], NOW))
    g1 = cache.gamma_ahead(KEY, books, NOW, 91_000.0, 0.6)
    assert g1 != g0
    assert g1 == float(gamma_ahead(KEY, _fresh([sa, sb], NOW), 91_000.0, 0.6))
    # a mark: the vol changes (on the other account)
    other = next(iter(sb))
    sb[other] = (sb[other][0], sb[other][1] + 0.05)
    books[1].set_option_vol(other, sb[other][1])
    after_mark = cache.arrays(books, NOW)
    assert after_mark.vol is not after_fill.vol
    _same(after_mark, _fresh([sa, sb], NOW))
    g2 = cache.gamma_ahead(KEY, books, NOW, 91_000.0, 0.6)
    assert g2 == float(gamma_ahead(KEY, _fresh([sa, sb], NOW), 91_000.0, 0.6))
    # a closed position leaves the arrays
    books[0].set_position(name, 0.0, AmountUnit.COIN)
    del sa[name]
    _same(cache.arrays(books, NOW), _fresh([sa, sb], NOW))


def test_an_expiry_drops_its_options_without_a_version_change() -> None:
    sa, sb = _states()
    books = [_book(sa), _book(sb)]
    cache = BookOptions("BTC")
    n0 = len(cache.arrays(books, NOW).qty_coin)
    past = parse_expiry_ms("21NOV26") + 1
    version = books[0].options_version("BTC")
    got = cache.arrays(books, past)
    assert books[0].options_version("BTC") == version
    assert len(got.qty_coin) < n0
    _same(got, _fresh([sa, sb], past))
    # and back before it (a clock that steps back: a replay): the options are there again
    _same(cache.arrays(books, NOW), _fresh([sa, sb], NOW))


def test_the_default_key_with_its_shortest_tau_goes_through_the_cache() -> None:
    """The default policy's key carries `gamma_min_tau_s`: the cache keeps it apart from the
    plain key, and an hour before the nearest expiry the floor changes the number."""
    key = gamma_ahead_key(HedgerdPolicy())
    assert key is not None and len(key) == 3
    plain = (key[0], key[1])
    sa, sb = _states()
    books = [_book(sa), _book(sb)]
    cache = BookOptions("BTC")
    hour_before = parse_expiry_ms("21NOV26") - 3_600_000
    fresh = _fresh([sa, sb], hour_before)
    floored = cache.gamma_ahead(key, books, hour_before, 90_000.0, 0.6)
    assert floored == float(gamma_ahead(key, fresh, 90_000.0, 0.6))
    assert cache.gamma_ahead(plain, books, hour_before, 90_000.0, 0.6) == float(
        gamma_ahead(plain, fresh, 90_000.0, 0.6)
    )
    assert cache.gamma_ahead(plain, books, hour_before, 90_000.0, 0.6) != floored
    assert cache.gamma_ahead(key, books, hour_before, 90_000.0, 0.6) == floored  # kept
