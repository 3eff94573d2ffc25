"""`[ha]`: run this daemon as one of two (or more) nodes over one PostgreSQL journal."""

from __future__ import annotations

import os
import socket

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hedgerd.ha.lease import LeaseTiming


class HaSettings(BaseModel):
    """The leader lease's identity and timings (all `*_ms` milliseconds). One lease covers
    every account of the daemon (`lease_name`): the accounts of one daemon hedge one
    portfolio together, so they fail over together (docs/ha.md)."""

    # An infinite limit or NaN value is not a setting (an "inf" timeout or budget, a
    # "1e999" that parses to one, a NaN target): refused, never a silent "no limit".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = Field(
        False,
        description="Start as STANDBY and trade only while holding the leader lease "
        "(requires a PostgreSQL journal: [journal] url).",
    )
    node_id: str = Field(
        "",
        max_length=64,
        description="This node's name in the lease (default: host name and pid).",
    )
    lease_name: str = Field(
        "hedgerd",
        min_length=1,
        max_length=64,
        description="The lease both nodes contend for (one per portfolio of accounts).",
    )
    lease_ms: int = Field(6_000, gt=0, description="Lease duration D on the database clock.")
    renew_interval_ms: int = Field(1_000, gt=0, description="The active renews this often.")
    renew_timeout_ms: int = Field(800, gt=0, description="A renew slower than this failed.")
    margin_ms: int = Field(
        1_500,
        ge=0,
        description="The active stops creating intents this long before its lease could "
        "expire (local monotonic clock).",
    )
    min_left_ms: int = Field(
        1_500, ge=0, description="A fenced intent write needs this much lease left."
    )
    acquire_poll_ms: int = Field(
        500, gt=0, description="A standby tries to acquire this often (and on a release)."
    )
    request_ttl_ms: int = Field(
        3_000,
        gt=0,
        description="Each order intent journals a request expiry this long after it was "
        "created, sent with the order (Deribit valid_until, OKX expTime): the venue refuses "
        "the request if it arrives later. A new leader waits until the latest has passed.",
    )
    clock_skew_ms: int = Field(
        250,
        ge=0,
        description="How far this node's clock may be from the venue's (NTP): added to the "
        "previous leader's latest request expiry before the new leader sends.",
    )
    takeover_wait_ms: int | None = Field(
        None,
        ge=0,
        description="After acquiring, when the journal holds no request expiry (orders "
        "journalled before expiries were): wait this long before reconciling and sending, "
        "so a previous leader's in-flight requests have reached the venue (default: "
        "margin_ms).",
    )

    @model_validator(mode="after")
    def _check_timing(self) -> HaSettings:
        self.timing()  # its ValueError names the inconsistent timings
        return self

    def timing(self) -> LeaseTiming:
        return LeaseTiming(
            duration_ms=self.lease_ms,
            renew_interval_ms=self.renew_interval_ms,
            renew_timeout_ms=self.renew_timeout_ms,
            margin_ms=self.margin_ms,
            min_left_ms=self.min_left_ms,
        )

    def holder(self) -> str:
        """The lease holder id: node id (or host name) and pid, so a restarted process on the
        same node is a new holder that waits for its predecessor's lease like anyone else."""
        return f"{self.node_id or socket.gethostname()}:{os.getpid()}"

    def takeover_wait_s(self) -> float:
        wait_ms = self.margin_ms if self.takeover_wait_ms is None else self.takeover_wait_ms
        return wait_ms / 1000.0
