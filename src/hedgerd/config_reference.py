"""The configuration reference in the README, generated from the config models' descriptions.

`python -m hedgerd.config_reference` prints it; a test keeps the README's copy current.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from hedgerd.config import HedgerdConfig

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds directly (X, X | None, A | B)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        out: list[type[BaseModel]] = []
        for arg in typing.get_args(annotation):
            out.extend(_models_in(arg))
        return out
    return []


def _dict_value_models(annotation: Any) -> list[type[BaseModel]]:
    if typing.get_origin(annotation) is dict:
        return _models_in(typing.get_args(annotation)[1])
    return []


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    if text is None:
        text = str(annotation)
    for noise in ("typing.", "pathlib.", "pydantic.types.", "hedgerd.config."):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None").replace("|", "\\|")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        try:
            value = info.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return ""
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, PurePath):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    return f"`{value!r}`".replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        description = (info.description or "").replace("\n", " ").replace("|", "\\|")
        nested = _models_in(info.annotation)
        in_dict = _dict_value_models(info.annotation)
        if nested and len(nested) == 1 and info.annotation is nested[0]:
            yield key, "section", "", description
            yield from _rows(nested[0], key + ".")
        elif in_dict:
            yield key, "table of sections", "", description
            for sub in in_dict:
                kind = sub.model_fields.get("kind")
                tag = ""
                if kind is not None and len(in_dict) > 1:
                    tag = f" (kind = `{kind.default}`)"
                doc = (sub.__doc__ or "").strip().splitlines()
                yield f"{key}.<name>{tag}", "section", "", doc[0] if doc else ""
                yield from _rows(sub, f"{key}.<name>.")
        else:
            yield key, _type_name(info.annotation), _default(info), description


def render_reference() -> str:
    """A Markdown table of every config key: type, default and description."""
    lines = [
        "| key | type | default | description |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| `{k}` | {t} | {d} | {desc} |" for k, t, d, desc in _rows(HedgerdConfig, "")]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_reference())
