"""The hedge loop puts the coherence of the whole book's gamma (|net| / gross,
`kernel.book_gamma_coherence`) into the risk the hedgerd band takes (`shift_coherence`): the
same figure as the book's options built afresh, exactly 1 for a book of one sign, and not
computed where the policy does not use it."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.hedging.config import HedgerdPolicy, WhalleyWilmottPolicy
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.kernel import book_gamma_coherence
from hedgerd.model import AmountUnit
from hedgerd.portfolio.book import concat_options
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.venues.deribit.names import parse_expiry_ms, parse_instrument_name

NOW = parse_expiry_ms("20NOV26") + 3 * 3_600_000
INDEX = 91_000.0
RISK = UnderlyingRisk("BTC", INDEX, -0.2, -1e-5, 0.6, 20 / 365, vanna_coin_per_vol=0.3)


def _book(state: dict[str, float]) -> GreeksBook:
    book = GreeksBook()
    book.set_index("BTC", INDEX)
    book.set_forward("BTC", parse_expiry_ms("25DEC26"), INDEX * 1.01)
    for name, qty in state.items():
        book.add_instrument(parse_instrument_name(name))
        book.set_option_vol(name, 0.6)
        book.set_position(name, qty, AmountUnit.COIN)
    return book


def _feed(books: list[GreeksBook], policy: object, risk: UnderlyingRisk = RISK) -> UnderlyingRisk:
    loop = SimpleNamespace(_book_options={})
    loop._options_cache = lambda u: HedgeLoop._options_cache(loop, u)  # type: ignore[arg-type]
    return HedgeLoop._with_coherence(loop, "BTC", policy, risk, books, NOW)  # type: ignore[arg-type]


def test_a_mixed_book_over_two_accounts_gets_its_coherence() -> None:
    """A short strangle (27 Nov) in one account, a long far put (25 Dec) in the other: the
    whole book's coherence, as the options built afresh give it, below 1."""
    near = {"BTC-27NOV26-85000-P": -1.0, "BTC-27NOV26-97000-C": -1.0}
    far = {"BTC-25DEC26-90000-P": 2.0}
    books = [_book(near), _book(far)]
    got = _feed(books, HedgerdPolicy())
    fresh = concat_options([b.option_arrays("BTC", NOW) for b in (_book(near), _book(far))])
    want = book_gamma_coherence(fresh, INDEX, 0.6)
    assert got == UnderlyingRisk(**{**_fields(RISK), "gamma_coherence": want})
    assert 0.0 < want < 0.9


def test_a_book_of_one_sign_is_exactly_coherent() -> None:
    books = [_book({"BTC-27NOV26-85000-P": -1.0}), _book({"BTC-25DEC26-97000-C": -0.5})]
    assert _feed(books, HedgerdPolicy()).gamma_coherence == 1.0


@pytest.mark.parametrize(
    ("policy", "risk"),
    [
        (HedgerdPolicy(shift_coherence=0.0), RISK),
        (HedgerdPolicy(k_prefactor=0.0), RISK),
        (WhalleyWilmottPolicy(), RISK),
        (HedgerdPolicy(), UnderlyingRisk("BTC", INDEX, -0.2, -1e-5, 0.6, 20 / 365)),  # no vanna
    ],
)
def test_not_computed_where_the_band_does_not_use_it(policy: object, risk: UnderlyingRisk) -> None:
    books = [_book({"BTC-27NOV26-85000-P": -1.0, "BTC-25DEC26-90000-P": 2.0})]
    assert _feed(books, policy, risk) is risk


def test_a_jump_found_needs_it_where_zakamoulines_shift_does_not() -> None:
    """The jump term (on by default) takes the coherence and its own cap its square: with
    Zakamouline's shift off, or no vanna, the coherence still comes once the index has
    jumped (ratio above 1 or a lean), and not before."""
    books = [_book({"BTC-27NOV26-85000-P": -1.0, "BTC-25DEC26-90000-P": 2.0})]
    no_zak = HedgerdPolicy(k_prefactor=0.0)
    jumped = dataclasses.replace(RISK, jump_var_ratio=1.3)
    leaned = dataclasses.replace(RISK, jump_skew=-0.01)
    for risk in (jumped, leaned):
        got = _feed(books, no_zak, risk).gamma_coherence
        assert got is not None and 0.0 < got < 1.0
        assert _feed(books, no_zak.model_copy(update={"jump_shift_power": 0.0}), risk) is risk
    assert _feed(books, no_zak, RISK) is RISK


def test_the_risk_refuses_a_coherence_outside_zero_to_one() -> None:
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="gamma_coherence"):
            UnderlyingRisk("BTC", INDEX, -0.2, -1e-5, 0.6, 0.05, gamma_coherence=bad)


def _fields(r: UnderlyingRisk) -> dict[str, object]:
    return {f: getattr(r, f) for f in r.__dataclass_fields__}
