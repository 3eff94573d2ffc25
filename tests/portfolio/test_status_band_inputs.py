"""The status document's `band_inputs`: the market inputs of the band the last evaluation
priced (`UnderlyingRisk`'s fields of the same names), each with its unit in `STATUS_UNITS`,
None where there was no evaluation yet or the figure was not computed."""

from __future__ import annotations

from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.jumps import JUMP_SKEW_MAX
from hedgerd.portfolio.status import BAND_INPUTS, STATUS_UNITS, band_inputs

NAMES = (
    "vol",
    "vol_of_vol_per_sqrt_year",
    "jump_var_ratio",
    "jump_skew",
    "jump_rate_per_year",
    "gamma_coherence",
    "gamma_ahead_coin_per_usd",
    "flow_var_coin2_per_year",
)


def test_every_figure_of_the_last_risk() -> None:
    risk = UnderlyingRisk(
        "BTC",
        90_000.0,
        0.3,
        -2e-5,
        0.55,
        0.05,
        gamma_ahead_coin_per_usd=1.5e-5,
        flow_var_coin2_per_year=42.0,
        flow_jump_coin=0.7,
        vol_of_vol_per_sqrt_year=1.75,
        gamma_coherence=0.6,
        jump_var_ratio=1.3,
        jump_skew=-0.045,
        jump_rate_per_year=26.0,
    )
    assert band_inputs(risk) == {
        "vol": 0.55,
        "vol_of_vol_per_sqrt_year": 1.75,
        "jump_var_ratio": 1.3,
        "jump_skew": -0.045,
        "jump_rate_per_year": 26.0,
        "gamma_coherence": 0.6,
        "gamma_ahead_coin_per_usd": 1.5e-5,
        "flow_var_coin2_per_year": 42.0,
    }


def test_none_where_not_computed_or_not_evaluated() -> None:
    # The defaults: no averaged gamma nor coherence computed (None), no flow, no vol-of-vol
    # and no jumps seen (0, 0, 1, 0, 0: figures, not missing).
    risk = UnderlyingRisk("BTC", 90_000.0, 0.3, -2e-5, 0.55, 0.05)
    assert band_inputs(risk) == {
        "vol": 0.55,
        "vol_of_vol_per_sqrt_year": 0.0,
        "jump_var_ratio": 1.0,
        "jump_skew": 0.0,
        "jump_rate_per_year": 0.0,
        "gamma_coherence": None,
        "gamma_ahead_coin_per_usd": None,
        "flow_var_coin2_per_year": 0.0,
    }
    assert band_inputs(None) == dict.fromkeys(NAMES)


def test_each_figure_has_its_unit() -> None:
    assert BAND_INPUTS == NAMES
    for name in NAMES:
        assert f"band_inputs.{name}" in STATUS_UNITS, name


def test_the_jump_skew_unit_names_a_signed_return_within_its_bound() -> None:
    unit = STATUS_UNITS["band_inputs.jump_skew"]
    assert "signed" in unit and "return" in unit and f"+-{JUMP_SKEW_MAX}" in unit
