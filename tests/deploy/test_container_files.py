"""deploy/Dockerfile and docker-compose.yml, checked statically.

Docker cannot run on the test machines (client only), so the image is never built here: these
tests lint what can be checked without a daemon (multi-stage build, non-root USER, HEALTHCHECK,
no secrets copied or baked in, every COPY source present) and check the compose file against
the metrics listener and the monitoring files.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from hedgerd.cli import main as hedgerd_main
from hedgerd.config import MetricsSettings, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
_SECRET_WORDS = re.compile(r"secret|token|passw|api_?key|credential|\.env\b|\.pem\b|id_rsa", re.I)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    assert not pending, "dangling line continuation"
    return out


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for inst in instructions:
        if inst[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(inst)
    return result


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_multi_stage_from_python_slim(instructions: list[tuple[str, str]]) -> None:
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for i, a in instructions if i == "ARG" and "=" in a
    }
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    froms = [a for i, a in instructions if i == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    builder, runtime = stages(instructions)
    assert any(i == "RUN" and "pip wheel" in a for i, a in builder)
    installs = [a for i, a in runtime if i == "RUN" and "pip install" in a]
    assert len(installs) == 1
    assert "--no-index" in installs[0] and "from=builder" in installs[0]


def test_runtime_runs_as_non_root_with_a_healthcheck(instructions: list[tuple[str, str]]) -> None:
    runtime = stages(instructions)[-1]
    users = [a for i, a in runtime if i == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0", ""}
    # USER comes before the process starts, i.e. after the last RUN that needs root.
    last_run = max(n for n, (i, _) in enumerate(runtime) if i == "RUN")
    assert max(n for n, (i, _) in enumerate(runtime) if i == "USER") > last_run
    (health,) = [a for i, a in runtime if i == "HEALTHCHECK"]
    assert '"python", "-m", "hedgerd.ops.health"' in health
    entry = [a for i, a in runtime if i == "ENTRYPOINT"]
    assert entry == ['["hedgerd"]']


def test_no_secret_is_copied_or_baked_in(instructions: list[tuple[str, str]]) -> None:
    for inst, args in instructions:
        if inst in {"COPY", "ADD"}:
            sources = [s for s in shlex.split(args)[:-1] if not s.startswith("--")]
            for source in sources:
                assert not _SECRET_WORDS.search(source), (inst, args)
                assert (ROOT / source).exists(), f"{inst} source {source} not in the repo"
        if inst in {"ENV", "ARG"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
            for name in names:
                assert not _SECRET_WORDS.search(name), (inst, args)
        assert inst != "ADD", "use COPY (ADD fetches URLs and unpacks archives)"


def test_dockerignore_keeps_the_context_to_what_the_build_copies() -> None:
    text = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    ignore = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "**"  # everything is excluded first ...
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {"pyproject.toml", "README.md", "src", "deploy/docker/hedgerd.toml"}
    assert allowed == copied  # ... then only what COPY uses comes back


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("HEDGERD_"):
            monkeypatch.delenv(name)


def test_image_config_is_valid_and_has_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    path = DEPLOY / "docker" / "hedgerd.toml"
    assert hedgerd_main(["check-config", str(path)]) == 0
    config = load_config(path)
    assert config.secret_values() == []
    (venue,) = config.venues.values()
    assert venue.mode != "live"
    assert str(venue.api_secret_file).startswith("/run/secrets/")
    assert config.metrics.host == "127.0.0.1"
    assert config.metrics.port == MetricsSettings().port


def _compose() -> dict[str, Any]:
    with (DEPLOY / "docker-compose.yml").open(encoding="utf-8") as fh:
        data: dict[str, Any] = yaml.safe_load(fh)
    return data


def test_compose_stack_shares_one_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = _compose()
    services = compose["services"]
    assert {"hedgerd", "prometheus", "grafana", "pod"} <= set(services)
    # hedgerd's listener is loopback-only, so Prometheus must share its network namespace.
    for name in ("hedgerd", "prometheus", "grafana"):
        assert services[name]["network_mode"] == "service:pod", name
        assert "ports" not in services[name], name
    published = services["pod"]["ports"]
    assert all(p.startswith("127.0.0.1:") for p in published)
    assert {p.rsplit(":", 1)[1] for p in published} == {"9090", "3000"}

    hedgerd = services["hedgerd"]
    assert hedgerd["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert hedgerd["command"][0] == "paper"
    assert hedgerd["read_only"] is True and hedgerd["cap_drop"] == ["ALL"]
    env = hedgerd["environment"]
    _clean_env(monkeypatch)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    config = load_config(None)  # the compose overrides are valid config
    assert config.metrics.host == "127.0.0.1"
    assert config.control.socket_path.parent.as_posix() in {
        t.split(":")[0] for t in hedgerd["tmpfs"]
    }
    # Prometheus scrapes exactly that port.
    with (DEPLOY / "prometheus/prometheus.yml").open(encoding="utf-8") as fh:
        prometheus = yaml.safe_load(fh)
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{config.metrics.port}"]


def test_compose_mounts_exist_and_volumes_are_declared() -> None:
    compose = _compose()
    declared = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
        for image in [service.get("image", "")]:
            if image and name != "hedgerd":
                assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
