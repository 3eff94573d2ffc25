"""Price sanity: a price is used only if it is a positive finite number, has not jumped too
far from the source's last good price within a short interval, and stays near its reference.
A refused price is quarantined (the caller drops it) and trips `PRICE_SANITY`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hedgerd.risk.limits import PriceSanitySettings
from hedgerd.risk.trading_state import ReasonCode
from hedgerd.risk.trips import Number, Trip, finite, ms_to_s, reaches


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
    ) -> PriceVerdict:
        """Judge `price_usd` from `source` at `now_ms`. With `reference_horizon_years` the
        price is a forward that far out from its reference (the index): the deviation limit
        widens to max(max_deviation_pct, max_basis_annual_pct x horizon)."""
        s = self.settings
        if not (finite(price_usd) and price_usd > 0):
            return self._refuse(
                f"{source}: price {price_usd} is not a positive number",
                {"source": source, "price_usd": str(price_usd)},
            )
        if s.enabled:
            last = self._last_good.get(source)
            if last is not None and now_ms - last[0] <= s.jump_interval_s * 1000:
                jump = _pct(price_usd, last[1])
                if reaches(jump, s.max_jump_pct):
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
            if reference_price_usd is not None:
                if not (finite(reference_price_usd) and reference_price_usd > 0):
                    return self._refuse(
                        f"{source}: reference price {reference_price_usd} is not a positive number",
                        {"source": source, "reference_usd": str(reference_price_usd)},
                    )
                dev = _pct(price_usd, reference_price_usd)
                limit = s.max_deviation_pct
                if reference_horizon_years is not None and reference_horizon_years > 0:
                    limit = max(limit, s.max_basis_annual_pct * reference_horizon_years)
                if reaches(dev, limit):
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
        self._last_good[source] = (now_ms, price_usd)
        return PriceVerdict(True, "ok")

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


__all__ = ["PriceSanitySwitch", "PriceVerdict"]
