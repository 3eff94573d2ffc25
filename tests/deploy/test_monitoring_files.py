"""deploy/: Prometheus, alert rules and Grafana files parse, and every metric they query is one
that hedgerd.ops.metrics exports (a renamed metric breaks this test, not a dashboard)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hedgerd.config import MetricsSettings
from hedgerd.ops.metrics import Metrics, exported_sample_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "hedgerd.json"
# Series Prometheus itself creates for every target.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (selectors, not functions or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery windows
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()", text):
        name = match.group(1)
        if name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def test_metric_name_extractor() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, venue) (rate(hedgerd_x_bucket{stage="a b"}'
        "[$__rate_interval]))) > 1e3 and on (venue) hedgerd_y offset 5m or up"
    )
    assert metric_names(expr) == {"hedgerd_x_bucket", "hedgerd_y", "up"}


@pytest.fixture(scope="module")
def exported() -> frozenset[str]:
    return exported_sample_names(Metrics().registry) | PROMETHEUS_SYNTHETIC


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    return exprs


def test_dashboard_queries_only_exported_metrics(exported: frozenset[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = _dashboard_exprs(dashboard)
    assert len(exprs) >= 15
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        unknown = names - exported
        assert not unknown, f"dashboard query {expr!r} uses unknown metrics {sorted(unknown)}"
        used |= names
    for variable in dashboard["templating"]["list"]:
        for metric in re.findall(
            r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,", variable["definition"]
        ):
            assert metric in exported
    # The panels the issue asks for are there.
    for needed in (
        "hedgerd_delta_coin",
        "hedgerd_delta_band_upper_coin",
        "hedgerd_delta_band_lower_coin",
        "hedgerd_hedge_cost_usd_total",
        "hedgerd_order_latency_seconds_bucket",
        "hedgerd_trading_state_code",
        "hedgerd_kill_switch_tripped",
        "hedgerd_data_age_seconds",
    ):
        assert needed in used, needed


def test_dashboard_shape_and_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    datasource = _load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    (source,) = datasource["datasources"]
    assert dashboard["uid"] and dashboard["title"] == "hedgerd"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == source["uid"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]
    # No two panels overlap on the 24-column grid.
    cells: dict[tuple[int, int], int] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (panel["title"], cells[(x, y)])
                cells[(x, y)] = panel["id"]
    # Delta against its band is repeated per underlying.
    delta = [p for p in dashboard["panels"] if p.get("repeat") == "underlying"]
    assert len(delta) == 1
    assert {"underlying"} == {v["name"] for v in dashboard["templating"]["list"]}


def test_alert_rules_parse_and_use_exported_metrics(exported: frozenset[str]) -> None:
    rules = _load_yaml(DEPLOY / "prometheus/alerts.yml")
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"HedgerdDown", "HedgerdHalted", "HedgerdKillSwitchTripped"} <= {
        a["alert"] for a in alerts
    }
    for alert in alerts:
        names = metric_names(alert["expr"])
        assert names and names <= exported, (alert["alert"], names - exported)
        assert alert["labels"]["severity"] in {"warning", "critical"}


def test_prometheus_scrapes_the_metrics_listener() -> None:
    config = _load_yaml(DEPLOY / "prometheus/prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "hedgerd"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (static,) = job["static_configs"]
    defaults = MetricsSettings()
    assert static["targets"] == [f"{defaults.host}:{defaults.port}"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_grafana_provisioning_matches_compose_mounts() -> None:
    compose = _load_yaml(DEPLOY / "docker-compose.yml")
    provider = _load_yaml(DEPLOY / "grafana/provisioning/dashboards/hedgerd.yml")
    datasource = _load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    grafana = compose["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v[0] == ".")
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    (prov,) = provider["providers"]
    assert mounts["./grafana/dashboards"] == prov["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == prov["options"]["path"] + "/" + DASHBOARD.name
    # Grafana reaches Prometheus on the shared loopback, at the port Prometheus listens on.
    (source,) = datasource["datasources"]
    prom_cmd = compose["services"]["prometheus"]["command"]
    listen = next(a for a in prom_cmd if a.startswith("--web.listen-address="))
    assert source["url"] == "http://127.0.0.1" + listen.split("=", 1)[1]


def test_deploy_readme_documents_every_metric(exported: frozenset[str]) -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(hedgerd_\w+)` \|", text, flags=re.M))
    families = set()
    for family in Metrics(process_metrics=False).registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        families.add(family.name + suffix)
    assert documented == families
