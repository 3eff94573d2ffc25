"""Where `hedgerctl` finds the daemon's control socket.

With `--socket PATH` or `--config FILE` there is one candidate. Without either, hedgerctl tries
what a daemon started from the current directory would listen on: `hedgerd run`'s default
(`control.socket_path`, which `HEDGERD_CONTROL__SOCKET_PATH` overrides), `hedgerd paper`'s
(config/paper.toml, else its built-in config) and the `control.socket_path` of every
config/*.toml here. Exactly one must answer: none is "unreachable" (naming each socket tried
and the flags that set it), several is a usage error (an operator command must not go to a
daemon picked by chance).
"""

from __future__ import annotations

import os
import shlex
import socket
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hedgerd.validation_errors import ConfigError

SOCKET_ENV = "HEDGERD_CONTROL__SOCKET_PATH"
#: How to point hedgerctl at a daemon, for messages.
FLAGS_HINT = (
    "point hedgerctl at the daemon with --socket PATH, --config FILE (its "
    "control.socket_path) or --tcp PORT"
)
#: Wall seconds a probe may wait for the listener to accept.
PROBE_TIMEOUT_S = 1.0


class SocketNotFoundError(Exception):
    """No candidate socket answered (hedgerctl's "unreachable")."""


class SocketAmbiguousError(Exception):
    """More than one candidate socket answered (a usage error: the operator must choose)."""


@dataclass(frozen=True, slots=True)
class SocketCandidate:
    """A control socket to try and where its path came from (for messages)."""

    path: Path
    origin: str


@dataclass(frozen=True, slots=True)
class Probe:
    """A candidate and why it did not answer (None: a listener accepted the connection)."""

    candidate: SocketCandidate
    error: str | None


def socket_candidates(socket_path: Path | None, config: Path | None) -> list[SocketCandidate]:
    """The sockets to try, in order, without duplicates (relative paths: from the current
    directory, as the daemon resolves them). Raises ConfigError for a bad --config file."""
    if socket_path is not None:
        return [SocketCandidate(socket_path, "--socket")]
    # Imported here: the settings pull in pydantic-settings, numpy and psycopg, ~0.3 s of CPU
    # that every `hedgerctl --socket ...` (the common case) would pay for nothing.
    from hedgerd.config import load_config
    from hedgerd.paper_config import DEFAULT_CONFIG as PAPER_CONFIG
    from hedgerd.paper_config import load_paper_config

    if config is not None:
        path = load_config(config).control.socket_path
        return [SocketCandidate(path, f"control.socket_path in {config}, from --config")]
    run_origin = f"${SOCKET_ENV}" if os.environ.get(SOCKET_ENV) else "hedgerd run's default"
    found = [SocketCandidate(load_config(None).control.socket_path, run_origin)]
    try:
        paper = load_paper_config(None).control.socket_path
    except ConfigError:
        pass  # a broken paper config: the daemon could not have started with it either
    else:
        where = PAPER_CONFIG if PAPER_CONFIG.exists() else "built-in config"
        found.append(SocketCandidate(paper, f"hedgerd paper, {where}"))
    found += _config_dir_sockets(Path("config"))
    unique: dict[str, SocketCandidate] = {}
    for c in found:
        unique.setdefault(os.path.abspath(c.path), c)
    return list(unique.values())


def _config_dir_sockets(folder: Path) -> list[SocketCandidate]:
    """`control.socket_path` of each config file in `folder` (read as plain TOML: a file that
    does not parse or does not set it is passed over)."""
    out = []
    for path in sorted(folder.glob("*.toml")):
        try:
            value = tomllib.loads(path.read_text(encoding="utf-8"))["control"]["socket_path"]
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
            continue
        if isinstance(value, str) and value:
            out.append(SocketCandidate(Path(value), f"control.socket_path in {path}"))
    return out


def probe(path: Path) -> str | None:
    """Why nothing listens at `path` (None: a listener accepted the connection)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(PROBE_TIMEOUT_S)
    try:
        sock.connect(str(path))
    except FileNotFoundError:
        return "no such file"
    except ConnectionRefusedError:
        return "nothing listens there (a stale socket?)"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    finally:
        sock.close()
    return None


def locate(candidates: Sequence[SocketCandidate]) -> Path:
    """The one candidate a daemon listens on. Raises SocketNotFoundError or
    SocketAmbiguousError with a message for the operator."""
    probes = [Probe(c, probe(c.path)) for c in candidates]
    live = [p.candidate for p in probes if p.error is None]
    if len(live) == 1:
        return live[0].path
    if not live:
        tried = "\n".join(f"  {p.candidate.path} ({p.candidate.origin}): {p.error}" for p in probes)
        raise SocketNotFoundError(f"cannot reach hedgerd; tried:\n{tried}\n{FLAGS_HINT}")
    answering = "\n".join(f"  {c.path} ({c.origin})" for c in live)
    raise SocketAmbiguousError(
        f"more than one hedgerd answers:\n{answering}\nchoose one with --socket PATH or "
        "--config FILE"
    )


def hedgerctl_line(socket_path: Path, command: str = "status", argv0: str | None = None) -> str:
    """The command line that reaches a daemon listening on `socket_path`: hedgerctl beside the
    running program (`argv0`, e.g. .venv/bin/hedgerd) when it is there, else from PATH."""
    exe = "hedgerctl"
    if argv0:
        beside = Path(argv0).with_name("hedgerctl")
        if beside.is_file() and os.access(beside, os.X_OK):
            exe = str(beside)
    return f"{shlex.quote(exe)} --socket {shlex.quote(str(socket_path))} {command}"


__all__ = [
    "Probe",
    "SocketAmbiguousError",
    "SocketCandidate",
    "SocketNotFoundError",
    "hedgerctl_line",
    "locate",
    "probe",
    "socket_candidates",
]
