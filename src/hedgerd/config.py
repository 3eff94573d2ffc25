"""hedgerd's configuration: a TOML file plus `HEDGERD_*` environment overrides.

Environment variables override the file and nest with `__`, e.g.
`HEDGERD_VENUES__DERIBIT__API_SECRET=...` or `HEDGERD_LOG__LEVEL=debug`. Secrets are
`SecretStr` (never printed) and may also be read from a file (`api_secret_file`), which is how
systemd credentials and Docker secrets deliver them.

Every field carries a description: `hedgerd check-config` and the README's configuration
reference are generated from them.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hedgerd.execution.client_ids import account_tag
from hedgerd.execution.journal_db import PostgresTarget, check_postgres_url
from hedgerd.ha.settings import HaSettings
from hedgerd.hedging.config import POLICY_KINDS, HedgingConfig
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.secret_files import read_secret_file
from hedgerd.validation_errors import ConfigError as ConfigError
from hedgerd.validation_errors import describe_validation_error

ENV_PREFIX = "HEDGERD_"
VenueMode = Literal["sim", "testnet", "live"]
Numeraire = Literal["usd", "coin"]


_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


class _Section(BaseModel):
    # An infinite limit or NaN value is not a setting (an "inf" timeout or budget, a
    # "1e999" that parses to one, a NaN target): refused, never a silent "no limit".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level written to the log."
    )
    format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="'json' (one object a line), 'console' (readable) or 'auto': console on a "
        "terminal, json otherwise.",
    )


class VenueSettings(_Section):
    exchange: Literal["deribit", "okx"] = Field(
        "deribit",
        description="ccxt id of the exchange this account is on (its adapter is chosen by "
        "hedgerd.venues.registry).",
    )
    mode: VenueMode = Field(
        "sim",
        description="'sim' (the built-in simulator or one given by rest_url/ws_url), 'testnet' "
        "(the exchange's test environment) or 'live' (real money; also needs the live "
        "confirmation, see README).",
    )
    account: str = Field("main", description="A name for this account, used in logs and ids.")
    roles: tuple[Literal["options", "hedge"], ...] = Field(
        ("options", "hedge"),
        description="What this account is used for: 'options' (its option positions are in the "
        "book) and/or 'hedge' (hedge orders may be sent to it).",
    )
    hedge_instruments: dict[str, tuple[str, ...]] | None = Field(
        None,
        description="Instruments hedge orders may use on this account, per underlying (venue "
        "instrument names); unset: daemon.hedge_instruments. Only for an account with the "
        "'hedge' role.",
    )
    client_id_tag: str | None = Field(
        None,
        pattern=r"^[0-9A-Za-z]{4}$",
        description="The 4 letters or digits every client order id of this account carries "
        "(ids are unique across accounts); unset: derived from the account's [venues.NAME] "
        "name. Changing it orphans the ids of open orders: set it only for a tag clash.",
    )
    api_key: SecretStr | None = Field(None, description="API key (client id).")
    api_secret: SecretStr | None = Field(None, description="API secret.")
    api_key_file: Path | None = Field(
        None, description="File holding the API key (used when api_key is not set)."
    )
    api_secret_file: Path | None = Field(
        None, description="File holding the API secret (used when api_secret is not set)."
    )
    api_passphrase: SecretStr | None = Field(
        None, description="API passphrase (OKX: chosen when the key was created)."
    )
    api_passphrase_file: Path | None = Field(
        None,
        description="File holding the API passphrase (used when api_passphrase is not set).",
    )
    rest_url: str | None = Field(
        None,
        description="Override of the REST base URL (e.g. http://127.0.0.1:8765 for an "
        "external simulator). Must be set together with ws_url.",
    )
    ws_url: str | None = Field(
        None,
        description="Override of the WebSocket URL (e.g. ws://127.0.0.1:8765/ws/api/v2). Must "
        "be set together with rest_url.",
    )
    underlyings: tuple[str, ...] = Field(
        ("BTC", "ETH"), description="Underlyings (currencies) followed on this account."
    )
    request_timeout_s: float = Field(
        10.0, gt=0, description="Timeout of one REST request, seconds."
    )
    reconnect_initial_s: float = Field(
        0.2,
        gt=0,
        description="First reconnect delay after a stream drops, seconds (doubles "
        "per failed attempt).",
    )
    reconnect_max_s: float = Field(15.0, gt=0, description="Longest reconnect delay, seconds.")
    heartbeat_s: int = Field(
        10,
        ge=10,
        description="Heartbeat interval asked of the venue (Deribit set_heartbeat; "
        "minimum 10 s); a missed heartbeat closes the session, which cancel-on-disconnect "
        "then treats as a disconnect.",
    )
    cancel_on_disconnect: bool = Field(
        True,
        description="Ask the venue to cancel this account's open orders when the "
        "private session drops (Deribit enable_cancel_on_disconnect, scope 'account'; OKX "
        "trade/cancel-all-after, a countdown renewed on a timer: see dead_man_s).",
    )
    dead_man_s: int = Field(
        30,
        ge=10,
        le=120,
        description="OKX: the cancel-all-after countdown, seconds (10 to 120): open orders are "
        "cancelled this long after the last renewal; renewed every third of it.",
    )
    reconcile_s: float = Field(
        30.0,
        gt=0,
        description="Interval between full position reconciliations against the "
        "venue's REST snapshot, seconds (also done after every reconnect).",
    )
    stale_positions_s: float = Field(
        90.0,
        gt=0,
        description="Positions are stale when neither the stream nor a "
        "reconciliation has confirmed them for this long, seconds.",
    )
    stale_market_s: float = Field(
        5.0, gt=0, description="A ticker, quote or index older than this is stale, seconds."
    )
    depth_notional_usd: float = Field(
        250_000.0,
        gt=0,
        description="Order book depth fetched per side for a hedge, as cumulative USD "
        "notional; a larger hedge fetches depth for its own notional (the router sizes the "
        "hedge through the levels fetched).",
    )
    delta_tolerance_coin: float = Field(
        0.01,
        gt=0,
        description="Largest accepted difference between hedgerd's delta and the "
        "venue's, in coin of the underlying; beyond it the divergence is flagged for the kill "
        "switch.",
    )

    @model_validator(mode="after")
    def _check(self) -> VenueSettings:
        if (self.rest_url is None) != (self.ws_url is None):
            raise ValueError(
                "rest_url and ws_url must be set together (a REST-only override would leave a "
                "production WebSocket URL in place)"
            )
        if self.mode == "live" and self.rest_url is not None:
            raise ValueError("mode 'live' cannot use rest_url/ws_url overrides")
        if not self.roles or len(set(self.roles)) != len(self.roles):
            raise ValueError(
                f"roles must name 'options' and/or 'hedge' once each, got {list(self.roles)}"
            )
        if self.hedge_instruments is not None and "hedge" not in self.roles:
            raise ValueError(
                "hedge_instruments is set on an account without the 'hedge' role (roles "
                f"{list(self.roles)}): add 'hedge' to roles or remove hedge_instruments"
            )
        return self

    @property
    def hedges(self) -> bool:
        """Whether hedge orders may be sent to this account (role 'hedge')."""
        return "hedge" in self.roles

    def credentials(self) -> tuple[SecretStr, SecretStr] | None:
        """The API key and secret, from the fields or their files; None when neither is set."""
        key = self.api_key or _read_secret_file(self.api_key_file)
        secret = self.api_secret or _read_secret_file(self.api_secret_file)
        if key is None and secret is None:
            return None
        if key is None or secret is None:
            raise ConfigError(f"venue account {self.account!r}: api key and secret go together")
        return key, secret

    def passphrase(self) -> SecretStr | None:
        """The API passphrase (OKX), from the field or its file; None when not set."""
        return self.api_passphrase or _read_secret_file(self.api_passphrase_file)


def _read_secret_file(path: Path | None) -> SecretStr | None:
    if path is None:
        return None
    try:
        return read_secret_file(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class JournalSettings(_Section):
    path: Path = Field(
        Path("var/hedgerd.sqlite"),
        description="SQLite journal of decisions, orders, fills, trading state and operator "
        "commands (created owner-only). Used unless url is set.",
    )
    url: str | None = Field(
        None,
        description="PostgreSQL journal instead of the SQLite file, e.g. "
        "'postgresql://hedgerd@db1:5432/hedgerd' (same schema; the tables go in the user's "
        "search_path). No password in the URL: use password, password_file or libpq's "
        "PGPASSWORD / ~/.pgpass.",
    )
    password: SecretStr | None = Field(
        None, description="Password of the PostgreSQL journal's user (HEDGERD_JOURNAL__PASSWORD)."
    )
    password_file: Path | None = Field(
        None, description="File holding that password (used when password is not set)."
    )

    @model_validator(mode="after")
    def _check_url(self) -> JournalSettings:
        if self.url is not None:
            check_postgres_url(self.url)  # its ValueError names the problem, not the URL
        elif self.password is not None or self.password_file is not None:
            raise ValueError("password and password_file are for a PostgreSQL journal (url)")
        return self

    def location(self) -> Path | PostgresTarget:
        """Where the journal is: the SQLite path, or the PostgreSQL URL with its password
        (read from password_file here, so a missing file is a config error at start)."""
        if self.url is None:
            return self.path
        return PostgresTarget(self.url, self.password or _read_secret_file(self.password_file))


class ControlSettings(_Section):
    socket_path: Path = Field(
        Path("var/hedgerd.sock"),
        description="Unix socket of the control API (hedgerctl); created owner-only.",
    )
    tcp_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Optional TCP listener on 127.0.0.1 for the control API; requires token.",
    )
    token: SecretStr | None = Field(None, description="Bearer token for the TCP control listener.")

    @model_validator(mode="after")
    def _token_required(self) -> ControlSettings:
        if self.tcp_port is not None and not (self.token and self.token.get_secret_value()):
            raise ValueError("tcp_port needs a token (control.token or HEDGERD_CONTROL__TOKEN)")
        return self


class MetricsSettings(_Section):
    enabled: bool = Field(True, description="Serve Prometheus metrics, /healthz and /readyz.")
    host: Literal["127.0.0.1", "::1", "localhost"] = Field(
        "127.0.0.1", description="Address of the metrics listener (loopback only)."
    )
    port: int = Field(9464, ge=0, le=65535, description="Port of the metrics listener.")


def _default_hedge_instruments() -> dict[str, tuple[str, ...]]:
    return {"BTC": ("BTC-PERPETUAL",), "ETH": ("ETH-PERPETUAL",)}


class DaemonSettings(_Section):
    evaluate_interval_s: float = Field(
        1.0,
        gt=0,
        description="Seconds (of the daemon's clock) between two hedge evaluations of each "
        "underlying.",
    )
    hedge_instruments: dict[str, tuple[str, ...]] = Field(
        default_factory=_default_hedge_instruments,
        description="Instruments hedge orders may use, per underlying (venue instrument "
        'names, e.g. BTC = ["BTC-PERPETUAL"]). An underlying without an entry is not hedged.',
    )
    reconcile_interval_s: float = Field(
        15.0,
        gt=0,
        description="Seconds between order and fill reconciliations against the "
        "venue (also done at start-up before anything is sent).",
    )
    status_line: bool = Field(
        True,
        description="Print a status line (state, delta against band, hedges, cost) to stderr: "
        "a live line on a terminal, periodic plain lines otherwise.",
    )
    status_interval_s: float = Field(
        10.0, gt=0, description="Seconds between two plain status lines (not on a terminal)."
    )
    hold_log_sample_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Fraction of the decisions that do not trade which are logged (every "
        "trading decision is logged).",
    )
    shutdown_timeout_s: float = Field(
        10.0,
        gt=0,
        description="On SIGTERM/SIGINT: seconds allowed to cancel the hedger's orders and "
        "flush the journal before the daemon exits anyway.",
    )


class HedgerdConfig(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    numeraire: Numeraire = Field(
        "usd",
        description="P&L currency the book is hedged in: 'usd' (coin collateral counts as "
        "delta) or 'coin' (inverse option delta net of premium; collateral counts 0).",
    )
    dry_run: bool = Field(
        False, description="Journal decisions and order intents but send nothing."
    )
    log: LogSettings = Field(default_factory=LogSettings, description="Logging.")
    venues: dict[str, VenueSettings] = Field(
        default_factory=dict, description="Exchange accounts, by name."
    )
    journal: JournalSettings = Field(default_factory=JournalSettings, description="Journal.")
    control: ControlSettings = Field(
        default_factory=ControlSettings, description="Operator control API."
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="Prometheus metrics."
    )
    risk: KillSwitchSettings = Field(
        default_factory=KillSwitchSettings,
        description="Automatic kill switches, their limits and alert hooks.",
    )
    hedging: HedgingConfig = Field(
        default_factory=HedgingConfig,
        description="Hedging policies (band, target, hedge ratio), cost model and routing.",
    )
    daemon: DaemonSettings = Field(
        default_factory=DaemonSettings,
        description="The daemon's loop: evaluation interval, hedge instruments, status line.",
    )
    ha: HaSettings = Field(
        default_factory=HaSettings,
        description="High availability: an active and a standby over a PostgreSQL journal.",
    )

    @model_validator(mode="after")
    def _check_accounts(self) -> HedgerdConfig:
        """Several `[venues.NAME]` accounts must be told apart and run together safely."""
        problems: list[str] = []
        for name in self.venues:
            if not _ACCOUNT_NAME.fullmatch(name):
                problems.append(
                    f"venues.{name}: an account name is 1-32 letters, digits, '_' or '-' (it "
                    "names the account in the journal, metrics and hedgerctl --venue)"
                )
        tags: dict[str, str] = {}
        for name in self.venues:
            tag = self.client_id_tag(name)
            if tag in tags:
                problems.append(
                    f"venues.{name}: client-id tag {tag!r} is also venues.{tags[tag]}'s: set "
                    "client_id_tag on one of them"
                )
            tags.setdefault(tag, name)
        keys: dict[str, str] = {}
        for name, v in self.venues.items():
            if v.api_key is None:
                continue
            key = f"{v.exchange}:{v.api_key.get_secret_value()}"
            if key in keys:
                problems.append(
                    f"venues.{name}: the same API key as venues.{keys[key]}: one account, two "
                    "runtimes (each would cancel the other's orders); use one [venues.NAME] "
                    "or a sub-account's own key"
                )
            keys.setdefault(key, name)
        modes = {v.mode for v in self.venues.values()}
        if "live" in modes and len(modes) > 1:
            live = sorted(n for n, v in self.venues.items() if v.mode == "live")
            others = sorted(n for n, v in self.venues.items() if v.mode != "live")
            problems.append(
                f"venues {', '.join(live)} are mode 'live' and {', '.join(others)} are not: "
                "one portfolio cannot hedge real positions with simulated ones"
            )
        if self.ha.enabled and self.journal.url is None:
            problems.append(
                "ha.enabled needs a PostgreSQL journal ([journal] url): the lease and the "
                "fenced intent writes live in the database both nodes share"
            )
        if self.venues and not any(v.hedges for v in self.venues.values()):
            problems.append("no [venues.NAME] account has the 'hedge' role: nothing can hedge")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def client_id_tag(self, account: str) -> str:
        """The client-id tag of account `account` (its `client_id_tag`, else derived from
        the name: `execution.client_ids.account_tag`)."""
        return self.venues[account].client_id_tag or account_tag(account)

    def hedge_instruments(self, account: str, underlying: str) -> tuple[str, ...]:
        """The instruments hedge orders may use on `account` for `underlying` (none for an
        account without the 'hedge' role)."""
        v = self.venues[account]
        if not v.hedges:
            return ()
        table = v.hedge_instruments
        if table is None:
            table = self.daemon.hedge_instruments
        return tuple(table.get(underlying, ()))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs (see load_config); the environment overrides it.
        return (env_settings, init_settings)

    def secret_values(self) -> list[str]:
        """Every configured secret in clear, for the log redactor. Never print the result."""
        out: list[str] = []
        for venue in self.venues.values():
            for secret in (venue.api_key, venue.api_secret, venue.api_passphrase):
                if secret is not None:
                    out.append(secret.get_secret_value())
            try:
                creds = venue.credentials()
                phrase = venue.passphrase()
            except ConfigError:
                creds = phrase = None
            if creds is not None:
                out.extend(s.get_secret_value() for s in creds)
            if phrase is not None:
                out.append(phrase.get_secret_value())
        if self.control.token is not None:
            out.append(self.control.token.get_secret_value())
        if self.journal.password is not None:
            out.append(self.journal.password.get_secret_value())
        with contextlib.suppress(ConfigError):
            from_file = _read_secret_file(self.journal.password_file)
            if from_file is not None:
                out.append(from_file.get_secret_value())
        out.extend(self.risk.alerts.webhook.secret_values())
        # Very short values would redact ordinary words; those are refused as weak anyway.
        return sorted({s for s in out if len(s) >= 4})


def _toml_values(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_config(path: Path | None) -> HedgerdConfig:
    """Load a TOML file (None: defaults only) with `HEDGERD_*` environment overrides.

    Raises ConfigError naming each bad key, its value and what was expected.
    """
    values = _toml_values(path) if path is not None else {}
    try:
        return HedgerdConfig(**values)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe_errors(exc, path))) from None


def _describe_errors(exc: ValidationError, path: Path | None) -> Iterator[str]:
    where = f"{path}: " if path is not None else ""
    for line in describe_validation_error(exc, skip_parts=POLICY_KINDS):
        yield where + line


__all__ = [
    "ConfigError",
    "ControlSettings",
    "DaemonSettings",
    "HedgerdConfig",
    "JournalSettings",
    "LogSettings",
    "MetricsSettings",
    "VenueSettings",
    "load_config",
]
