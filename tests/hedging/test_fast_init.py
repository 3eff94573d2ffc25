"""`model.fast_init.fast_frozen_init`: the decision's frozen records built by slot setters
are the records the dataclass's own `__init__` builds (fields, defaults, keywords, checks),
and stay frozen."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass

import pytest

from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.model import AmountUnit, HedgeDecision, HedgeLeg, HedgeStyle, HedgeTrigger, PriceUnit
from hedgerd.model.fast_init import _twin, fast_frozen_init
from hedgerd.model.orders import OrderSide


def _generated(cls: type) -> type:
    """The same class with the dataclass's generated `__init__` (the reference)."""
    ns = {f.name: f.type for f in dataclasses.fields(cls)}
    plain = dataclasses.make_dataclass(
        cls.__name__,
        [
            (f.name, ns[f.name])
            if f.default is dataclasses.MISSING
            else (f.name, ns[f.name], dataclasses.field(default=f.default))
            for f in dataclasses.fields(cls)
        ],
        frozen=True,
        slots=True,
    )
    if hasattr(cls, "__post_init__"):
        plain.__post_init__ = cls.__post_init__  # type: ignore[attr-defined]
    return plain


def _values(obj: object) -> tuple[object, ...]:
    return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))  # type: ignore[arg-type]


LEG = {
    "venue": "deribit",
    "instrument": "BTC-PERPETUAL",
    "side": OrderSide.BUY,
    "amount": 100.0,
    "amount_unit": AmountUnit.USD,
    "delta_coin": 0.002,
    "style": HedgeStyle.TAKER,
    "limit_price": 50_010.0,
    "price_unit": PriceUnit.USD,
    "expected_cost_usd": 0.05,
}

RISK = {
    "underlying": "BTC",
    "spot_usd": 50_000.0,
    "net_delta_coin": 1.5,
    "gamma_coin_per_usd": -2e-5,
    "vol": 0.6,
    "tau_years": 0.1,
}


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (HedgeLeg, LEG),
        (HedgeLeg, {**LEG, "fallback_after_ms": 123}),
        (UnderlyingRisk, RISK),
        (UnderlyingRisk, {**RISK, "next_settlement_ms": 5, "gamma_ahead_coin_per_usd": 1e-6}),
    ],
)
def test_records_equal_the_generated_init(cls: type, kwargs: dict[str, object]) -> None:
    fast = cls(**kwargs)
    ref = _generated(cls)(**kwargs)
    assert _values(fast) == _values(ref)
    # positionally too, and `replace` goes through the same `__init__`
    assert _values(cls(*_values(ref))) == _values(ref)
    assert dataclasses.replace(fast) == fast
    assert hash(fast) == hash(cls(**kwargs))
    assert pickle.loads(pickle.dumps(fast)) == fast
    name = next(iter(kwargs))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fast, name, None)
    with pytest.raises(TypeError):
        cls(**kwargs, nonsense=1)
    with pytest.raises(TypeError):
        cls()


def test_post_init_checks_still_run() -> None:
    with pytest.raises(ValueError, match="vol must be positive"):
        UnderlyingRisk("BTC", 50_000.0, 0.0, 0.0, float("nan"), 0.1)


def test_a_decision_keeps_its_defaults() -> None:
    d = HedgeDecision("id", "BTC", "p", 1, HedgeTrigger.NONE, *[0.0] * 8, (), 0.0, 0.0, 0.0, 1.0)
    assert d.cancel_labels == () and not d.trades


def test_refuses_what_it_cannot_build() -> None:
    @dataclass(slots=True)
    class Mutable:
        x: float

    with pytest.raises(TypeError):
        fast_frozen_init(Mutable)

    @dataclass(frozen=True, slots=True)
    class WithFactory:
        x: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError):
        fast_frozen_init(WithFactory)


def test_records_keep_their_class_and_a_subclass_gets_no_twin() -> None:
    # The stores go through a twin class with the same slots; the record never keeps it.
    leg = HedgeLeg(**LEG)  # type: ignore[arg-type]
    assert type(leg) is HedgeLeg and "_object_setattr" in HedgeLeg.__init__.__code__.co_names

    @dataclass(frozen=True, slots=True)
    class Base:
        x: float

    @dataclass(frozen=True, slots=True)
    class Derived(Base):
        y: float = 2.0

    assert _twin(Base) is not None
    assert _twin(Derived) is None  # its base's slots: another layout, the setters instead
