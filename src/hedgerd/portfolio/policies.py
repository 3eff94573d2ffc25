"""The hedging policies the hedge loop applies: the config's, with the operator's live
overrides on top (`hedgerctl set hedging.BTC.target_coin ...`), replaced on SIGHUP."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from hedgerd.control.commands import (
    CommandRefusedError,
    Tunable,
    parse_finite_float,
    parse_fraction,
    parse_positive_float,
)
from hedgerd.hedging.config import HedgingConfig, PolicyConfig

log = structlog.get_logger(__name__)


class PolicyBook:
    """The `[hedging]` config in force and the operator's overrides per underlying."""

    def __init__(self, hedging: HedgingConfig, underlyings: Sequence[str]) -> None:
        self.hedging = hedging
        self.underlyings = tuple(underlyings)
        self.overrides: dict[str, PolicyConfig] = {}

    def replace(self, hedging: HedgingConfig) -> None:
        """A reloaded config: its policies, without the overrides made on the old ones."""
        self.hedging = hedging
        self.overrides.clear()

    def policy_for(self, underlying: str) -> tuple[str, PolicyConfig]:
        name, policy = self.hedging.policy_for(underlying)
        override = self.overrides.get(underlying)
        return (name, override) if override is not None else (name, policy)

    def tunables(self) -> dict[str, Tunable]:
        out: dict[str, Tunable] = {}
        for u in self.underlyings:
            for key, parse, fld in (
                ("target_coin", parse_finite_float, "target_delta_coin"),
                ("hedge_ratio", parse_fraction, "hedge_ratio"),
                ("band_coin", parse_positive_float, None),
            ):
                name = f"hedging.{u}.{key}"
                out[name] = Tunable(
                    key=name,
                    description=f"{key} of {u}'s policy",
                    parse=parse,
                    apply=self._setter(u, fld),
                )
        return out

    def _setter(self, underlying: str, fld: str | None) -> Callable[[Any], Any]:
        async def apply(value: Any) -> None:
            _name, policy = self.policy_for(underlying)
            if fld is not None:
                update = {fld: float(value)}
            elif policy.kind == "band":
                update = {"halfwidth_coin": float(value)}
            elif policy.kind == "timer":
                raise CommandRefusedError("a timer policy has no band")
            else:
                update = {"min_halfwidth_coin": float(value)}
            new = type(policy).model_validate({**policy.model_dump(), **update})
            self.overrides[underlying] = new
            log.info("daemon.tuned", underlying=underlying, **update)

        return apply
