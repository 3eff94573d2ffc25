"""`hedgerctl` as a person types it: global flags before or after the command, the socket found
from the current directory (or every socket tried named), tables by default, JSON on request,
`watch` redrawing in place; exit codes 0 ok, 1 refused, 2 usage, 3 unreachable."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Mapping
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from test_control_server import ctl, make_commands

from hedgerd import ctl as ctl_module
from hedgerd.control.locate import hedgerctl_line, socket_candidates
from hedgerd.control.server import serve_control
from hedgerd.control.watch import CLEAR_SCREEN, HOME, WatchSettings, frame, watch
from hedgerd.ctl import build_parser
from hedgerd.paper_config import BUILTIN_PAPER_CONFIG

RUN_SOCKET = Path("var/hedgerd.sock")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
PAPER_SOCKET = Path(BUILTIN_PAPER_CONFIG["control"]["socket_path"])


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh directory to run hedgerctl from (short relative socket paths), with no socket
    override in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEDGERD_CONTROL__SOCKET_PATH", raising=False)
    return tmp_path


def _ours(out: str) -> list[str]:
    """hedgerctl's lines of captured stdout (the in-process daemon side logs there too)."""
    return [line for line in out.splitlines() if not LOG_LINE.match(line)]


@contextlib.asynccontextmanager
async def serving(path: Path) -> AsyncIterator[Any]:
    commands, trading, *_ = make_commands()
    async with serve_control(commands, path):
        yield trading


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--json", "--socket", "s"],
        ["--json", "status", "--socket", "s"],
        ["--json", "--socket", "s", "status"],
        ["halt", "--reason", "X", "--json", "--socket", "s"],
    ],
)
def test_global_flags_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.json is True and args.socket == Path("s") and args.timeout == 10.0


def test_flags_not_given_keep_their_defaults() -> None:
    args = build_parser().parse_args(["--timeout", "3", "halt"])
    assert (args.json, args.socket, args.tcp, args.config, args.timeout) == (
        False,
        None,
        None,
        None,
        3.0,
    )
    assert args.reason == "operator halt"


def test_socket_and_tcp_on_both_sides_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--socket", "s", "--tcp", "1", "status"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:  # one on each side of the command
        ctl_module.main(["--socket", "s", "status", "--tcp", "1"])
    assert exc.value.code == 2
    assert "--socket and --tcp" in capsys.readouterr().err


async def test_status_human_and_json_and_exit_codes(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = here / "c.sock"
    async with serving(sock) as trading:
        capsys.readouterr()
        assert await ctl("status", "--json", "--socket", str(sock)) == 0
        assert json.loads(capsys.readouterr().out)["underlyings"]["BTC"]["delta"] == 0.1
        assert await ctl("--socket", str(sock), "status") == 0
        out = capsys.readouterr().out
        assert out.startswith("hedgerd ACTIVE\n") and "  BTC  +0.1000" in out
        assert await ctl("halt", "--reason", "lunch break", "--socket", str(sock)) == 0
        assert trading.state == "HALTED"
        assert _ours(capsys.readouterr().out) == [
            "halt: state now HALTED; 3 open order(s) cancelled",
            "  - operator: lunch break",
        ]
        assert await ctl("resume", "--json", "--socket", str(sock)) == 0
        assert json.loads("\n".join(_ours(capsys.readouterr().out)))["state"] == "ACTIVE"
        assert await ctl("set", "nope", "1", "--socket", str(sock)) == 1
        refused = capsys.readouterr()
        assert _ours(refused.out) == [] and "set refused: unknown key 'nope'" in refused.err
        assert await ctl("events", "--socket", str(sock)) == 0
        lines = _ours(capsys.readouterr().out)
        # The test double's audit log has no times: the line still comes, with "-".
        assert [line.split("  ")[1] for line in lines] == ["halt", "resume", "set"]
        assert await ctl("events", "--follow", "--limit", "0", "--socket", str(sock)) == 1
        assert "events refused: limit must be between 1 and" in capsys.readouterr().err


async def test_no_flags_finds_the_paper_daemon_from_its_directory(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(PAPER_SOCKET):
        capsys.readouterr()
        assert await ctl("status", "--json") == 0
        assert json.loads(capsys.readouterr().out)["state"] == "ACTIVE"
        assert await ctl("halt") == 0


async def test_no_flags_finds_the_run_default_and_a_config_dir_socket(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(RUN_SOCKET) as trading:
        assert await ctl("halt") == 0
        assert trading.state == "HALTED"
    (here / "config").mkdir()
    (here / "config" / "testnet.toml").write_text('[control]\nsocket_path = "t/h.sock"\n')
    async with serving(Path("t/h.sock")) as trading:
        assert await ctl("halt") == 0
        assert trading.state == "HALTED"


async def test_unreachable_names_every_socket_tried_and_the_flags(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "config").mkdir()
    (here / "config" / "testnet.toml").write_text('[control]\nsocket_path = "t/h.sock"\n')
    (here / "config" / "broken.toml").write_text("[control\n")
    PAPER_SOCKET.parent.mkdir(parents=True)
    async with serving(PAPER_SOCKET):
        pass  # leaves nothing behind; a plain file stands in for a stale socket below
    capsys.readouterr()
    assert await ctl("status") == 3
    err = capsys.readouterr().err
    assert f"  {RUN_SOCKET} (hedgerd run's default): no such file" in err
    assert f"  {PAPER_SOCKET} (hedgerd paper, built-in config): no such file" in err
    assert "  t/h.sock (control.socket_path in config/testnet.toml): no such file" in err
    assert "--socket PATH" in err and "--config FILE" in err and "--tcp PORT" in err
    assert await ctl("--socket", "elsewhere.sock", "status") == 3
    assert "elsewhere.sock (--socket): no such file" in capsys.readouterr().err


async def test_env_override_is_named(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEDGERD_CONTROL__SOCKET_PATH", "x/y.sock")
    assert [str(c.path) for c in socket_candidates(None, None)] == ["x/y.sock"]
    assert await ctl("status") == 3
    assert "x/y.sock ($HEDGERD_CONTROL__SOCKET_PATH): no such file" in capsys.readouterr().err


async def test_two_daemons_answering_is_a_usage_error(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(RUN_SOCKET) as run_trading, serving(PAPER_SOCKET) as paper_trading:
        capsys.readouterr()
        assert await ctl("halt") == 2
        err = capsys.readouterr().err
        assert "more than one hedgerd answers" in err
        assert str(RUN_SOCKET) in err and str(PAPER_SOCKET) in err
        assert run_trading.state == paper_trading.state == "ACTIVE"
        assert await ctl("--socket", str(PAPER_SOCKET), "halt") == 0
        assert paper_trading.state == "HALTED" and run_trading.state == "ACTIVE"


async def test_config_flag_takes_its_socket(here: Path) -> None:
    cfg = here / "mine.toml"
    cfg.write_text('[control]\nsocket_path = "m.sock"\n')
    async with serving(Path("m.sock")) as trading:
        assert await ctl("halt", "--config", str(cfg)) == 0
        assert trading.state == "HALTED"
    assert await ctl("status", "--config", str(here / "missing.toml")) == 2


def test_hedgerctl_line_uses_the_program_beside_and_quotes(tmp_path: Path) -> None:
    assert hedgerctl_line(Path("var/paper/hedgerd.sock")) == (
        "hedgerctl --socket var/paper/hedgerd.sock status"
    )
    beside = tmp_path / "bin"
    beside.mkdir()
    (beside / "hedgerctl").write_text("#!/bin/sh\n")
    os.chmod(beside / "hedgerctl", 0o755)
    line = hedgerctl_line(Path("my dir/h.sock"), "resume", str(beside / "hedgerd"))
    assert line == f"{beside / 'hedgerctl'} --socket 'my dir/h.sock' resume"


# ------------------------------------------------------------------------------- watch


class Fetches:
    """Status documents in turn; an exception in the list is raised at its turn."""

    def __init__(self, *answers: Mapping[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> Mapping[str, Any]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_watch_redraws_in_place_each_interval() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    fetch = Fetches({"state": "ACTIVE"}, {"state": "HALTED"}, {"state": "ACTIVE"})
    out = StringIO()
    await watch(fetch, out, WatchSettings(interval_s=1.0, count=3, tty=True), sleep)
    assert fetch.calls == 3 and slept == [1.0, 1.0]
    text = out.getvalue()
    assert text.startswith(CLEAR_SCREEN + HOME + "hedgerd ACTIVE\x1b[K\n")
    assert text.count(HOME) == 3 and text.count(CLEAR_SCREEN) == 1
    assert text.index("hedgerd HALTED") < text.rindex("hedgerd ACTIVE")


async def test_watch_first_failure_raises_later_ones_show_and_retry() -> None:
    async def sleep(seconds: float) -> None:
        return None

    with pytest.raises(ConnectionError):
        await watch(Fetches(ConnectionError("down")), StringIO(), WatchSettings(count=2), sleep)
    out = StringIO()
    fetch = Fetches({"state": "ACTIVE"}, ConnectionError("restarting"), {"state": "HALTED"})
    await watch(fetch, out, WatchSettings(count=3, tty=False), sleep)
    firsts = [line for line in out.getvalue().splitlines() if line.startswith("hedger")]
    assert firsts == [
        "hedgerd ACTIVE",
        "hedgerctl watch: no status (restarting); retrying every 1 s",
        "hedgerd HALTED",
    ]


def test_frame_without_a_terminal_has_no_escapes() -> None:
    assert frame("a\nb", first=True, tty=False) == "a\nb\n"
    assert frame("a", first=False, tty=False) == "\na\n"
    assert "\x1b" not in frame("a", first=False, tty=False)


async def test_watch_command_against_a_daemon(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = here / "c.sock"
    async with serving(sock):
        capsys.readouterr()
        assert await ctl("watch", "--count", "2", "--interval", "0.001", "--socket", str(sock)) == 0
    out = capsys.readouterr().out
    assert out.count("hedgerd ACTIVE") == 2 and "\x1b" not in out  # captured: not a terminal
    with pytest.raises(SystemExit) as exc:
        ctl_module.main(["watch", "--count", "0", "--socket", str(sock)])
    assert exc.value.code == 2
    assert await ctl("watch", "--count", "1", "--socket", str(sock)) == 3  # nobody there now


def test_watch_ctrl_c_exits_zero(monkeypatch: pytest.MonkeyPatch, here: Path) -> None:
    async def interrupted(*_args: Any) -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises in the loop

    monkeypatch.setattr(ctl_module, "_watch", interrupted)
    with socket.socket(socket.AF_UNIX) as listener:  # a daemon to find: it only has to listen
        listener.bind("c.sock")
        listener.listen()
        assert ctl_module.main(["watch", "--socket", "c.sock"]) == 0
