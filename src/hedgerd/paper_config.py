"""Which config `hedgerd paper` runs with: config/paper.toml when present, else the same values
built in. Kept apart from `hedgerd.paper` (which pulls in the whole daemon) so that `hedgerctl`
can find the paper daemon's control socket without importing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hedgerd.config import ConfigError, HedgerdConfig, load_config

DEFAULT_CONFIG = Path("config/paper.toml")
#: The paper config when config/paper.toml is not at hand (an installed package, a container):
#: the same values as that file (a test keeps them equal).
BUILTIN_PAPER_CONFIG: dict[str, Any] = {
    "numeraire": "coin",
    "dry_run": False,
    "log": {"level": "warning", "format": "auto"},
    "venues": {
        "sim": {
            "mode": "sim",
            "account": "mm",
            "api_key": "sim-mm-key",
            "api_secret": "sim-mm-secret",
            "underlyings": ["BTC", "ETH"],
            "cancel_on_disconnect": True,
            "delta_tolerance_coin": 0.5,
        }
    },
    "journal": {"path": "var/paper/hedgerd.sqlite"},
    "control": {"socket_path": "var/paper/hedgerd.sock"},
    "metrics": {"enabled": True, "port": 0},
    "daemon": {
        "evaluate_interval_s": 1.0,
        "reconcile_interval_s": 15.0,
        "hedge_instruments": {"BTC": ["BTC-PERPETUAL"], "ETH": ["ETH-PERPETUAL"]},
        "status_line": True,
        "status_interval_s": 5.0,
    },
    "hedging": {
        "default_policy": "demo",
        "underlyings": {"ETH": "demo-eth"},
        "policies": {
            "demo": {
                "kind": "hedgerd",
                "risk_aversion_per_usd": 0.05,
                "rebalance_to": "target",
                "min_halfwidth_coin": 0.5,
            },
            "demo-eth": {
                "kind": "hedgerd",
                "risk_aversion_per_usd": 0.05,
                "rebalance_to": "target",
                "min_halfwidth_coin": 10.0,
            },
        },
    },
}


def load_paper_config(path: Path | None) -> HedgerdConfig:
    """`path`, else config/paper.toml when present, else the built-in paper config (with
    `HEDGERD_*` environment overrides either way)."""
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    if path is not None:
        return load_config(path)
    try:
        return HedgerdConfig(**BUILTIN_PAPER_CONFIG)
    except ValidationError as exc:
        raise ConfigError(str(exc)) from None


__all__ = ["BUILTIN_PAPER_CONFIG", "DEFAULT_CONFIG", "load_paper_config"]
