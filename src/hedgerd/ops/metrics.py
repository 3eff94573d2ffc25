"""Every Prometheus metric hedgerd exports, declared in one place.

`Metrics` owns a dedicated `CollectorRegistry` (never the process-global one, so tests and a
backtest can each build their own) and typed methods, so callers never handle raw metric
objects or label strings. Names follow Prometheus conventions: the unit is in the name
(`_coin`, `_usd`, `_seconds`), counters end in `_total`.

Units: delta in coin of the underlying (in the configured numeraire), gamma in coin per USD of
index move, vega in USD per 1.00 of volatility, theta in USD per calendar day, durations in
seconds. Band and target are absolute delta levels in coin (the no-trade band is
`[lower, upper]`, not a half-width). The band's market inputs: mark vol a fraction per year
(`mark_vol`, no unit suffix: a vol is quoted so), vol-of-vol per sqrt(year), the jump variance
ratio dimensionless, the jump skew a signed log return (dimensionless), the jump rate per
year.

Label values are checked: identifiers (venue, underlying, feed, component) must be short
tokens from config or code, never free text, so an operator's halt message or an exchange's
error text cannot create unbounded series. A bad label value raises ValueError (a programming
error, caught by tests); error classes are sanitised instead, since they may come from the
outside.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable
from enum import StrEnum
from typing import Final

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from hedgerd import __version__
from hedgerd.hedging.jumps import JUMP_COUNT_SD, JUMP_SKEW_MAX
from hedgerd.risk.trading_state import ReasonCode, TradingState

log = structlog.get_logger(__name__)

NAMESPACE: Final = "hedgerd"


# Every kill-switch reason code is exported from start-up with value 0, so dashboards and alerts
# see each series before its first trip. Codes not listed (newer ones) are accepted too.
DEFAULT_KILL_SWITCH_REASONS: Final[tuple[str, ...]] = tuple(code.value for code in ReasonCode)


class OrderLatencyStage(StrEnum):
    """Stages of an order's latency: decision made → request written to the venue's socket
    (our own overhead: risk gate, journal, throttle), and written → venue's acknowledgement."""

    DECISION_TO_WIRE = "decision_to_wire"
    WIRE_TO_ACK = "wire_to_ack"


class ThrottleLane(StrEnum):
    """Rate-limit lanes of the executor's throttler."""

    ORDERS = "orders"
    CANCELS = "cancels"
    READS = "reads"


class AlertOutcome(StrEnum):
    """What became of an alert at a target: sent; failed (given up after its retries);
    suppressed (a rate limit held it back); dropped (a queue or in-flight bound was full)."""

    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    DROPPED = "dropped"


class MismatchKind(StrEnum):
    """What a reconciliation found different between hedgerd and the venue."""

    POSITION = "position"
    ORDER = "order"


_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SANITISE = re.compile(r"[^A-Za-z0-9_.:-]+")

_LATENCY_BUCKETS_S: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Most throttle waits are zero: the 0 bucket makes that visible.
_THROTTLE_BUCKETS_S: Final = (
    0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_JOURNAL_BUCKETS_S: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip


def _ident(kind: str, value: str) -> str:
    text = str(value)
    if not _IDENT.match(text):
        raise ValueError(f"metric label {kind}={text!r}: expected a short identifier")
    return text


def _reason(value: str) -> str:
    text = str(value).lower()
    if not _REASON.match(text):
        raise ValueError(f"kill-switch reason {value!r}: expected a snake_case reason code")
    return text


def _state(value: str) -> TradingState:
    try:
        return TradingState(str(value).lower())
    except ValueError:
        known = ", ".join(s.value for s in TradingState)
        raise ValueError(f"trading state {value!r}: expected one of {known}") from None


def _sanitise(value: str) -> str:
    text = _SANITISE.sub("_", str(value)).strip("_")[:64]
    return text or "unknown"


def _duration(what: str, seconds: float) -> float:
    if not math.isfinite(seconds) or seconds < 0.0:
        raise ValueError(f"{what}: duration must be finite and >= 0 s, got {seconds!r}")
    return seconds


def _stage(value: str) -> str:
    try:
        return OrderLatencyStage(value).value
    except ValueError:
        known = ", ".join(s.value for s in OrderLatencyStage)
        raise ValueError(f"order latency stage {value!r}: expected one of {known}") from None


def _lane(value: str) -> str:
    try:
        return ThrottleLane(value).value
    except ValueError:
        known = ", ".join(s.value for s in ThrottleLane)
        raise ValueError(f"throttle lane {value!r}: expected one of {known}") from None


class Metrics:
    """hedgerd's metrics on their own registry.

    `underlyings`, `venues` and `kill_switch_reasons` pre-create the series that are known at
    start-up (at 0), so a panel or alert never sees "no data" for a thing that simply has not
    happened yet. `process_metrics` adds the standard `process_*`/`python_*` collectors.
    """

    def __init__(
        self,
        *,
        underlyings: Iterable[str] = (),
        venues: Iterable[str] = (),
        kill_switch_reasons: Iterable[str] = DEFAULT_KILL_SWITCH_REASONS,
        process_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        if process_metrics:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, namespace=NAMESPACE, registry=reg)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=reg)

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, doc, labels, namespace=NAMESPACE, registry=reg, buckets=buckets)

        self._build_info = Info("build", "hedgerd version.", namespace=NAMESPACE, registry=reg)
        self._build_info.info({"version": __version__})

        u = ("underlying",)
        # Greeks, band and target per underlying.
        self._delta = gauge(
            "delta_coin",
            "Net delta per underlying (book + hedges + in flight), coin, configured numeraire.",
            u,
        )
        self._gamma = gauge("gamma_coin_per_usd", "Net gamma per underlying, coin per USD.", u)
        self._vega = gauge("vega_usd", "Net vega per underlying, USD per 1.00 of volatility.", u)
        self._theta = gauge("theta_usd_per_day", "Net theta per underlying, USD per day.", u)
        self._band_lower = gauge(
            "delta_band_lower_coin", "Lower edge of the no-trade delta band, coin.", u
        )
        self._band_upper = gauge(
            "delta_band_upper_coin", "Upper edge of the no-trade delta band, coin.", u
        )
        self._target = gauge("delta_target_coin", "Target delta, coin.", u)
        # The band's market inputs per underlying (why the band widens or its centre moves).
        self._mark_vol = gauge(
            "mark_vol",
            "The book's gamma-weighted mark (implied) vol the band prices with, fraction per "
            "year (0.5 = 50 %).",
            u,
        )
        self._vol_of_vol = gauge(
            "vol_of_vol_per_sqrt_year",
            "Realised vol-of-vol of the book's mark vol, 1/sqrt(year) (0: marks constant).",
            u,
        )
        self._jump_ratio = gauge(
            "jump_var_ratio",
            "The index's realised variance over the marks' (1 + the jumps' part), "
            "dimensionless, >= 1 (1: no jumps seen).",
            u,
        )
        self._jump_skew = gauge(
            "jump_skew",
            "The jumps' lean: the index's sum of cubed log returns over its variance where a "
            f"jump is found, a signed return, within +-{JUMP_SKEW_MAX} (0: none found).",
            u,
        )
        self._jump_rate = gauge(
            "jump_rate_per_year",
            "The index's jumps counted in the jump window, per year (returns beyond "
            f"{JUMP_COUNT_SD:g} of the marks' sd; 0: no jump found).",
            u,
        )

        # Hedges and their cost.
        uv = ("underlying", "venue")
        self._hedges = counter(
            "hedges_total", "Hedge orders done with a fill (in full or in part).", uv
        )
        self._hedge_cost = counter(
            "hedge_cost_usd_total",
            "All-in cost of hedges (fees, spread, slippage), USD; rebates are counted apart.",
            uv,
        )
        self._hedge_rebates = counter(
            "hedge_rebates_usd_total", "Negative hedge costs (maker rebates), USD.", uv
        )
        self._hedge_notional = counter(
            "hedge_notional_usd_total", "Absolute notional of hedge fills, USD.", uv
        )

        # Orders.
        self._orders_sent = counter("orders_sent_total", "Orders sent to a venue.", ("venue",))
        self._open_orders = gauge("open_orders", "hedgerd's orders open or in flight.", ("venue",))
        self._order_latency = histogram(
            "order_latency_seconds",
            "Order latency by stage: decision_to_wire (hedgerd's own path) and wire_to_ack "
            "(venue round trip), seconds.",
            ("venue", "stage"),
            _LATENCY_BUCKETS_S,
        )
        self._throttle_wait = histogram(
            "throttle_wait_seconds",
            "Time a request waited for the rate limiter, by lane, seconds.",
            ("venue", "lane"),
            _THROTTLE_BUCKETS_S,
        )
        self._rejects = counter(
            "order_rejects_total",
            "Orders rejected by a venue, by class.",
            ("venue", "reject_class"),
        )
        self._errors = counter(
            "errors_total", "Errors by component and class.", ("component", "error_class")
        )
        self._alerts = counter(
            "alerts_total",
            "Alerts by target (command, webhook, unix_socket, https_webhook; 'all' for the "
            "dispatcher's own limits) and outcome (sent, failed, suppressed, dropped).",
            ("target", "outcome"),
        )

        # Trading state and kill switches.
        self._state = gauge(
            "trading_state", "1 for the current trading state, 0 for the others.", ("state",)
        )
        self._state_code = gauge(
            "trading_state_code", "Current trading state: 0 ACTIVE, 1 REDUCE_ONLY, 2 HALTED."
        )
        # High availability (docs/ha.md).
        self._ha_role = gauge(
            "ha_role_code",
            "HA role of this node: 0 off, 1 standby, 2 takeover, 3 active, 4 fenced.",
        )
        self._ha_epoch = gauge("ha_epoch", "Leader-lease epoch this node holds (0: none).")
        self._ha_lease_age = gauge(
            "ha_lease_age_seconds", "Seconds since the held lease's last renew was sent."
        )
        self._ha_last_failover = gauge(
            "ha_last_failover_timestamp_seconds", "When this node last took the lease (UTC)."
        )
        self._ha_events = counter(
            "ha_events",
            "HA events: ha_failover, ha_fenced, ha_db_unreachable, ha_lease_unseen.",
            ("kind",),
        )
        self._account_state_code = gauge(
            "account_trading_state_code",
            "Trading state of one venue account (its own, under the portfolio's): 0 ACTIVE, "
            "1 REDUCE_ONLY, 2 HALTED.",
            ("venue",),
        )
        self._tripped = gauge(
            "kill_switch_tripped", "1 while a kill-switch reason holds, else 0.", ("reason",)
        )
        self._trips = counter(
            "kill_switch_trips_total", "Times a kill-switch reason started to hold.", ("reason",)
        )

        # Data quality and venues.
        self._data_age = gauge(
            "data_age_seconds",
            "Age of the newest update per venue and feed (quotes, book, positions...), seconds.",
            ("venue", "feed"),
        )
        self._connected = gauge(
            "venue_connected", "1 while the venue's streams are connected.", ("venue",)
        )
        self._disconnects = counter(
            "venue_disconnects_total", "Times a venue's streams disconnected.", ("venue",)
        )
        self._link_transitions = counter(
            "account_link_transitions_total",
            "Times an account's link trips took it out of routing (out) or cleared (back).",
            ("venue", "transition"),
        )
        self._reconciliations = counter(
            "reconciliation_runs_total", "Reconciliations against a venue.", ("venue",)
        )
        self._mismatches = counter(
            "reconciliation_mismatches_total",
            "Differences found by reconciliation, by kind (position, order).",
            ("venue", "kind"),
        )
        self._divergence = gauge(
            "delta_divergence_coin",
            "hedgerd's delta minus the venue's reported delta, coin.",
            ("venue", "underlying"),
        )

        # The process itself.
        self._journal_write = histogram(
            "journal_write_seconds",
            "Time to commit one journal write, seconds.",
            (),
            _JOURNAL_BUCKETS_S,
        )
        self._loop_lag = gauge(
            "event_loop_lag_seconds", "Latest measured event-loop scheduling lag, seconds."
        )

        self._scrape_hooks: list[Callable[[], None]] = []
        self._reasons_seen: set[str] = set()
        self._active_reasons: frozenset[str] = frozenset()
        self._venue_up: dict[str, bool] = {}
        self._precreate(underlyings, venues, kill_switch_reasons)
        self.set_trading_state(TradingState.ACTIVE, ())

    def _precreate(
        self, underlyings: Iterable[str], venues: Iterable[str], reasons: Iterable[str]
    ) -> None:
        for reason in reasons:
            code = _reason(reason)
            self._reasons_seen.add(code)
            self._tripped.labels(code).set(0)
            self._trips.labels(code)
        venue_list = [_ident("venue", v) for v in venues]
        for venue in venue_list:
            self._orders_sent.labels(venue)
            self._account_state_code.labels(venue).set(0)
            self._open_orders.labels(venue)
            self._connected.labels(venue).set(0)
            self._disconnects.labels(venue)
            self._reconciliations.labels(venue)
            for kind in MismatchKind:
                self._mismatches.labels(venue, kind.value)
            for stage in OrderLatencyStage:
                self._order_latency.labels(venue, stage.value)
            for lane in ThrottleLane:
                self._throttle_wait.labels(venue, lane.value)
        for underlying in underlyings:
            und = _ident("underlying", underlying)
            for venue in venue_list:
                self._hedges.labels(und, venue)
                self._hedge_cost.labels(und, venue)
                self._hedge_rebates.labels(und, venue)
                self._hedge_notional.labels(und, venue)

    def add_scrape_hook(self, hook: Callable[[], None]) -> None:
        """Call `hook` before each export (e.g. to refresh data ages, which grow between
        updates). A hook that raises is logged and counted under errors_total; the export
        goes on."""
        self._scrape_hooks.append(hook)

    def run_scrape_hooks(self) -> None:
        """Run the scrape hooks (the /metrics handler calls this before encoding)."""
        for hook in self._scrape_hooks:
            try:
                hook()
            except Exception as exc:
                log.warning("metrics_scrape_hook_failed", hook=repr(hook), error=repr(exc))
                self.record_error("metrics", type(exc).__name__)

    # Greeks and band -------------------------------------------------------------------------

    def set_greeks(
        self,
        underlying: str,
        *,
        delta_coin: float,
        gamma_coin_per_usd: float,
        vega_usd: float,
        theta_usd_per_day: float,
    ) -> None:
        """Net Greeks of one underlying: delta in coin, gamma in coin per USD, vega in USD per
        1.00 of volatility, theta in USD per calendar day."""
        und = _ident("underlying", underlying)
        self._delta.labels(und).set(delta_coin)
        self._gamma.labels(und).set(gamma_coin_per_usd)
        self._vega.labels(und).set(vega_usd)
        self._theta.labels(und).set(theta_usd_per_day)

    def set_band(
        self, underlying: str, *, target_coin: float, lower_coin: float, upper_coin: float
    ) -> None:
        """The no-trade band `[lower_coin, upper_coin]` and the target delta, absolute levels
        in coin. Raises ValueError unless lower <= target <= upper."""
        und = _ident("underlying", underlying)
        if not lower_coin <= target_coin <= upper_coin:
            raise ValueError(
                f"band for {und}: need lower <= target <= upper, got "
                f"{lower_coin} <= {target_coin} <= {upper_coin}"
            )
        self._band_lower.labels(und).set(lower_coin)
        self._band_upper.labels(und).set(upper_coin)
        self._target.labels(und).set(target_coin)

    def set_band_inputs(
        self,
        underlying: str,
        *,
        mark_vol: float,
        vol_of_vol_per_sqrt_year: float,
        jump_var_ratio: float,
        jump_skew: float,
        jump_rate_per_year: float,
    ) -> None:
        """The market inputs of the band the last evaluation priced: the book's mark vol
        (fraction per year, > 0), the marks' realised vol-of-vol (1/sqrt(year), >= 0), the
        index's jump-to-marked variance ratio (dimensionless, >= 1) and the jumps' lean (a
        signed log return, within +-`JUMP_SKEW_MAX`) and the jumps' rate (per year, >= 0).
        Raises ValueError, and sets none of them, when one is not finite or out of its
        range."""
        und = _ident("underlying", underlying)
        if not (
            math.isfinite(mark_vol)
            and mark_vol > 0.0
            and math.isfinite(vol_of_vol_per_sqrt_year)
            and vol_of_vol_per_sqrt_year >= 0.0
            and math.isfinite(jump_var_ratio)
            and jump_var_ratio >= 1.0
            and -JUMP_SKEW_MAX <= jump_skew <= JUMP_SKEW_MAX  # NaN fails too
            and math.isfinite(jump_rate_per_year)
            and jump_rate_per_year >= 0.0
        ):
            raise ValueError(
                f"band inputs for {und}: need finite mark_vol > 0, vol_of_vol >= 0, "
                f"jump_var_ratio >= 1, |jump_skew| <= {JUMP_SKEW_MAX} and jump_rate >= 0, got "
                f"{mark_vol!r}, {vol_of_vol_per_sqrt_year!r}, {jump_var_ratio!r}, "
                f"{jump_skew!r}, {jump_rate_per_year!r}"
            )
        self._mark_vol.labels(und).set(mark_vol)
        self._vol_of_vol.labels(und).set(vol_of_vol_per_sqrt_year)
        self._jump_ratio.labels(und).set(jump_var_ratio)
        self._jump_skew.labels(und).set(jump_skew)
        self._jump_rate.labels(und).set(jump_rate_per_year)

    def set_delta_divergence(self, venue: str, underlying: str, divergence_coin: float) -> None:
        """hedgerd's delta minus the venue's own figure for the same account, coin."""
        self._divergence.labels(_ident("venue", venue), _ident("underlying", underlying)).set(
            divergence_coin
        )

    # Hedges and orders -----------------------------------------------------------------------

    def record_hedge(
        self, underlying: str, venue: str, *, cost_usd: float, notional_usd: float
    ) -> None:
        """One hedge order done (filled in full or in part): its all-in cost in USD
        (negative for a net rebate) and its filled notional in USD (sign ignored)."""
        und, ven = _ident("underlying", underlying), _ident("venue", venue)
        if not (math.isfinite(cost_usd) and math.isfinite(notional_usd)):
            raise ValueError(f"hedge on {und}/{ven}: cost and notional must be finite")
        self._hedges.labels(und, ven).inc()
        if cost_usd >= 0.0:
            self._hedge_cost.labels(und, ven).inc(cost_usd)
        else:
            self._hedge_rebates.labels(und, ven).inc(-cost_usd)
        self._hedge_notional.labels(und, ven).inc(abs(notional_usd))

    def record_order_sent(self, venue: str) -> None:
        """One order written to a venue."""
        self._orders_sent.labels(_ident("venue", venue)).inc()

    def set_open_orders(self, venue: str, count: int) -> None:
        """hedgerd's orders open or in flight on a venue."""
        if count < 0:
            raise ValueError(f"open orders on {venue}: count must be >= 0, got {count}")
        self._open_orders.labels(_ident("venue", venue)).set(count)

    def observe_order_latency(self, venue: str, stage: str, seconds: float) -> None:
        """One order's latency for a stage (`OrderLatencyStage`), seconds."""
        self._order_latency.labels(_ident("venue", venue), _stage(stage)).observe(
            _duration("order latency", seconds)
        )

    def observe_throttle_wait(self, venue: str, lane: str, seconds: float) -> None:
        """Time one request waited in a throttle lane (`ThrottleLane`), seconds (0 allowed)."""
        self._throttle_wait.labels(_ident("venue", venue), _lane(lane)).observe(
            _duration("throttle wait", seconds)
        )

    def record_reject(self, venue: str, reject_class: str) -> None:
        """A venue rejected an order; `reject_class` is a short code (sanitised)."""
        self._rejects.labels(_ident("venue", venue), _sanitise(reject_class)).inc()

    def record_error(self, component: str, error_class: str) -> None:
        """An error in a component (`error_class` e.g. an exception's class name; sanitised)."""
        self._errors.labels(_ident("component", component), _sanitise(error_class)).inc()

    def record_alert(self, target: str, outcome: str, count: int = 1) -> None:
        """`count` alerts at `target` had `outcome` (`AlertOutcome`); 0 creates the series."""
        try:
            kind = AlertOutcome(outcome).value
        except ValueError:
            known = ", ".join(o.value for o in AlertOutcome)
            raise ValueError(f"alert outcome {outcome!r}: expected one of {known}") from None
        self._alerts.labels(_ident("target", target), kind).inc(count)

    # Trading state and kill switches ---------------------------------------------------------

    def set_trading_state(self, state: TradingState | str, reasons: Collection[str]) -> None:
        """The current trading state (`TradingState` or its value) and the reason codes
        (`ReasonCode` or their values, e.g. from `TradingStateSnapshot.reason_codes`) holding
        now. Each reason that was not holding at the previous call counts one
        trip; reasons no longer given drop to 0."""
        current = _state(state)
        codes = frozenset(_reason(r) for r in reasons)
        for s in TradingState:
            self._state.labels(s.value).set(1 if s is current else 0)
        self._state_code.set(current.severity)
        for code in sorted(codes - self._active_reasons):
            self._trips.labels(code).inc()
        self._reasons_seen |= codes
        for code in self._reasons_seen:
            self._tripped.labels(code).set(1 if code in codes else 0)
        self._active_reasons = codes

    def set_ha(
        self, role_code: int, epoch: int, lease_age_s: float | None, failover_ms: int | None
    ) -> None:
        """This node's HA role (`ha_role_code` values), epoch, lease age (s), last failover."""
        self._ha_role.set(role_code)
        self._ha_epoch.set(epoch)
        self._ha_lease_age.set(lease_age_s if lease_age_s is not None else float("nan"))
        if failover_ms is not None:
            self._ha_last_failover.set(failover_ms / 1000.0)

    def record_ha_event(self, kind: str) -> None:
        self._ha_events.labels(_ident("kind", kind)).inc()

    def set_account_trading_state(self, venue: str, state: TradingState | str) -> None:
        """Venue account `venue`'s own trading state (`risk.account_state`)."""
        self._account_state_code.labels(_ident("venue", venue)).set(_state(state).severity)

    # Data quality and venues -----------------------------------------------------------------

    def set_data_age(self, venue: str, feed: str, age_seconds: float) -> None:
        """Age of the newest update on a feed (e.g. "ticker", "book", "positions", "index"),
        seconds (may be +Inf when nothing has arrived yet)."""
        if math.isnan(age_seconds) or age_seconds < 0.0:
            raise ValueError(f"data age {venue}/{feed}: must be >= 0 s, got {age_seconds!r}")
        self._data_age.labels(_ident("venue", venue), _ident("feed", feed)).set(age_seconds)

    def record_link_transition(self, venue: str, back: bool) -> None:
        """Account `venue`'s self-clearing link trips: out of routing, or back (cleared)."""
        transition = "back" if back else "out"
        self._link_transitions.labels(_ident("venue", venue), transition).inc()

    def set_venue_connected(self, venue: str, connected: bool) -> None:
        """Whether a venue's streams are connected; a connected → disconnected change counts
        one disconnect."""
        ven = _ident("venue", venue)
        if self._venue_up.get(ven) and not connected:
            self._disconnects.labels(ven).inc()
        self._venue_up[ven] = connected
        self._connected.labels(ven).set(1 if connected else 0)

    def record_reconciliation(
        self, venue: str, *, position_mismatches: int = 0, order_mismatches: int = 0
    ) -> None:
        """One reconciliation run against a venue and the differences it found."""
        if position_mismatches < 0 or order_mismatches < 0:
            raise ValueError("mismatch counts must be >= 0")
        ven = _ident("venue", venue)
        self._reconciliations.labels(ven).inc()
        self._mismatches.labels(ven, MismatchKind.POSITION.value).inc(position_mismatches)
        self._mismatches.labels(ven, MismatchKind.ORDER.value).inc(order_mismatches)

    # Process ---------------------------------------------------------------------------------

    def observe_journal_write(self, seconds: float) -> None:
        """Time to commit one journal write, seconds."""
        self._journal_write.observe(_duration("journal write", seconds))

    def set_event_loop_lag(self, seconds: float) -> None:
        """Latest event-loop lag measurement, seconds."""
        self._loop_lag.set(_duration("event loop lag", seconds))


def exported_sample_names(registry: CollectorRegistry) -> frozenset[str]:
    """Every sample name the registry can export, including label sets not touched yet
    (`_total`/`_created` for counters, `_bucket`/`_sum`/`_count`/`_created` for histograms,
    `_info` for info metrics). Used to check dashboards and alert rules against the code."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    }
    names: set[str] = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
        names.update(sample.name for sample in family.samples)
    return frozenset(names)


__all__ = [
    "DEFAULT_KILL_SWITCH_REASONS",
    "AlertOutcome",
    "Metrics",
    "MismatchKind",
    "OrderLatencyStage",
    "ThrottleLane",
    "exported_sample_names",
]
