"""deploy/prometheus/ checked by Prometheus's own `promtool`: the scrape config and the alert
rules load, and the alert-rule unit tests (alerts_test.yml) pass. Skipped, with the reason,
where promtool is not installed (Debian: `apt-get install prometheus`; .ci/run installs it).
The coverage check (every alert has a firing and a silent case) needs no promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
#: Where prometheus.yml expects the rules (the Docker and Debian layout).
INSTALLED_RULES = "/etc/prometheus/alerts.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _alerts(path: Path) -> list[dict[str, Any]]:
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_config_with_its_rules(promtool: str, tmp_path: Path) -> None:
    # prometheus.yml names the rules by their installed path: check a copy that names the
    # shipped file instead (promtool resolves a relative rule path against the config's
    # directory), so the rule reference itself is checked too.
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8")
    assert text.count(INSTALLED_RULES) == 1
    (tmp_path / "prometheus.yml").write_text(
        text.replace(INSTALLED_RULES, "alerts.yml"), encoding="utf-8"
    )
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    done = _run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout, done.stdout


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = _run(promtool, "check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(_alerts(ALERTS))} rules found" in done.stdout, done.stdout


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    done = _run(promtool, "test", "rules", str(ALERTS_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            "hedgerd_trading_state_code == 2\n        for: 0m",
            "hedgerd_trading_state_code == 2\n        for: 1m",
            id="halt-alerts-a-minute-late",
        ),
        pytest.param('up{job="hedgerd"} == 0', "up == 0", id="any-job-down-pages-as-hedgerd"),
        pytest.param('{stage="wire_to_ack"}', "", id="slow-ack-counts-hedgerds-own-path"),
    ],
)
def test_alert_rule_unit_tests_catch_a_broken_rule(
    promtool: str, tmp_path: Path, old: str, new: str
) -> None:
    # The unit tests are worth running only if they fail on a wrong rule: run them against
    # a copy of the rules with one mistake in it.
    text = ALERTS.read_text(encoding="utf-8")
    assert text.count(old) == 1
    (tmp_path / "alerts.yml").write_text(text.replace(old, new), encoding="utf-8")
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    done = _run(promtool, "test", "rules", str(tmp_path / ALERTS_TEST.name))
    assert done.returncode != 0, done.stdout
    assert "FAILED" in done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [ALERTS.name]
    fires: set[str] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts(ALERTS)}
    assert fires == names, f"no firing case: {sorted(names - fires)}"
    assert silent == names, f"no silent case: {sorted(names - silent)}"
