"""Hedging config: defaults, descriptions, and errors that name the key."""

from __future__ import annotations

import pytest

from hedgerd.hedging.config import (
    HedgerdPolicy,
    HedgingConfig,
    HedgingConfigError,
    load_hedging_config,
)


def test_defaults_and_policy_lookup() -> None:
    cfg = HedgingConfig()
    name, policy = cfg.policy_for("BTC")
    assert name == "hedgerd" and isinstance(policy, HedgerdPolicy)


def test_every_field_has_a_description() -> None:
    from pydantic import BaseModel

    from hedgerd.hedging import config as mod

    models = [
        v
        for v in vars(mod).values()
        if isinstance(v, type)
        and issubclass(v, BaseModel)
        and v.__module__ == mod.__name__
        and not v.__name__.startswith("_")
    ]
    assert len(models) >= 8
    for model in models:
        for fname, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{fname} has no description"


def test_errors_name_the_key() -> None:
    with pytest.raises(HedgingConfigError) as e:
        load_hedging_config(
            {"policies": {"wide": {"kind": "band", "halfwidth_coin": -1}}, "default_policy": "wide"}
        )
    assert "hedging.policies.wide.halfwidth_coin = -1" in str(e.value)
    with pytest.raises(HedgingConfigError) as e:
        load_hedging_config(
            {"policies": {"w": {"kind": "whalley_wilmott", "gama": 1}}, "default_policy": "w"}
        )
    assert "hedging.policies.w.gama: unknown key" in str(e.value)
    with pytest.raises(HedgingConfigError) as e:
        load_hedging_config({"default_policy": "nope"})
    assert "default_policy 'nope' is not among policies" in str(e.value)
    with pytest.raises(HedgingConfigError) as e:
        load_hedging_config({"policies": {"x": {"kind": "magic"}}, "default_policy": "x"})
    assert "hedging.policies.x" in str(e.value)
    with pytest.raises(HedgingConfigError) as e:
        load_hedging_config({"cost": {"maker_fill_probability": 2}})
    assert "hedging.cost.maker_fill_probability = 2" in str(e.value)
