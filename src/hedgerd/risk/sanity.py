"""Price sanity: a price is used only if it is a positive finite number, has not jumped too
far from the source's last good price within a short interval, and stays near its reference.
A refused price is quarantined (the caller drops it) and trips `PRICE_SANITY`.

A jump is not always an error: markets gap. A source that names its witness (`GapWitness`:
the underlying, and which independent feed it is) has a jump quarantined without a trip for
`gap_confirm_s`; after it, the new level is accepted when the source held it and another
witness of the same underlying (another venue's index; the same venue's index against its
marks) moved to it too. An isolated jump that reverts is dropped, one that holds trips."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import structlog

from hedgerd.risk.limits import PriceSanitySettings
from hedgerd.risk.trading_state import ReasonCode
from hedgerd.risk.trips import Number, Trip, finite, ms_to_s, reaches

log = structlog.get_logger(__name__)

#: A jump's judgement: held as a possible gap, confirmed (accepted), or refused (a trip).
GapJudgement = Literal["pending", "confirmed", "refused"]


@dataclass(frozen=True, slots=True)
class GapWitness:
    """Which independent feed a price is, for confirming a gap: `underlying` (the prices
    that must move together) and `feed` (e.g. "deribit:index", "deribit:mark", "okx:index":
    sources of one feed are not independent of each other)."""

    underlying: str
    feed: str


@dataclass(slots=True)
class _Gap:
    """A source's jump awaiting confirmation: the level it jumped to, from its last good
    price, since when (board ms)."""

    level: float
    old: float
    since_ms: int
    witness: GapWitness


@dataclass(frozen=True, slots=True)
class PriceVerdict:
    """Whether a price may be used; a quarantined price comes with the trip it caused (None
    when the switch is disabled: a NaN or non-positive price is refused all the same)."""

    accepted: bool
    reason: str
    trip: Trip | None = None


def _pct(a: float, b: float) -> float:
    return abs(a / b - 1.0) * 100.0


class PriceSanitySwitch:
    """Prices per source (e.g. "deribit:BTC-PERPETUAL:mark", "deribit:btc_usd:index"):
    refused when not a positive finite number, or when they reach `max_jump_pct` from the
    source's last good price within `jump_interval_s`, or `max_deviation_pct` from a reference
    price. A refused price does not become the last good one."""

    def __init__(self, settings: PriceSanitySettings) -> None:
        self.settings = settings
        self._last_good: dict[str, tuple[int, float]] = {}
        self._last_vol: dict[str, tuple[int, float]] = {}
        self._pending_vol: dict[str, float] = {}
        #: Jumps awaiting confirmation, per source.
        self._gaps: dict[str, _Gap] = {}
        #: The latest price of each witnessed source, accepted or not: (witness, price, ms).
        self._seen: dict[str, tuple[GapWitness, float, int]] = {}

    def last_good(self, source: str) -> tuple[int, float] | None:
        """(time ms, price USD) of the source's last accepted price."""
        return self._last_good.get(source)

    def _refuse(self, detail: str, values: Mapping[str, Number]) -> PriceVerdict:
        s = self.settings
        trip = Trip(ReasonCode.PRICE_SANITY, s.trip_state, detail, values) if s.enabled else None
        return PriceVerdict(False, detail, trip)

    def observe(
        self,
        now_ms: int,
        source: str,
        price_usd: float,
        reference_price_usd: float | None = None,
        reference_horizon_years: float | None = None,
        witness: GapWitness | None = None,
    ) -> PriceVerdict:
        """Judge `price_usd` from `source` at `now_ms`. With `reference_horizon_years` the
        price is a forward that far out from its reference (the index): the deviation limit
        widens to max(max_deviation_pct, max_basis_annual_pct x horizon). With `witness`, a
        jump may be confirmed as a gap (see the module doc)."""
        s = self.settings
        if not (finite(price_usd) and price_usd > 0):
            return self._refuse(
                f"{source}: price {price_usd} is not a positive number",
                {"source": source, "price_usd": str(price_usd)},
            )
        if witness is not None:
            self._seen[source] = (witness, price_usd, now_ms)
        if s.enabled:
            last = self._last_good.get(source)
            if last is not None and now_ms - last[0] <= s.jump_interval_s * 1000:
                jump = _pct(price_usd, last[1])
                gap: GapJudgement | None = None
                if reaches(jump, s.max_jump_pct):
                    # Far from its own reference (a forward off its ticker's index) is an
                    # error in any market, never a gap to wait for.
                    off = self._off_reference(
                        source, price_usd, reference_price_usd, reference_horizon_years
                    )
                    if off is not None:
                        return off
                    gap = self._judge_gap(now_ms, source, price_usd, last[1], witness)
                if gap == "pending":
                    return PriceVerdict(
                        False,
                        f"{source}: {price_usd:.8g} moved {jump:.2f}% from {last[1]:.8g}: "
                        f"a gap awaiting confirmation ({s.gap_confirm_s:g} s)",
                    )
                if gap == "refused":
                    return self._refuse(
                        f"{source}: {price_usd:.8g} moved {jump:.2f}% from {last[1]:.8g} in "
                        f"{ms_to_s(now_ms - last[0]):.1f} s (limit {s.max_jump_pct:g}%)",
                        {
                            "source": source,
                            "price_usd": price_usd,
                            "last_good_usd": last[1],
                            "jump_pct": round(jump, 4),
                            "limit_pct": s.max_jump_pct,
                        },
                    )
            off = self._off_reference(
                source, price_usd, reference_price_usd, reference_horizon_years
            )
            if off is not None:
                return off
        # Accepted: a jump awaiting confirmation is over (confirmed, or it came back near its
        # last good: an outlier, dropped).
        self._gaps.pop(source, None)
        self._last_good[source] = (now_ms, price_usd)
        return PriceVerdict(True, "ok")

    def _off_reference(
        self,
        source: str,
        price_usd: float,
        reference_price_usd: float | None,
        reference_horizon_years: float | None,
    ) -> PriceVerdict | None:
        """The refusal of a price too far from its reference (None: near enough, or none)."""
        if reference_price_usd is None:
            return None
        s = self.settings
        if not (finite(reference_price_usd) and reference_price_usd > 0):
            return self._refuse(
                f"{source}: reference price {reference_price_usd} is not a positive number",
                {"source": source, "reference_usd": str(reference_price_usd)},
            )
        dev = _pct(price_usd, reference_price_usd)
        limit = s.max_deviation_pct
        if reference_horizon_years is not None and reference_horizon_years > 0:
            limit = max(limit, s.max_basis_annual_pct * reference_horizon_years)
        if not reaches(dev, limit):
            return None
        return self._refuse(
            f"{source}: {price_usd:.8g} is {dev:.2f}% from its reference "
            f"{reference_price_usd:.8g} (limit {limit:g}%)",
            {
                "source": source,
                "price_usd": price_usd,
                "reference_usd": reference_price_usd,
                "deviation_pct": round(dev, 4),
                "limit_pct": round(limit, 6),
            },
        )

    def _judge_gap(
        self, now_ms: int, source: str, price: float, old: float, witness: GapWitness | None
    ) -> GapJudgement:
        """A jump of `source` from its last good `old` to `price`: "pending" (quarantined,
        no trip), "confirmed" (accept it) or "refused" (trip). Without a witness or a
        confirmation window, every jump is refused, as before gaps were confirmed."""
        s = self.settings
        if witness is None or s.gap_confirm_s <= 0:
            return "refused"
        gap = self._gaps.get(source)
        if gap is None or not _pct(price, gap.level) < s.max_jump_pct / 2:
            # A new jump, or one to another level (a gap that runs on past half the jump
            # limit is judged again from there): its window starts now.
            self._gaps[source] = _Gap(price, old, now_ms, witness)
            return "pending"
        if now_ms - gap.since_ms < s.gap_confirm_s * 1000:
            return "pending"
        confirmed_by = sorted(
            {
                w.feed
                for other, (w, p, ms) in self._seen.items()
                if other != source
                and w.underlying == witness.underlying
                and w.feed != witness.feed
                and ms >= gap.since_ms  # seen since the jump began: it moved since, not before
                and _pct(p, gap.level) < _pct(p, gap.old)  # nearer the new level than the old
            }
        )
        if not confirmed_by:
            return "refused"  # it held, alone: an outlier, or a feed gone wrong
        log.warning(
            "price_gap_confirmed",
            source=source,
            price_usd=price,
            last_good_usd=old,
            held_s=round(ms_to_s(now_ms - gap.since_ms), 3),
            confirmed_by=confirmed_by,
        )
        return "confirmed"

    def observe_vol(self, now_ms: int, source: str, vol: float) -> PriceVerdict:
        """Judge an option's mark IV (fraction, 0.6 = 60 %) against its last good one: a move
        of `max_vol_jump_pct` or more within `jump_interval_s` is refused until the next IV
        confirms it (within a tenth of that limit of the refused one): a single bad tick is
        dropped, a real repricing (a crash moves the smile) is taken one tick late. Never a
        trip (the caller keeps the last good IV); a non-positive or NaN IV is refused."""
        s = self.settings
        if not (finite(vol) and vol > 0):
            return PriceVerdict(False, f"{source}: IV {vol} is not a positive number")
        pending = self._pending_vol.pop(source, None)
        if s.enabled:
            last = self._last_vol.get(source)
            if last is not None and now_ms - last[0] <= s.jump_interval_s * 1000:
                jump = _pct(vol, last[1])
                confirms = pending is not None and _pct(vol, pending) < s.max_vol_jump_pct / 10
                if reaches(jump, s.max_vol_jump_pct) and not confirms:
                    self._pending_vol[source] = vol
                    return PriceVerdict(
                        False,
                        f"{source}: IV {vol:.4g} moved {jump:.1f}% from {last[1]:.4g} in "
                        f"{ms_to_s(now_ms - last[0]):.1f} s (limit {s.max_vol_jump_pct:g}%)",
                    )
        self._last_vol[source] = (now_ms, vol)
        return PriceVerdict(True, "ok")

    def check_order_price(self, price_usd: float, reference_price_usd: float) -> PriceVerdict:
        """An order's price against its reference (mark or index), both USD (pre-trade)."""
        s = self.settings
        for what, value in (("order price", price_usd), ("reference price", reference_price_usd)):
            if not (finite(value) and value > 0):
                return self._refuse(
                    f"{what} {value} is not a positive number", {what.replace(" ", "_"): str(value)}
                )
        dev = _pct(price_usd, reference_price_usd)
        if s.enabled and reaches(dev, s.order_price_band_pct):
            return self._refuse(
                f"order price {price_usd:.8g} is {dev:.2f}% from the reference "
                f"{reference_price_usd:.8g} (band {s.order_price_band_pct:g}%)",
                {
                    "price_usd": price_usd,
                    "reference_usd": reference_price_usd,
                    "deviation_pct": round(dev, 4),
                    "limit_pct": s.order_price_band_pct,
                },
            )
        return PriceVerdict(True, "ok")


__all__ = ["GapWitness", "PriceSanitySwitch", "PriceVerdict"]
