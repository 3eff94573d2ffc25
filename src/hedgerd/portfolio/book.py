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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.kernel import (
    AheadKey,
    OptionArrays,
    book_gamma_coherence,
    gamma_ahead,
)
from hedgerd.model.fast_init import fast_frozen_init


@fast_frozen_init  # built on every evaluation (issue 17's latency)
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
    if len(risks) == 1:
        return PortfolioRisk(first, dict(by_account))
    # Plain loops over a handful of accounts, no helper call per field: this runs on every
    # evaluation (issue 17's decision latency). The sums are accumulated in the order
    # `sum` takes them (decisions pinned bit for bit: tests/hedging/test_decision_pins.py).
    net = gamma = vanna = options = 0.0
    weights: list[float] = []
    first_settle: int | None = None
    lo_vol = hi_vol = first.vol
    lo_tau = hi_tau = first.tau_years
    for r in risks:
        if r.underlying != first.underlying:
            raise ValueError(
                f"accounts disagree on the underlying: {[r.underlying for r in risks]}"
            )
        net += r.net_delta_coin
        gamma += r.gamma_coin_per_usd
        vanna += r.vanna_coin_per_vol
        options += r.options_delta_coin
        weights.append(abs(r.gamma_coin_per_usd))
        # min/max as the builtins pick them (the first of equals, NaN-free: validated).
        v, t = r.vol, r.tau_years
        if v < lo_vol:
            lo_vol = v
        if v > hi_vol:
            hi_vol = v
        if t < lo_tau:
            lo_tau = t
        if t > hi_tau:
            hi_tau = t
        s = r.next_settlement_ms
        if s is not None and (first_settle is None or s < first_settle):
            first_settle = s
    w_sum = sum(weights)
    # Only the accounts settling at the earliest settlement count in its expiring part.
    expiring = 0.0
    if first_settle is not None:
        for r in risks:
            if r.next_settlement_ms == first_settle:
                expiring += r.expiring_delta_coin
    if w_sum > 0:
        # The |gamma|-weighted means, kept within the values' range; shares first: weights
        # near the float minimum lose their precision in a product.
        mean_vol = mean_tau = 0.0
        for w, r in zip(weights, risks, strict=True):
            share = w / w_sum
            mean_vol += share * r.vol
            mean_tau += share * r.tau_years
        vol = min(max(mean_vol, lo_vol), hi_vol)
        tau = min(max(mean_tau, lo_tau), hi_tau)
    else:
        vol, tau = float(first.vol), float(first.tau_years)  # weights all 0: the first's
    total = UnderlyingRisk(  # positional (declaration order): no keyword matching
        first.underlying,
        first.spot_usd,
        net,  # net_delta_coin
        gamma,  # gamma_coin_per_usd
        vol,
        tau,  # tau_years
        vanna,  # vanna_coin_per_vol
        first.rate,
        expiring,  # expiring_delta_coin
        first_settle,  # next_settlement_ms
        options,  # options_delta_coin
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


class BookOptions:
    """The whole book's options of one underlying (every account's `GreeksBook`) and the
    band's averaged gamma over them, for the hedge loop, without rebuilding per evaluation.

    Each book caches its own arrays per options version (`GreeksBook.option_arrays`: the
    same array objects until a position, a mark vol or a forward changes, or an option
    expires); their concatenation is kept while every part is the same, and only the times
    to expiry are rebuilt. The averaged gamma is kept for the same options, index, vol and
    time (the same inputs give the same figure: `kernel.gamma_ahead` is pure)."""

    def __init__(self, underlying: str) -> None:
        self.underlying = underlying
        self._parts: list[OptionArrays] = []  # kept: their arrays' ids key the cache
        self._joined: OptionArrays | None = None
        # One kept figure per kind (`_kept`): the averaged gamma, the gamma's coherence.
        self._figures: dict[str, tuple[object, float]] = {}

    def arrays(self, books: Sequence[GreeksBook], now_ms: int) -> OptionArrays:
        """Every book's live options at `now_ms`, side by side (`concat_options`)."""
        parts = [b.option_arrays(self.underlying, now_ms) for b in books]
        joined = self._joined
        if (
            joined is None
            or len(parts) != len(self._parts)
            or any(p.qty_coin is not q.qty_coin for p, q in zip(parts, self._parts, strict=True))
        ):
            self._parts = parts
            self._joined = joined = concat_options(parts)
            return joined
        tau = np.concatenate([p.tau_years for p in parts])
        return replace(joined, tau_years=tau)

    def gamma_ahead(
        self,
        key: AheadKey,
        books: Sequence[GreeksBook],
        now_ms: int,
        spot_usd: float,
        vol: float,
    ) -> float:
        """`kernel.gamma_ahead(key, arrays(books, now_ms), spot_usd, vol)`, reused for the
        same inputs (the books and their options versions, time, index and vol)."""
        return self._kept(
            key, books, now_ms, spot_usd, vol, lambda a: float(gamma_ahead(key, a, spot_usd, vol))
        )

    def gamma_coherence(
        self, books: Sequence[GreeksBook], now_ms: int, spot_usd: float, vol: float
    ) -> float:
        """`kernel.book_gamma_coherence(arrays(books, now_ms), spot_usd, vol)`, reused for the
        same inputs (as `gamma_ahead`)."""
        return self._kept(
            "coherence",
            books,
            now_ms,
            spot_usd,
            vol,
            lambda a: book_gamma_coherence(a, spot_usd, vol),
        )

    def _kept(
        self,
        what: object,
        books: Sequence[GreeksBook],
        now_ms: int,
        spot_usd: float,
        vol: float,
        compute: Callable[[OptionArrays], float],
    ) -> float:
        """`compute(arrays(books, now_ms))`, kept per kind of figure (`what`'s type: the
        averaged gamma's key, or a name) for the same `what`, books and their options
        versions, time, index and vol."""
        stamp = (
            what,
            tuple((b, b.options_version(self.underlying)) for b in books),
            now_ms,
            spot_usd,
            vol,
        )
        slot = type(what).__name__
        hit = self._figures.get(slot)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        got = compute(self.arrays(books, now_ms))
        self._figures[slot] = (stamp, got)
        return got


__all__ = ["BookOptions", "PortfolioRisk", "concat_options", "sum_risks"]
