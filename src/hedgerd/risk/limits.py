"""Limits of the automatic kill switches and of the alert hooks: pydantic settings, mounted by the
main config under `[risk]` (`[risk.stale_data]`, `[risk.order_rate]`, ..., `[risk.alerts]`).

One sub-model per switch: `enabled`, its thresholds (unit in every name) and `trips_to`, the
trading state a trip asks for (`reduce_only` or `halted`; default from `DEFAULT_TRIP_STATE`).

Threshold semantics, the same everywhere:
- a measured *level* (an age, a duration, a difference, a loss, a ratio, a skew, a price move)
  trips when it **reaches** its limit (`>=`);
- a *budget* (`max_*`: orders or notional per window, one order's notional) may be used in full:
  the order that would **exceed** it is refused (and trips).

`render_switch_table()` renders the README table of every switch from these models, so the
README can be checked against the code.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from hedgerd.risk.trading_state import DEFAULT_TRIP_STATE, ReasonCode, TradingState
from hedgerd.secret_files import read_secret_file

TripState = Literal["reduce_only", "halted"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _Section(BaseModel):
    # An infinite limit or NaN value is not a setting (an "inf" timeout or budget, a
    # "1e999" that parses to one, a NaN target): refused, never a silent "no limit".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _default(code: ReasonCode) -> TripState:
    state = DEFAULT_TRIP_STATE[code]
    return "halted" if state is TradingState.HALTED else "reduce_only"


def _trips_to(code: ReasonCode) -> TripState:
    # A Field default per switch, so every model documents its own state.
    return Field(
        _default(code),
        description="Trading state a trip asks for: 'reduce_only' (only orders that shrink the "
        "underlying's |net delta| pass) or 'halted' (only cancels and the operator's flatten).",
    )


def _enabled() -> bool:
    return Field(True, description="Run this kill switch.")


class _Switch(_Section):
    """Base of one switch's settings."""

    CODE: ClassVar[ReasonCode]

    enabled: bool
    trips_to: TripState

    @property
    def trip_state(self) -> TradingState:
        return TradingState(self.trips_to)


def _positive_map(values: dict[str, float], what: str) -> dict[str, float]:
    for key, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{what}[{key!r}] must be a positive number, got {value!r}")
    return values


class StaleDataSettings(_Switch):
    """Age of the newest update of each market and position feed (per venue and feed)."""

    CODE = ReasonCode.STALE_DATA
    enabled: bool = _enabled()
    market_stale_after_s: float = Field(
        5.0,
        gt=0,
        description="A market feed (ticker, book, index) trips when its newest "
        "update is this old, seconds.",
    )
    positions_stale_after_s: float = Field(
        90.0,
        gt=0,
        description="The positions feed trips when neither the stream nor a "
        "reconciliation has confirmed positions for this long, seconds.",
    )
    stale_after_s_by_feed: dict[str, float] = Field(
        default_factory=dict,
        description="Per-feed overrides of the limit, seconds, keyed by feed name (e.g. "
        "{ index = 10 }).",
    )
    startup_grace_s: float = Field(
        30.0,
        ge=0,
        description="A feed that has never delivered is judged from the time it "
        "was registered plus this grace, seconds (time to connect and subscribe).",
    )
    trips_to: TripState = _trips_to(ReasonCode.STALE_DATA)

    @field_validator("stale_after_s_by_feed")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        return _positive_map(v, "stale_after_s_by_feed")


class VenueDisconnectedSettings(_Switch):
    """How long a venue's streams have been disconnected."""

    CODE = ReasonCode.VENUE_DISCONNECTED
    enabled: bool = _enabled()
    trip_after_s: float = Field(
        30.0,
        gt=0,
        description="Trips when a venue has been disconnected (or never connected "
        "since start) for this long, seconds. Reconnects back off up to 15 s, so 30 s is two "
        "failed attempts.",
    )
    trips_to: TripState = _trips_to(ReasonCode.VENUE_DISCONNECTED)


class PositionMismatchSettings(_Switch):
    """Difference between hedgerd's positions and the venue's after a reconciliation."""

    CODE = ReasonCode.POSITION_MISMATCH
    enabled: bool = _enabled()
    mismatch_limit_coin: float = Field(
        0.001,
        gt=0,
        description="Trips when a reconciliation finds an instrument's position "
        "differing from hedgerd's by this much or more, in coin of the underlying (USD-sized "
        "contracts are converted at the index).",
    )
    consecutive_runs: int = Field(
        2,
        ge=1,
        description="Timer reconciliations in a row that must find a mismatch before it "
        "trips (1: the first one); a book refresh after a delta divergence or a repaired "
        "fill counts when it finds one; a reconnect of the stream starts the count over. "
        "The default 2 ignores a fill that raced the "
        "snapshot: the first reconciliation corrects the book, so a second mismatch means "
        "the position stream itself is losing updates. A reconciliation is judged only "
        "once the stream has applied what it had received (a starved process's backlog is "
        "no lost update).",
    )
    trips_to: TripState = _trips_to(ReasonCode.POSITION_MISMATCH)


class GreeksDivergenceSettings(_Switch):
    """hedgerd's net delta against the venue's own figure for the same account."""

    CODE = ReasonCode.GREEKS_DIVERGENCE
    enabled: bool = _enabled()
    divergence_limit_coin: float = Field(
        0.5,
        gt=0,
        description="Trips when |hedgerd's delta − the venue's| reaches this, coin "
        "of the underlying (for underlyings not in divergence_limit_coin_by_underlying).",
    )
    divergence_limit_coin_by_underlying: dict[str, float] = Field(
        default_factory=lambda: {"BTC": 0.5, "ETH": 10.0},
        description="Per-underlying divergence limits, coin of that underlying.",
    )
    min_duration_s: float = Field(
        15.0,
        ge=0,
        description="The divergence must hold this long before it trips, seconds "
        "(the venue's figure lags its ticker by a few seconds). When half the limit holds "
        "over two cross-checks (about 5 s), the daemon refreshes its positions from the "
        "venue (at most every 10 s), so a lost position update is repaired before this is up.",
    )
    trips_to: TripState = _trips_to(ReasonCode.GREEKS_DIVERGENCE)

    @field_validator("divergence_limit_coin_by_underlying")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        return _positive_map(v, "divergence_limit_coin_by_underlying")

    def limit_coin(self, underlying: str) -> float:
        return self.divergence_limit_coin_by_underlying.get(underlying, self.divergence_limit_coin)


class DeltaLimitSettings(_Switch):
    """|Net delta| of an underlying beyond a hard limit that hedging has not brought back."""

    CODE = ReasonCode.DELTA_LIMIT
    enabled: bool = _enabled()
    hard_limit_usd: float = Field(
        2_000_000.0,
        gt=0,
        description="|net delta| × index price at which the switch arms, "
        "USD (for underlyings not in hard_limit_coin_by_underlying).",
    )
    hard_limit_coin_by_underlying: dict[str, float] = Field(
        default_factory=lambda: {"BTC": 20.0, "ETH": 500.0},
        description="Per-underlying hard limits on |net delta|, coin of that underlying.",
    )
    hedge_attempts: int = Field(
        3,
        ge=1,
        description="Trips when |net delta| is still at or beyond the limit after "
        "this many hedge orders were sent for the underlying since it got there (or since "
        "trading was last resumed: a resume gives hedging its attempts again).",
    )
    max_breach_s: float = Field(
        120.0,
        gt=0,
        description="Trips anyway when |net delta| has stayed at or beyond the "
        "limit this long (counted again from a resume), whatever the attempts, seconds.",
    )
    trips_to: TripState = _trips_to(ReasonCode.DELTA_LIMIT)

    @field_validator("hard_limit_coin_by_underlying")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        return _positive_map(v, "hard_limit_coin_by_underlying")


class RejectStreakSettings(_Switch):
    """Consecutive order rejects or errors (any accepted order resets the streak)."""

    CODE = ReasonCode.REJECT_STREAK
    enabled: bool = _enabled()
    streak_limit: int = Field(
        5, ge=1, description="Trips at this many rejected or failed orders in a row."
    )
    trips_to: TripState = _trips_to(ReasonCode.REJECT_STREAK)


class OrderRateSettings(_Switch):
    """Orders sent per sliding minute, hour and day (a pre-trade budget; every order sent
    counts: each slice, maker re-quote, retry and taker fallback of a leg)."""

    # The defaults are above what a busy desk sends: the paper book on two accounts with maker
    # execution (post-only orders re-priced every 2 s, taker fallbacks) sent 21 in its
    # busiest 60 s, 237 in its busiest hour and 4.4 a minute on average (6,300 a day) in 80
    # simulated minutes (`scripts/order_rate.py --duration 900 --speed 20`, 2026-12-06); with
    # `--seed 2` 20, 469 and 6.9 a minute (9,900 a day) in 95 (2026-12-07). The budgets are
    # 3, 2.6 and 2.4 times the larger: a budget that trips halts the desk, so it is sized for
    # a runaway loop, not for a busy hour (600 an hour left seed 2 only 1.3 times its hour).
    # The former 30 / 300 / 2,000 left it 1.4 and 1.3 times its minute and hour, and the day's
    # budget halted it after about 8 hours.
    CODE = ReasonCode.ORDER_RATE
    enabled: bool = _enabled()
    max_orders_per_minute: int = Field(
        60,
        ge=1,
        description="Most orders sent in any 60 s (each slice, re-quote, retry and "
        "fallback of a leg counts); the next one is refused and trips, and its leg ends "
        "with the rest unsent. A busy desk (the paper book on two accounts, maker execution) "
        "sent 21 in its busiest 60 s (`scripts/order_rate.py --duration 900 --speed 20`; "
        "20 with `--seed 2`).",
    )
    max_orders_per_hour: int = Field(
        1_200,
        ge=1,
        description="Most orders in any 3600 s (the busy desk above: 237 in its busiest "
        "hour; 469 with `--seed 2`).",
    )
    max_orders_per_day: int = Field(
        24_000,
        ge=1,
        description="Most orders in any 86400 s (the busy desk above: 4.4 a minute on "
        "average, 6,300 a day; 6.9 a minute, 9,900 a day with `--seed 2`).",
    )
    trips_to: TripState = _trips_to(ReasonCode.ORDER_RATE)


class NotionalRateSettings(_Switch):
    """USD notional of orders sent per sliding minute, hour and day (a pre-trade budget; sent
    notional bounds traded notional from above)."""

    CODE = ReasonCode.NOTIONAL_RATE
    enabled: bool = _enabled()
    max_notional_usd_per_minute: float = Field(
        2_000_000.0,
        gt=0,
        description="Most order notional in any 60 s, USD; the order that "
        "would exceed it is refused and trips.",
    )
    max_notional_usd_per_hour: float = Field(
        10_000_000.0, gt=0, description="Most order notional in any 3600 s, USD."
    )
    max_notional_usd_per_day: float = Field(
        50_000_000.0, gt=0, description="Most order notional in any 86400 s, USD."
    )
    trips_to: TripState = _trips_to(ReasonCode.NOTIONAL_RATE)


class OrderNotionalSettings(_Switch):
    """One order's USD notional (a pre-trade check)."""

    CODE = ReasonCode.ORDER_NOTIONAL
    enabled: bool = _enabled()
    max_order_notional_usd: float = Field(
        500_000.0,
        gt=0,
        description="Largest notional of one order, USD; a larger order is "
        "refused and trips (the executor slices bigger hedges).",
    )
    trips_to: TripState = _trips_to(ReasonCode.ORDER_NOTIONAL)


class PriceSanitySettings(_Switch):
    """Prices against a reference and against their own last good value; NaN, infinite and
    non-positive prices are always refused."""

    CODE = ReasonCode.PRICE_SANITY
    enabled: bool = _enabled()
    max_jump_pct: float = Field(
        10.0,
        gt=0,
        description="A price that moved this much or more (percent) from the "
        "source's last good value within jump_interval_s is quarantined and trips.",
    )
    jump_interval_s: float = Field(
        60.0,
        gt=0,
        description="Window of the jump check, seconds; an older last good value "
        "cannot judge a new price, which is then accepted.",
    )
    max_deviation_pct: float = Field(
        5.0,
        gt=0,
        description="A price this far or farther (percent) from its reference "
        "(e.g. mark vs index, venue index vs another venue's) is quarantined and trips.",
    )
    max_basis_annual_pct: float = Field(
        100.0,
        gt=0,
        description="A forward (a dated future's mark, an option expiry's underlying price) "
        "is judged against the index with the limit max(max_deviation_pct, this x years to "
        "expiry): a year-out future may carry a large basis, a weekly expiry cannot.",
    )
    gap_confirm_s: float = Field(
        3.0,
        ge=0,
        description="A jump of max_jump_pct or more is quarantined (no trip) for this long; "
        "then it is accepted if the source held the new level and an independent source "
        "moved to it too (another venue's index, the venue's index against its marks); an "
        "isolated jump that holds trips, one that reverts is dropped. 0: every jump trips. "
        "Keep it under the stale-data limits (5 s): the book holds the last good price meanwhile.",
    )
    max_vol_jump_pct: float = Field(
        50.0,
        gt=0,
        description="An option mark IV that moved this much or more (percent of its last good "
        "IV) within jump_interval_s is not applied until the next IV confirms it (within a "
        "tenth of this of the refused one); the last good IV stays meanwhile. No trip: one "
        "option's vol is no reason to stop hedging.",
    )
    order_price_band_pct: float = Field(
        3.0,
        gt=0,
        description="An order priced this far or farther (percent) from its "
        "reference price (mark or index) is refused and trips.",
    )
    trips_to: TripState = _trips_to(ReasonCode.PRICE_SANITY)


class DailyLossSettings(_Switch):
    """The hedges' P&L since the start of the trading day (fills of the day and the hedge
    positions carried into it, marked to market); a P&L that cannot be computed halts."""

    CODE = ReasonCode.DAILY_LOSS
    enabled: bool = _enabled()
    max_daily_loss_usd: float = Field(
        100_000.0, gt=0, description="Trips when the day's hedge loss reaches this, USD."
    )
    day_start_hour_utc: int = Field(
        8,
        ge=0,
        le=23,
        description="Hour (UTC) the trading day starts; 8 is Deribit's daily settlement.",
    )
    trips_to: TripState = _trips_to(ReasonCode.DAILY_LOSS)


class MarginSettings(_Switch):
    """Maintenance margin against equity, and the distance from the index to the estimated
    liquidation price, per account and currency."""

    CODE = ReasonCode.MARGIN
    enabled: bool = _enabled()
    maintenance_limit_pct: float = Field(
        50.0,
        gt=0,
        le=100,
        description="Trips when maintenance margin / equity reaches this, "
        "percent (Deribit liquidates at 100).",
    )
    liquidation_distance_pct: float = Field(
        15.0,
        gt=0,
        description="Trips when the estimated liquidation price is this close or "
        "closer to the index, percent of the index.",
    )
    trips_to: TripState = _trips_to(ReasonCode.MARGIN)


class ClockSkewSettings(_Switch):
    """Local clock against the venue's server time (Deribit `usOut`), corrected by half the
    round trip when known."""

    CODE = ReasonCode.CLOCK_SKEW
    enabled: bool = _enabled()
    skew_limit_ms: float = Field(
        1_000.0,
        gt=0,
        description="Trips when |local clock − venue clock| reaches this, "
        "milliseconds (data ages and order expiries depend on it).",
    )
    trips_to: TripState = _trips_to(ReasonCode.CLOCK_SKEW)


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _check_webhook_url(url: str, allowed_hosts: tuple[str, ...]) -> None:
    """Raise ValueError unless `url` is https:// to a host on `allowed_hosts`, without
    credentials, with a valid port. Messages name the host, never the path (a secret)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError(f"url must be https://, got scheme {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("url must not carry credentials (use token)")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError("url has no host")
    if host not in allowed_hosts:
        raise ValueError(f"url host {host!r} is not in allowed_hosts {list(allowed_hosts)}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"url: bad port ({exc})") from None


class WebhookSettings(_Section):
    """An HTTPS webhook for people (`[risk.alerts.webhook]`): Slack-compatible (`{"text": ...}`)
    or the JSON alert, POSTed to a host on `allowed_hosts`, from a bounded queue by one
    background task (trading never waits for it), with retries, a rate limit and redaction."""

    url: SecretStr | None = Field(
        None,
        description="https:// URL the alert is POSTed to (off when unset). Held as a secret: "
        "a Slack URL's path is its credential; logs name only the host.",
    )
    format: Literal["slack", "json"] = Field(
        "json",
        description="'slack' (a {\"text\": ...} message, for Slack and compatible receivers) "
        "or 'json' (the alert's JSON, as the other hooks get it).",
    )
    allowed_hosts: tuple[str, ...] = Field(
        (),
        description="Hosts the URL may point at (exact names, e.g. ['hooks.slack.com']); a URL "
        "whose host is not listed is a config error.",
    )
    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA(s) that sign the receiver's certificate, trusted "
        "instead of the system's (a private receiver); unset: the system's CAs.",
    )
    token: SecretStr | None = Field(
        None, description="Token sent in token_header (never logged); unset: none sent."
    )
    token_file: Path | None = Field(
        None, description="File holding the token (read at load when token is not set)."
    )
    token_header: str = Field(
        "Authorization",
        description="Header that carries the token: 'Authorization' sends 'Bearer <token>', "
        "any other header the token as it is.",
    )
    timeout_s: float = Field(
        5.0, gt=0, le=60, description="Timeout of one POST (connect, TLS, answer), seconds."
    )
    retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Attempts after the first when the POST fails (no answer, timeout, HTTP "
        "429 or 5xx); other answers are not retried.",
    )
    backoff_initial_s: float = Field(
        1.0, gt=0, le=60, description="Wait before the first retry, seconds; doubles per retry."
    )
    backoff_max_s: float = Field(
        30.0, gt=0, le=600, description="Longest wait between two attempts, seconds."
    )
    max_per_minute: int = Field(
        10,
        ge=1,
        description="At most this many alerts in any minute (by the alerts' own times); the "
        "ones held back are counted in the next message sent.",
    )
    queue_size: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Alerts waiting for delivery; when full, the oldest is dropped (counted).",
    )

    @model_validator(mode="before")
    @classmethod
    def _token_from_file(cls, data: Any) -> Any:
        # Read once at load, so a missing file is a config error and the token joins the
        # redacted secrets like every other configured secret.
        if isinstance(data, dict) and not data.get("token") and data.get("token_file"):
            data = {**data, "token": read_secret_file(Path(data["token_file"]))}
        return data

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for entry in v:
            host = entry.strip().lower().removeprefix("[").removesuffix("]")
            bad = not host or any(c in host for c in "/@ \t")
            if not bad and ":" in host:  # only an IPv6 literal has one; a port does not belong
                try:
                    ipaddress.IPv6Address(host)
                except ValueError:
                    bad = True
            if bad:
                raise ValueError(f"allowed_hosts: {entry!r} is not a host name (no scheme/port)")
            out.append(host)
        return tuple(out)

    @field_validator("token_header")
    @classmethod
    def _header(cls, v: str) -> str:
        if not v or any(c in v for c in ": \r\n"):
            raise ValueError("token_header must be an HTTP header name")
        return v

    @model_validator(mode="after")
    def _check(self) -> WebhookSettings:
        # A model-level check: a failure names the section, and the URL (a secret) is not
        # echoed as the "value" of the error.
        if self.url is not None:
            _check_webhook_url(self.url.get_secret_value(), self.allowed_hosts)
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        if self.token is not None and any(c in self.token.get_secret_value() for c in "\r\n"):
            raise ValueError("token must be one line")
        if self.ca_file is not None:
            try:  # the same load the sink does, so a bad file is a config error
                ssl.create_default_context(cafile=str(self.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"ca_file {self.ca_file}: cannot load ({exc})") from None
        return self

    @property
    def host(self) -> str:
        """The URL's host (not secret: what logs name); "" when off."""
        if self.url is None:
            return ""
        return (urlsplit(self.url.get_secret_value()).hostname or "").lower()

    def secret_values(self) -> list[str]:
        """The token, the URL and its path with query (a Slack URL's path is its credential),
        in clear, for the redactor. Never print the result."""
        out: list[str] = []
        if self.token is not None:
            out.append(self.token.get_secret_value())
        if self.url is not None:
            url = self.url.get_secret_value()
            parts = urlsplit(url)
            out.append(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path.strip("/"):
                out.append(path)
        return [s for s in out if s]


class AlertSettings(_Section):
    """Where kill-switch alerts go: a command, a webhook on the loopback interface, an HTTP
    endpoint on a Unix socket and/or an HTTPS webhook for people (Slack or JSON). All are
    optional; failures are logged, never raised."""

    command: tuple[str, ...] = Field(
        (),
        description="Command run on each alert, as an argv list (no shell), e.g. "
        "['/usr/local/bin/page-oncall']. Gets HEDGERD_ALERT_* environment variables (code, "
        "state, detail, JSON) and a minimal environment (PATH, HOME, LANG): never the "
        "daemon's.",
    )
    command_timeout_s: float = Field(
        10.0, gt=0, le=300, description="The command is killed after this long, seconds."
    )
    webhook_url: str | None = Field(
        None,
        description="URL a JSON alert is POSTed to; host must be 127.0.0.1, localhost or [::1] "
        "(a local relay forwards it elsewhere; [risk.alerts.webhook] reaches an HTTPS "
        "receiver directly).",
    )
    unix_socket_path: Path | None = Field(
        None, description="Unix socket of an HTTP server the JSON alert is POSTed to."
    )
    unix_socket_url_path: str = Field(
        "/alert", description="HTTP path of the POST on unix_socket_path."
    )
    http_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Timeout of one webhook or Unix-socket POST, seconds."
    )
    min_interval_s: float = Field(
        300.0,
        ge=0,
        description="At most one alert per reason code in this interval, seconds; "
        "suppressed ones are counted in the next.",
    )
    max_per_hour: int = Field(
        30, ge=1, description="At most this many alerts in any hour, all codes together."
    )
    webhook: WebhookSettings = Field(
        default_factory=WebhookSettings, description=_doc(WebhookSettings)
    )

    @field_validator("command")
    @classmethod
    def _argv(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if v and not v[0]:
            raise ValueError("command[0] must name a program")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _loopback_only(cls, v: str | None) -> str | None:
        if v is None:
            return v
        check_loopback_url(v)
        return v

    @field_validator("unix_socket_url_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("unix_socket_url_path must start with '/'")
        return v

    @property
    def any_target(self) -> bool:
        return (
            bool(self.command)
            or self.webhook_url is not None
            or (self.unix_socket_path is not None)
            or self.webhook.url is not None
        )


def check_loopback_url(url: str) -> None:
    """Raise ValueError unless `url` is http(s) to 127.0.0.1, localhost or [::1] with no
    credentials in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook_url must be http:// or https://, got scheme {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("webhook_url must not carry credentials")
    host = (parts.hostname or "").lower()
    if host not in LOOPBACK_HOSTS:
        # 127.0.0.2 etc. are loopback too, but the rule is simple on purpose.
        try:
            is_loop = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_loop = False
        hint = " (only 127.0.0.1 / ::1 / localhost are accepted)" if is_loop else ""
        raise ValueError(
            f"webhook_url host {host!r} is not local: alerts go to 127.0.0.1, localhost or "
            f"[::1] only{hint}"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"webhook_url: bad port ({exc})") from None


class KillSwitchSettings(_Section):
    """Automatic kill switches and their alert hooks (`[risk]`)."""

    stale_data: StaleDataSettings = Field(
        default_factory=StaleDataSettings, description=_doc(StaleDataSettings)
    )
    venue_disconnected: VenueDisconnectedSettings = Field(
        default_factory=VenueDisconnectedSettings,
        description=_doc(VenueDisconnectedSettings),
    )
    position_mismatch: PositionMismatchSettings = Field(
        default_factory=PositionMismatchSettings,
        description=_doc(PositionMismatchSettings),
    )
    greeks_divergence: GreeksDivergenceSettings = Field(
        default_factory=GreeksDivergenceSettings,
        description=_doc(GreeksDivergenceSettings),
    )
    delta_limit: DeltaLimitSettings = Field(
        default_factory=DeltaLimitSettings, description=_doc(DeltaLimitSettings)
    )
    reject_streak: RejectStreakSettings = Field(
        default_factory=RejectStreakSettings, description=_doc(RejectStreakSettings)
    )
    order_rate: OrderRateSettings = Field(
        default_factory=OrderRateSettings, description=_doc(OrderRateSettings)
    )
    notional_rate: NotionalRateSettings = Field(
        default_factory=NotionalRateSettings, description=_doc(NotionalRateSettings)
    )
    order_notional: OrderNotionalSettings = Field(
        default_factory=OrderNotionalSettings, description=_doc(OrderNotionalSettings)
    )
    price_sanity: PriceSanitySettings = Field(
        default_factory=PriceSanitySettings, description=_doc(PriceSanitySettings)
    )
    daily_loss: DailyLossSettings = Field(
        default_factory=DailyLossSettings, description=_doc(DailyLossSettings)
    )
    margin: MarginSettings = Field(default_factory=MarginSettings, description=_doc(MarginSettings))
    clock_skew: ClockSkewSettings = Field(
        default_factory=ClockSkewSettings, description=_doc(ClockSkewSettings)
    )
    alerts: AlertSettings = Field(default_factory=AlertSettings, description=_doc(AlertSettings))
    link_recover_after_s: float = Field(
        10.0,
        gt=0,
        description="With several accounts, an account's stale-data and venue-disconnected "
        "trips clear by themselves once its link has been healthy (every stream connected, "
        "fresh market data since the reconnection, no feed past its limit) for this long, "
        "seconds, on the stale-data switch's clock; it then rejoins routing. Every other "
        "trip, an operator's state and the single-account (portfolio) state latch.",
    )

    @model_validator(mode="after")
    def _windows_nest(self) -> KillSwitchSettings:
        r = self.order_rate
        if not r.max_orders_per_minute <= r.max_orders_per_hour <= r.max_orders_per_day:
            raise ValueError("order_rate: need per_minute <= per_hour <= per_day")
        n = self.notional_rate
        if not (
            n.max_notional_usd_per_minute
            <= n.max_notional_usd_per_hour
            <= n.max_notional_usd_per_day
        ):
            raise ValueError("notional_rate: need per_minute <= per_hour <= per_day")
        return self

    def switches(self) -> tuple[tuple[str, _Switch], ...]:
        """(config key, settings) of every switch, in table order."""
        return tuple(
            (name, value)
            for name, value in ((n, getattr(self, n)) for n in type(self).model_fields)
            if isinstance(value, _Switch)
        )


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def render_switch_table(settings: KillSwitchSettings | None = None) -> str:
    """The README's Markdown table of the kill switches: config key, reason code, what it
    watches, its limits (with their values in `settings`, defaults when None) and the state it
    trips to."""
    settings = settings if settings is not None else KillSwitchSettings()
    lines = [
        "| Switch (`[risk.*]`) | Reason code | Watches | Limits (default) | Trips to |",
        "|---|---|---|---|---|",
    ]
    for key, switch in settings.switches():
        # A pipe would end the Markdown cell.
        watches = " ".join((type(switch).__doc__ or "").split()).replace("|", "\\|")
        limits = "<br>".join(
            f"`{name}` = {_fmt(getattr(switch, name))}"
            for name in type(switch).model_fields
            if name not in ("enabled", "trips_to")
        )
        state = switch.trips_to.upper() if switch.enabled else "(disabled)"
        lines.append(f"| `{key}` | `{switch.CODE.value}` | {watches} | {limits} | {state} |")
    return "\n".join(lines) + "\n"


__all__ = [
    "LOOPBACK_HOSTS",
    "AlertSettings",
    "ClockSkewSettings",
    "DailyLossSettings",
    "DeltaLimitSettings",
    "GreeksDivergenceSettings",
    "KillSwitchSettings",
    "MarginSettings",
    "NotionalRateSettings",
    "OrderNotionalSettings",
    "OrderRateSettings",
    "PositionMismatchSettings",
    "PriceSanitySettings",
    "RejectStreakSettings",
    "StaleDataSettings",
    "TripState",
    "VenueDisconnectedSettings",
    "check_loopback_url",
    "render_switch_table",
]


if __name__ == "__main__":  # `python -m hedgerd.risk.limits`: the README table
    print(render_switch_table(), end="")
