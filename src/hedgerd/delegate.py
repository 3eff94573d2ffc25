"""`Kept`: an attribute that lives on another object, typed."""

from __future__ import annotations

import operator
from typing import Generic, TypeVar, cast, overload

_T = TypeVar("_T")


class Kept(Generic[_T]):
    """An attribute kept on another object (`holder`: the dotted path to it from the owner),
    read and set there under the same name: how the daemon and an account runtime show the
    parts their services hold, without a property pair per part."""

    def __init__(self, holder: str) -> None:
        self._holder = operator.attrgetter(holder)
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Kept[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> _T: ...
    def __get__(self, obj: object | None, owner: type) -> Kept[_T] | _T:
        if obj is None:
            return self
        return cast(_T, getattr(self._holder(obj), self._name))

    def __set__(self, obj: object, value: _T) -> None:
        setattr(self._holder(obj), self._name, value)
