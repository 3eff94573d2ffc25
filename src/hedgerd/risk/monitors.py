"""The kill-switch monitors that judge feeds, the book, orders and the account (price sanity
is in `sanity`, the daily loss in `pnl`). Each is a small object with pure methods: time is an
argument (`now_ms`, UTC epoch ms), no clock is read and no I/O done; each returns a `Trip` or
None. `KillSwitchBoard` (in `kill_switches`) holds one of each."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hedgerd.risk.limits import (
    ClockSkewSettings,
    DeltaLimitSettings,
    GreeksDivergenceSettings,
    MarginSettings,
    NotionalRateSettings,
    OrderNotionalSettings,
    OrderRateSettings,
    PositionMismatchSettings,
    RejectStreakSettings,
    StaleDataSettings,
    VenueDisconnectedSettings,
)
from hedgerd.risk.trading_state import ReasonCode
from hedgerd.risk.trips import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    Number,
    SlidingWindow,
    Trip,
    finite,
    ms_to_s,
    reaches,
    within,
)

# ------------------------------------------------------------------------- stale data


class FeedKind(StrEnum):
    """Which limit a feed is judged by."""

    MARKET = "market"
    POSITIONS = "positions"


# Feeds judged by the positions limit when their kind is not given.
POSITION_FEEDS = frozenset({"positions", "portfolio", "balance", "account"})


@dataclass(slots=True)
class _Feed:
    kind: FeedKind
    registered_ms: int
    last_ms: int | None = None
    #: The switch's update count at this feed's last update (`StaleDataSwitch.updates`):
    #: orders updates against a reconnection by when they were processed, not by stamps.
    last_update: int = 0


class StaleDataSwitch:
    """Age of each (venue, feed): the local receive time of its newest update against `now`.
    A feed that has never delivered is judged from registration plus the start-up grace."""

    def __init__(self, settings: StaleDataSettings) -> None:
        self.settings = settings
        self._feeds: dict[tuple[str, str], _Feed] = {}
        #: Updates observed so far, every feed's: a reconnection notes the count, and only
        #: an update counted after it is data since that reconnection (`fresh_since`).
        self.updates = 0

    def register(self, venue: str, feed: str, now_ms: int, kind: FeedKind | None = None) -> None:
        """Watch a feed from `now_ms` (the daemon registers every feed it subscribes)."""
        if (venue, feed) not in self._feeds:
            self._feeds[(venue, feed)] = _Feed(_kind(feed, kind), now_ms)

    def unregister(self, venue: str, feed: str) -> None:
        """Stop watching a feed (unsubscribed on purpose)."""
        self._feeds.pop((venue, feed), None)

    def observe(self, venue: str, feed: str, ts_ms: int, kind: FeedKind | None = None) -> None:
        """An update of `feed` (registers unknown feeds). `ts_ms`: the update's own timestamp
        (venue time) when it carries one, so a ticker that keeps arriving with a timestamp that
        no longer advances is stale; else the local receive time. The clock-skew switch keeps
        the two clocks within its limit (1 s by default, against 5 s here)."""
        entry = self._feeds.get((venue, feed))
        if entry is None:
            entry = self._feeds[(venue, feed)] = _Feed(_kind(feed, kind), ts_ms)
        if entry.last_ms is None or ts_ms > entry.last_ms:
            entry.last_ms = ts_ms
        self.updates += 1
        entry.last_update = self.updates

    def limit_s(self, feed: str, kind: FeedKind) -> float:
        s = self.settings
        override = s.stale_after_s_by_feed.get(feed)
        if override is not None:
            return override
        return s.positions_stale_after_s if kind is FeedKind.POSITIONS else s.market_stale_after_s

    def ages_s(self, now_ms: int) -> dict[tuple[str, str], float]:
        """Age of each feed's newest update, seconds (+inf for one that never delivered)."""
        return {
            key: math.inf if f.last_ms is None else max(0.0, ms_to_s(now_ms - f.last_ms))
            for key, f in self._feeds.items()
        }

    def evaluate(self, now_ms: int) -> Trip | None:
        """Trip for the stalest feed (relative to its limit) whose age reached its limit."""
        trips = self.evaluate_each(now_ms)
        return trips[0] if trips else None

    def evaluate_each(self, now_ms: int) -> list[Trip]:
        """One trip per venue: its stalest feed (relative to its limit) whose age reached its
        limit; the stalest venue first."""
        if not self.settings.enabled:
            return []
        worst: dict[str, tuple[float, str, float, float]] = {}
        for (venue, feed), f in self._feeds.items():
            limit = self.limit_s(feed, f.kind)
            if f.last_ms is None:
                age = ms_to_s(now_ms - f.registered_ms)
                limit += self.settings.startup_grace_s
            else:
                age = ms_to_s(now_ms - f.last_ms)
            if age >= limit and (venue not in worst or age / limit > worst[venue][0]):
                worst[venue] = (age / limit, feed, age, limit)
        ranked = sorted(worst.items(), key=lambda kv: -kv[1][0])
        return [
            Trip(
                ReasonCode.STALE_DATA,
                self.settings.trip_state,
                f"{venue}/{feed} data is {age:.1f} s old (limit {limit:g} s)",
                {"venue": venue, "feed": feed, "age_s": round(age, 3), "limit_s": limit},
            )
            for venue, (_, feed, age, limit) in ranked
        ]

    def fresh_since(
        self, venue: str, since_ms: int, now_ms: int, since_update: int | None = None
    ) -> bool:
        """Whether `venue`'s data flows: every market feed updated at or after `since_ms`
        (its reconnection: a stream that reconnected but failed to subscribe delivers
        nothing) and, with `since_update` (`updates` when it reconnected), by an update
        observed after it: between two drops, an update processed before the last one
        may carry a stamp at or after the reconnection (the same millisecond, or its own
        time ahead of the board's); and no feed at or past its limit. A venue with no feed
        is not judged."""
        for (v, feed), f in self._feeds.items():
            if v != venue:
                continue
            limit = self.limit_s(feed, f.kind)
            if f.last_ms is None:
                # Positions are confirmed by the stream's changes and the timer's
                # reconciliation: judged as the switch judges them, from registration.
                if f.kind is FeedKind.MARKET:
                    return False
                if ms_to_s(now_ms - f.registered_ms) >= limit + self.settings.startup_grace_s:
                    return False
                continue
            if f.kind is FeedKind.MARKET and (
                f.last_ms < since_ms or (since_update is not None and f.last_update <= since_update)
            ):
                return False
            if ms_to_s(now_ms - f.last_ms) >= limit:
                return False
        return True


def _kind(feed: str, kind: FeedKind | None) -> FeedKind:
    if kind is not None:
        return kind
    return FeedKind.POSITIONS if feed in POSITION_FEEDS else FeedKind.MARKET


# ------------------------------------------------------------------ venue disconnected


class VenueDisconnectedSwitch:
    """How long each venue has been disconnected (never connected counts from registration)."""

    def __init__(self, settings: VenueDisconnectedSettings) -> None:
        self.settings = settings
        self._down_since_ms: dict[str, int | None] = {}
        self._up_since_ms: dict[str, int] = {}
        self._ever_up: set[str] = set()
        self._reconnected: set[str] = set()

    def register(self, venue: str, now_ms: int) -> None:
        self._down_since_ms.setdefault(venue, now_ms)

    def observe(self, venue: str, connected: bool, now_ms: int) -> None:
        if connected:
            if self._down_since_ms.get(venue, now_ms) is not None:
                self._up_since_ms[venue] = now_ms  # (re)connected now: not before
                if venue in self._ever_up:
                    self._reconnected.add(venue)
                self._ever_up.add(venue)
            self._down_since_ms[venue] = None
        else:
            self._up_since_ms.pop(venue, None)
            if self._down_since_ms.get(venue) is None:
                self._down_since_ms[venue] = now_ms

    def up_since_ms(self, venue: str) -> int | None:
        """Since when every stream of `venue` is connected (None: one is down, or none has
        connected yet)."""
        if self._down_since_ms.get(venue, 0) is not None:
            return None
        return self._up_since_ms.get(venue)

    def reconnected_since_ms(self, venue: str) -> int | None:
        """`up_since_ms`, once `venue` has connected again after a disconnection (None
        before: at start the stale-data switch's start-up grace judges the first data)."""
        return self.up_since_ms(venue) if venue in self._reconnected else None

    def evaluate(self, now_ms: int) -> Trip | None:
        """Trip for the venue down longest, once that reached the limit."""
        trips = self.evaluate_each(now_ms)
        return trips[0] if trips else None

    def evaluate_each(self, now_ms: int) -> list[Trip]:
        """One trip per venue down for the limit or longer; the longest first."""
        if not self.settings.enabled:
            return []
        limit = self.settings.trip_after_s
        down_s = {
            venue: ms_to_s(now_ms - since)
            for venue, since in self._down_since_ms.items()
            if since is not None
        }
        ranked = sorted(((d, v) for v, d in down_s.items() if d >= limit), reverse=True)
        return [
            Trip(
                ReasonCode.VENUE_DISCONNECTED,
                self.settings.trip_state,
                f"{venue} disconnected for {down:.1f} s (limit {limit:g} s)",
                {"venue": venue, "disconnected_s": round(down, 3), "limit_s": limit},
            )
            for down, venue in ranked
        ]


# ------------------------------------------------------------------- position mismatch


@dataclass(frozen=True, slots=True)
class PositionDiff:
    """One instrument's position as hedgerd holds it and as the venue reports it, both in coin
    of the underlying (the reconciler converts USD-sized contracts at the index)."""

    instrument: str
    ours_coin: float
    venue_coin: float

    @property
    def diff_coin(self) -> float:
        return self.ours_coin - self.venue_coin


class PositionMismatchSwitch:
    """Reconciliation results: trips when an instrument differs by the limit or more, in
    `consecutive_runs` reconciliations of a venue in a row."""

    def __init__(self, settings: PositionMismatchSettings) -> None:
        self.settings = settings
        self._runs: dict[str, int] = {}

    def restart(self, venue: str) -> None:
        """`venue`'s position stream reconnected: the runs counted so far judged the stream
        that is gone, so the count starts over."""
        self._runs.pop(venue, None)

    def observe(self, now_ms: int, venue: str, diffs: Sequence[PositionDiff]) -> Trip | None:
        """One reconciliation of `venue` (all instruments compared, or only the differing
        ones). A non-finite position counts as a mismatch."""
        s = self.settings
        worst: PositionDiff | None = None
        for d in diffs:
            gap = abs(d.diff_coin)
            if not finite(gap) or reaches(gap, s.mismatch_limit_coin):
                if worst is None or not finite(gap) or gap > abs(worst.diff_coin):
                    worst = d
                if not finite(gap):
                    break
        if worst is None:
            self._runs[venue] = 0
            return None
        runs = self._runs.get(venue, 0) + 1
        self._runs[venue] = runs
        if not s.enabled or runs < s.consecutive_runs:
            return None
        return Trip(
            ReasonCode.POSITION_MISMATCH,
            s.trip_state,
            f"{venue} {worst.instrument}: hedgerd {worst.ours_coin:.6g} vs venue "
            f"{worst.venue_coin:.6g} coin (limit {s.mismatch_limit_coin:g})",
            {
                "venue": venue,
                "instrument": worst.instrument,
                "ours_coin": worst.ours_coin,
                "venue_coin": worst.venue_coin,
                "diff_coin": worst.diff_coin,
                "limit_coin": s.mismatch_limit_coin,
                "runs": runs,
            },
        )


# ------------------------------------------------------------------- Greeks divergence


class GreeksDivergenceSwitch:
    """hedgerd's net delta against the venue's figure, per (venue, underlying); trips when the
    divergence has stayed at or beyond the limit for `min_duration_s`."""

    def __init__(self, settings: GreeksDivergenceSettings) -> None:
        self.settings = settings
        self._since_ms: dict[tuple[str, str], int] = {}

    def observe(
        self,
        now_ms: int,
        venue: str,
        underlying: str,
        ours_delta_coin: float,
        venue_delta_coin: float,
    ) -> Trip | None:
        """Both deltas in coin of `underlying`, same account, same numeraire. A non-finite
        delta on either side counts as diverged."""
        s = self.settings
        limit = s.limit_coin(underlying)
        gap = ours_delta_coin - venue_delta_coin
        key = (venue, underlying)
        if finite(gap) and not reaches(abs(gap), limit):
            self._since_ms.pop(key, None)
            return None
        since = self._since_ms.setdefault(key, now_ms)
        held = ms_to_s(now_ms - since)
        if not s.enabled or held < s.min_duration_s:
            return None
        return Trip(
            ReasonCode.GREEKS_DIVERGENCE,
            s.trip_state,
            f"{venue} {underlying}: hedgerd delta {ours_delta_coin:.6g} vs venue "
            f"{venue_delta_coin:.6g} coin for {held:.1f} s (limit {limit:g} coin)",
            {
                "venue": venue,
                "underlying": underlying,
                "ours_delta_coin": ours_delta_coin,
                "venue_delta_coin": venue_delta_coin,
                "divergence_coin": gap,
                "limit_coin": limit,
                "held_s": round(held, 3),
            },
        )


# -------------------------------------------------------------------------- delta limit


@dataclass(slots=True)
class _Breach:
    since_ms: int
    attempts: int
    delta_coin: float
    limit_coin: float


class DeltaLimitSwitch:
    """|Net delta| per underlying against a hard limit: while it is at or beyond the limit,
    hedge attempts are counted; trips after `hedge_attempts` of them, or after `max_breach_s`
    whatever the attempts. Back inside the limit, the count starts over."""

    def __init__(self, settings: DeltaLimitSettings) -> None:
        self.settings = settings
        self._breaches: dict[str, _Breach] = {}

    def limit_coin(self, underlying: str, index_price_usd: float) -> float | None:
        """The hard limit in coin: the per-underlying one, else the USD one at the index; None
        when neither can be had (no coin limit and no valid index)."""
        coin = self.settings.hard_limit_coin_by_underlying.get(underlying)
        if coin is not None:
            return coin
        if finite(index_price_usd) and index_price_usd > 0:
            return self.settings.hard_limit_usd / index_price_usd
        return None

    def restart(self) -> None:
        """Trading resumed (the operator's resume): standing breaches start over at their
        next observation, so hedging gets its `hedge_attempts` and `max_breach_s` again
        before the switch judges. Otherwise a resume during a breach re-trips at once, with
        no hedge tried: the one thing that could bring |delta| back."""
        self._breaches.clear()

    def on_hedge_sent(self, underlying: str) -> None:
        """The executor sent a hedge order for `underlying`."""
        breach = self._breaches.get(underlying)
        if breach is not None:
            breach.attempts += 1

    def observe(
        self, now_ms: int, underlying: str, delta_coin: float, index_price_usd: float
    ) -> Trip | None:
        """The underlying's net delta (book, hedges, in flight), coin; the index price, USD.
        A non-finite delta trips at once (the book cannot be trusted)."""
        if not finite(delta_coin):
            if not self.settings.enabled:
                return None
            return Trip(
                ReasonCode.DELTA_LIMIT,
                self.settings.trip_state,
                f"{underlying}: net delta is not a number ({delta_coin})",
                {"underlying": underlying, "delta_coin": str(delta_coin)},
            )
        limit = self.limit_coin(underlying, index_price_usd)
        if limit is None:
            return None  # no index: the stale-data and price switches judge that
        if not reaches(abs(delta_coin), limit):
            self._breaches.pop(underlying, None)
            return None
        breach = self._breaches.get(underlying)
        if breach is None:
            breach = self._breaches[underlying] = _Breach(now_ms, 0, delta_coin, limit)
        breach.delta_coin, breach.limit_coin = delta_coin, limit
        return self._judge(now_ms, underlying, breach)

    def evaluate(self, now_ms: int) -> Trip | None:
        """Re-judge standing breaches as time passes (duration)."""
        for underlying, breach in self._breaches.items():
            trip = self._judge(now_ms, underlying, breach)
            if trip is not None:
                return trip
        return None

    def _judge(self, now_ms: int, underlying: str, b: _Breach) -> Trip | None:
        s = self.settings
        held = ms_to_s(now_ms - b.since_ms)
        if not s.enabled or (b.attempts < s.hedge_attempts and held < s.max_breach_s):
            return None
        return Trip(
            ReasonCode.DELTA_LIMIT,
            s.trip_state,
            f"{underlying}: |delta| {abs(b.delta_coin):.6g} coin at or beyond the hard limit "
            f"{b.limit_coin:.6g} after {b.attempts} hedge attempts and {held:.1f} s",
            {
                "underlying": underlying,
                "delta_coin": b.delta_coin,
                "limit_coin": b.limit_coin,
                "hedge_attempts": b.attempts,
                "breach_s": round(held, 3),
            },
        )


# ------------------------------------------------------------------------ reject streak


class RejectStreakSwitch:
    """Rejected or failed orders in a row; an accepted order resets the count."""

    def __init__(self, settings: RejectStreakSettings) -> None:
        self.settings = settings
        #: The streak per venue account ("" when the caller does not say).
        self.streaks: dict[str, int] = {}

    @property
    def streak(self) -> int:
        """The longest current streak."""
        return max(self.streaks.values(), default=0)

    def observe(
        self, now_ms: int, accepted: bool, detail: str = "", venue: str = ""
    ) -> Trip | None:
        """One venue answer to an order (new, amend or cancel) of account `venue`: accepted,
        or rejected / failed (`detail`: the reject class, short). Streaks count per account:
        one account rejecting does not reset on another's accepted order."""
        if accepted:
            self.streaks[venue] = 0
            return None
        streak = self.streaks[venue] = self.streaks.get(venue, 0) + 1
        s = self.settings
        if not s.enabled or streak < s.streak_limit:
            return None
        where = f"{venue}: " if venue else ""
        values: dict[str, Number] = {
            "streak": streak,
            "limit": s.streak_limit,
            "last": detail[:120],
        }
        if venue:
            values["venue"] = venue
        return Trip(
            ReasonCode.REJECT_STREAK,
            s.trip_state,
            f"{where}{streak} order rejects or errors in a row (limit {s.streak_limit}); "
            f"last: {detail[:120]}",
            values,
        )


# ------------------------------------------------------------------------------- rates


_WINDOWS: tuple[tuple[str, int], ...] = (("minute", MINUTE_MS), ("hour", HOUR_MS), ("day", DAY_MS))


def _cents(notional_usd: float) -> int:
    return math.ceil(round(notional_usd * 100.0, 6))


@dataclass(frozen=True, slots=True)
class _Lane:
    """One window's order count and notional (cents) with their budgets."""

    name: str
    orders: SlidingWindow
    cents: SlidingWindow
    max_orders: int
    max_notional_usd: float
    max_cents: int


class RateSwitch:
    """Orders and their USD notional per sliding minute, hour and day: `check` says whether
    one more order fits every budget, `record` counts an order that is being sent."""

    def __init__(self, orders: OrderRateSettings, notional: NotionalRateSettings) -> None:
        windows = {name: (SlidingWindow(ms), SlidingWindow(ms)) for name, ms in _WINDOWS}
        self._lanes = self._build(orders, notional, windows)

    def _build(
        self,
        orders: OrderRateSettings,
        notional: NotionalRateSettings,
        windows: Mapping[str, tuple[SlidingWindow, SlidingWindow]],
    ) -> tuple[_Lane, ...]:
        self.orders = orders
        self.notional = notional
        caps = {
            "minute": (orders.max_orders_per_minute, notional.max_notional_usd_per_minute),
            "hour": (orders.max_orders_per_hour, notional.max_notional_usd_per_hour),
            "day": (orders.max_orders_per_day, notional.max_notional_usd_per_day),
        }
        return tuple(
            _Lane(name, *windows[name], caps[name][0], caps[name][1], round(caps[name][1] * 100))
            for name, _ in _WINDOWS
        )

    def reconfigure(self, orders: OrderRateSettings, notional: NotionalRateSettings) -> None:
        """New budgets; what the windows hold is kept."""
        windows = {lane.name: (lane.orders, lane.cents) for lane in self._lanes}
        self._lanes = self._build(orders, notional, windows)

    def counts(self, now_ms: int) -> dict[str, tuple[int, float]]:
        """Per window: (orders, notional USD) recorded in it."""
        return {
            lane.name: (lane.orders.total(now_ms), lane.cents.total(now_ms) / 100.0)
            for lane in self._lanes
        }

    def check(self, now_ms: int, notional_usd: float) -> Trip | None:
        """Would one more order of `notional_usd` exceed a budget? (Nothing is recorded.)"""
        over = self.check_orders(now_ms)
        if over is not None:
            return over
        if self.notional.enabled:
            add = _cents(notional_usd)
            for lane in self._lanes:
                used = lane.cents.total(now_ms)
                if used + add > lane.max_cents:
                    cap_usd = lane.max_notional_usd
                    return Trip(
                        ReasonCode.NOTIONAL_RATE,
                        self.notional.trip_state,
                        f"{notional_usd:,.0f} USD more would bring the {lane.name}'s order "
                        f"notional to {(used + add) / 100:,.0f} USD, over the limit of "
                        f"{cap_usd:,.0f}",
                        {
                            "window": lane.name,
                            "notional_usd": used / 100.0,
                            "order_notional_usd": notional_usd,
                            "limit_usd": cap_usd,
                        },
                    )
        return None

    def check_orders(self, now_ms: int) -> Trip | None:
        """Would one more order exceed an order-count budget? (Nothing is recorded.)"""
        if self.orders.enabled:
            for lane in self._lanes:
                count = lane.orders.total(now_ms)
                if count + 1 > lane.max_orders:
                    return Trip(
                        ReasonCode.ORDER_RATE,
                        self.orders.trip_state,
                        f"order {count + 1} in a {lane.name} would exceed the limit of "
                        f"{lane.max_orders}",
                        {"window": lane.name, "orders": count, "limit": lane.max_orders},
                    )
        return None

    def record(self, now_ms: int, notional_usd: float) -> None:
        cents = _cents(notional_usd)
        for lane in self._lanes:
            lane.orders.add(now_ms, 1)
            lane.cents.add(now_ms, cents)


# ----------------------------------------------------------------------- order notional


class OrderNotionalSwitch:
    """One order's USD notional against the largest allowed (pre-trade)."""

    def __init__(self, settings: OrderNotionalSettings) -> None:
        self.settings = settings

    def check(self, notional_usd: float) -> Trip | None:
        s = self.settings
        if not s.enabled or notional_usd <= s.max_order_notional_usd:
            return None
        return Trip(
            ReasonCode.ORDER_NOTIONAL,
            s.trip_state,
            f"order notional {notional_usd:,.2f} USD over the limit of "
            f"{s.max_order_notional_usd:,.2f}",
            {"order_notional_usd": notional_usd, "limit_usd": s.max_order_notional_usd},
        )


# ------------------------------------------------------------------------------- margin


@dataclass(frozen=True, slots=True)
class MarginInputs:
    """An account's margin in one currency: equity and maintenance margin in that currency
    (the same unit); the index and the venue's estimated liquidation price, USD, when known."""

    venue: str
    currency: str
    equity: float
    maintenance_margin: float
    index_price_usd: float | None = None
    liquidation_price_usd: float | None = None


class MarginSwitch:
    """Maintenance margin / equity and the distance to liquidation; equity that is not
    positive, or margin figures that are not numbers, trip as well."""

    def __init__(self, settings: MarginSettings) -> None:
        self.settings = settings

    def observe(self, now_ms: int, m: MarginInputs) -> Trip | None:
        s = self.settings
        if not s.enabled:
            return None
        where = f"{m.venue} {m.currency}"
        base: dict[str, Number] = {"venue": m.venue, "currency": m.currency}
        if not (finite(m.equity) and finite(m.maintenance_margin)) or m.equity <= 0:
            return Trip(
                ReasonCode.MARGIN,
                s.trip_state,
                f"{where}: equity {m.equity} / maintenance {m.maintenance_margin}: no margin "
                "left to judge",
                {**base, "equity": str(m.equity), "maintenance_margin": str(m.maintenance_margin)},
            )
        ratio_pct = max(0.0, m.maintenance_margin) / m.equity * 100.0
        if reaches(ratio_pct, s.maintenance_limit_pct):
            return Trip(
                ReasonCode.MARGIN,
                s.trip_state,
                f"{where}: maintenance margin is {ratio_pct:.2f}% of equity (limit "
                f"{s.maintenance_limit_pct:g}%)",
                {
                    **base,
                    "maintenance_pct": round(ratio_pct, 4),
                    "limit_pct": s.maintenance_limit_pct,
                },
            )
        liq, index = m.liquidation_price_usd, m.index_price_usd
        if liq is not None and index is not None and finite(index) and index > 0:
            if not finite(liq):
                return None  # the venue reports no finite liquidation price: none in sight
            distance_pct = abs(index - liq) / index * 100.0
            if liq > 0 and within(distance_pct, s.liquidation_distance_pct):
                return Trip(
                    ReasonCode.MARGIN,
                    s.trip_state,
                    f"{where}: liquidation at {liq:,.2f} USD is {distance_pct:.2f}% from the "
                    f"index {index:,.2f} (limit {s.liquidation_distance_pct:g}%)",
                    {
                        **base,
                        "liquidation_price_usd": liq,
                        "index_price_usd": index,
                        "distance_pct": round(distance_pct, 4),
                        "limit_pct": s.liquidation_distance_pct,
                    },
                )
        return None


# --------------------------------------------------------------------------- clock skew


def clock_skew_ms(
    local_receive_ms: float, venue_time_ms: float, rtt_ms: float | None = None
) -> float:
    """Local clock minus the venue's, ms: the venue stamped `venue_time_ms` (Deribit `usOut` /
    1000) when it sent the message, which then travelled about half the round trip."""
    travel = rtt_ms / 2.0 if rtt_ms is not None and finite(rtt_ms) and rtt_ms > 0 else 0.0
    return local_receive_ms - (venue_time_ms + travel)


def clock_skew_ms_ntp(
    local_send_ms: float, venue_in_us: float, venue_out_us: float, local_receive_ms: float
) -> float:
    """Local clock minus the venue's, ms, from one request: local send and receive times (ms)
    and the venue's receive and send stamps (Deribit `usIn`, `usOut`, microseconds). The NTP
    estimate: exact when the two legs of the trip take equally long."""
    venue_minus_local = (
        (venue_in_us / 1000.0 - local_send_ms) + (venue_out_us / 1000.0 - local_receive_ms)
    ) / 2.0
    return -venue_minus_local


class ClockSkewSwitch:
    """|local clock − venue clock| per venue."""

    def __init__(self, settings: ClockSkewSettings) -> None:
        self.settings = settings

    def observe(
        self, now_ms: int, venue: str, venue_time_ms: float, rtt_ms: float | None = None
    ) -> Trip | None:
        """`now_ms`: local receive time; `venue_time_ms`: the venue's send time (`usOut`/1000);
        `rtt_ms`: the round trip, when known."""
        return self.observe_skew(now_ms, venue, clock_skew_ms(now_ms, venue_time_ms, rtt_ms))

    def observe_skew(self, now_ms: int, venue: str, skew_ms: float) -> Trip | None:
        """A skew measured elsewhere (e.g. `clock_skew_ms_ntp`), local minus venue, ms."""
        s = self.settings
        if not s.enabled:
            return None
        skew = skew_ms
        if finite(skew) and abs(skew) < s.skew_limit_ms:
            return None
        return Trip(
            ReasonCode.CLOCK_SKEW,
            s.trip_state,
            f"{venue}: local clock is {skew:+.0f} ms off the venue's (limit "
            f"{s.skew_limit_ms:g} ms)",
            {
                "venue": venue,
                "skew_ms": round(skew, 3) if finite(skew) else str(skew),
                "limit_ms": s.skew_limit_ms,
            },
        )


__all__ = [
    "POSITION_FEEDS",
    "ClockSkewSwitch",
    "DeltaLimitSwitch",
    "FeedKind",
    "GreeksDivergenceSwitch",
    "MarginInputs",
    "MarginSwitch",
    "OrderNotionalSwitch",
    "PositionDiff",
    "PositionMismatchSwitch",
    "RateSwitch",
    "RejectStreakSwitch",
    "StaleDataSwitch",
    "VenueDisconnectedSwitch",
    "clock_skew_ms",
    "clock_skew_ms_ntp",
]
