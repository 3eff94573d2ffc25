"""deploy/ha: the two-node example's config is valid (HA on, over PostgreSQL, no secrets in
it) and its compose file runs two nodes of the same config with distinct node ids."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from hedgerd.config import load_config

HA = Path(__file__).resolve().parents[2] / "deploy" / "ha"


def test_ha_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("HEDGERD_"):
            monkeypatch.delenv(name)
    config = load_config(HA / "hedgerd.toml")
    assert config.ha.enabled
    assert config.journal.url is not None and config.journal.url.startswith("postgresql://")
    assert config.secret_values() == []


def test_compose_runs_two_nodes_over_postgres() -> None:
    with (HA / "docker-compose.yml").open(encoding="utf-8") as fh:
        compose = yaml.safe_load(fh)
    services = compose["services"]
    assert "postgres" in services
    ids = {services[n]["environment"]["HEDGERD_HA__NODE_ID"] for n in ("node-a", "node-b")}
    assert ids == {"node-a", "node-b"}
    for n in ("node-a", "node-b"):
        assert services[n]["command"] == ["run", "--config", "/etc/hedgerd/hedgerd.toml"]
        assert "HEDGERD_JOURNAL__PASSWORD" in services[n]["environment"]
