"""Every example config passes `hedgerd check-config`, and a live config needs the explicit
confirmation before the daemon starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from hedgerd.cli import main
from hedgerd.config import load_config
from hedgerd.daemon import Daemon, DaemonError, check_live, live_confirmed

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
CONFIGS = sorted(CONFIG_DIR.glob("*.toml"))


def test_the_three_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {"paper.toml", "deribit-testnet.toml", "live.example.toml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_passes_check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(path)]) == 0
    assert '"venues"' in capsys.readouterr().out


def test_modes_are_what_the_names_say() -> None:
    modes = {p.name: {v.mode for v in load_config(p).venues.values()} for p in CONFIGS}
    assert modes["paper.toml"] == {"sim"}
    assert modes["deribit-testnet.toml"] == {"testnet"}
    assert modes["live.example.toml"] == {"live"}
    assert modes["okx-demo.toml"] == {"testnet"}
    assert load_config(CONFIG_DIR / "live.example.toml").dry_run


def test_live_needs_confirmation() -> None:
    config = load_config(CONFIG_DIR / "live.example.toml")
    assert not live_confirmed(False, {})
    assert not live_confirmed(False, {"HEDGERD_LIVE_CONFIRM": "no"})
    assert live_confirmed(False, {"HEDGERD_LIVE_CONFIRM": "yes"})
    assert live_confirmed(True, {})
    with pytest.raises(DaemonError, match="i-understand-this-is-live"):
        check_live(config, confirmed=False)
    check_live(config, confirmed=True)
    check_live(load_config(CONFIG_DIR / "deribit-testnet.toml"), confirmed=False)


async def test_daemon_refuses_live_without_confirmation(tmp_path: Path) -> None:
    import asyncio

    config = load_config(CONFIG_DIR / "live.example.toml")
    config = config.model_copy(
        update={"journal": config.journal.model_copy(update={"path": tmp_path / "j.sqlite"})}
    )
    with pytest.raises(DaemonError):
        await Daemon(config).run(asyncio.Event())
    assert not (tmp_path / "j.sqlite").exists()  # refused before anything was opened


def test_run_command_refuses_live(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--config", str(CONFIG_DIR / "live.example.toml")])
    assert code == 2
    assert "real money" in capsys.readouterr().err


def test_builtin_paper_config_equals_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hedgerd.paper import load_paper_config

    from_file = load_paper_config(CONFIG_DIR / "paper.toml")
    monkeypatch.chdir(tmp_path)  # no config/paper.toml here: the built-in one is used
    assert load_paper_config(None) == from_file
