"""The README's configuration reference is generated from the models and kept current."""

from __future__ import annotations

from pathlib import Path

from hedgerd.config import HedgerdConfig
from hedgerd.config_reference import BEGIN, END, render_reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_reference_lists_every_top_level_key() -> None:
    table = render_reference()
    for name in HedgerdConfig.model_fields:
        assert f"| `{name}` |" in table


def test_readme_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "README lacks the config reference markers"
    current = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert current == render_reference(), (
        "README config reference is stale: run `python -m hedgerd.config_reference` and paste "
        "its output between the markers"
    )
