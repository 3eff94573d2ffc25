"""Regenerate `tests/sim/data/okx-capture-shapes.json` from ccxt's recorded OKX captures.

Usage: `python scripts/okx_capture_shapes.py PATH/TO/okx.json [OUT]`, where the input is
`ts/src/test/static/response/okx.json` of the ccxt repository (MIT-licensed real OKX captures).
Only the derived shape is committed: for every capture entry of a method the OKX dialect serves,
the entry's description and input and its `httpResponse` reduced to field names and JSON types
("str", "num", "bool", "null"; objects keep their keys; arrays keep the shape of their first
element, `[]` when empty), envelope included. Methods the dialect does not serve are named under
`not_served` so a regeneration that brings a new method is noticed by the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# ccxt methods whose OKX endpoints the simulator's OKX dialect answers (docs/simulator.md)
SERVED = (
    "createOrder", "fetchAccounts", "fetchBalance", "fetchClosedOrders", "fetchMyTrades",
    "fetchOpenOrders", "fetchOrder", "fetchOrderBook", "fetchPosition", "fetchPositions",
    "fetchTicker", "fetchTime",
)  # fmt: skip
SOURCE = (
    "Derived by scripts/okx_capture_shapes.py from ccxt/ccxt ts/src/test/static/response/okx.json "
    "(MIT License, Copyright (c) 2017 Igor Kroitor): real OKX httpResponse captures, reduced to "
    "field names and JSON types; arrays keep the shape of their first element."
)


def shape(value: Any) -> Any:
    """The JSON type skeleton of `value` (names kept, values replaced by their type)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    if value is None:
        return "null"
    return "str"


def derive(captures: dict[str, Any]) -> dict[str, Any]:
    """The committed fixture from the parsed capture file."""
    methods: dict[str, list[dict[str, Any]]] = {}
    not_served: list[str] = []
    for name, entries in captures["methods"].items():
        if name not in SERVED:
            not_served.append(name)
            continue
        methods[name] = [
            {"description": e["description"], "input": e["input"],
             "shape": shape(e["httpResponse"])}
            for e in entries
        ]  # fmt: skip
    return {"_source": SOURCE, "not_served": sorted(not_served), "methods": methods}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    default = Path(__file__).resolve().parent.parent / "tests/sim/data/okx-capture-shapes.json"
    out = Path(argv[2]) if len(argv) == 3 else default
    fixture = derive(json.loads(Path(argv[1]).read_text()))
    out.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
    print(f"{out}: {sum(len(v) for v in fixture['methods'].values())} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
