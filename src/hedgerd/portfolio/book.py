"""The portfolio book: one risk view per underlying, the sum over every account's book.

Each account's `GreeksBook` holds that account's positions (options, hedges, collateral) and
values them in the configured numeraire; the portfolio's delta of an underlying is the sum of
the accounts' deltas (delta is additive across accounts: the P&L of the whole is the sum of
the P&Ls). What the controller needs besides the sums is one representative vol and time to
expiry: both are the |gamma|-weighted average over the accounts (as each account's own is
over its expiries), and the index is the first account's (every account follows the same
underlying index; they differ by the feeds' timing only).

Pure: no I/O and no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.kernel import OptionArrays


@dataclass(frozen=True, slots=True)
class PortfolioRisk:
    """The summed risk of one underlying (`total`, what the controller judges) and each
    account's own (`by_account`, for display, limits and cross-checks), in coin of the
    underlying (delta), coin per USD (gamma), in the configured numeraire."""

    total: UnderlyingRisk
    by_account: Mapping[str, UnderlyingRisk]

    def delta_by_account(self) -> dict[str, float]:
        return {name: r.net_delta_coin for name, r in self.by_account.items()}


def sum_risks(by_account: Mapping[str, UnderlyingRisk]) -> PortfolioRisk:
    """The portfolio's risk of one underlying from each account's (at least one; all of the
    same underlying)."""
    if not by_account:
        raise ValueError("no account risk to sum")
    risks = list(by_account.values())
    first = risks[0]
    if any(r.underlying != first.underlying for r in risks):
        raise ValueError(f"accounts disagree on the underlying: {[r.underlying for r in risks]}")
    if len(risks) == 1:
        return PortfolioRisk(first, dict(by_account))
    weights = [abs(r.gamma_coin_per_usd) for r in risks]
    w_sum = sum(weights)

    def weighted(field: str) -> float:
        values = [float(getattr(r, field)) for r in risks]
        if not w_sum > 0:
            return values[0]
        # Shares first: weights near the float minimum lose their precision in a product.
        mean = sum((w / w_sum) * v for w, v in zip(weights, values, strict=True))
        return min(max(mean, min(values)), max(values))

    settlements = [r.next_settlement_ms for r in risks if r.next_settlement_ms is not None]
    total = UnderlyingRisk(
        underlying=first.underlying,
        spot_usd=first.spot_usd,
        net_delta_coin=sum(r.net_delta_coin for r in risks),
        gamma_coin_per_usd=sum(r.gamma_coin_per_usd for r in risks),
        vol=weighted("vol"),
        tau_years=weighted("tau_years"),
        vanna_coin_per_vol=sum(r.vanna_coin_per_vol for r in risks),
        rate=first.rate,
        # Only the accounts settling at the earliest settlement count in its expiring part.
        expiring_delta_coin=sum(
            r.expiring_delta_coin
            for r in risks
            if settlements and r.next_settlement_ms == min(settlements)
        ),
        next_settlement_ms=min(settlements) if settlements else None,
        options_delta_coin=sum(r.options_delta_coin for r in risks),
    )
    return PortfolioRisk(total, dict(by_account))


def concat_options(parts: Sequence[OptionArrays]) -> OptionArrays:
    """Every account's options of one underlying side by side (for `kernel.gamma_ahead`:
    the band's averaged gamma is the whole book's)."""
    got = list(parts)

    def cat(field: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(p, field)) for p in got])

    if any(p.vol is None for p in got):
        return OptionArrays(cat("is_call"), cat("strike_usd"), cat("tau_years"), cat("qty_coin"))
    return OptionArrays(
        cat("is_call"), cat("strike_usd"), cat("tau_years"), cat("qty_coin"), cat("vol")
    )


__all__ = ["PortfolioRisk", "concat_options", "sum_risks"]
