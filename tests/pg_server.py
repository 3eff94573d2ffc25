"""A throwaway PostgreSQL server for tests, started from the machine's binaries.

`initdb` and `postgres` refuse to run as root, so under root the server runs as an
unprivileged account (`postgres` where the Debian package created it, else `nobody`) in a
temporary directory that account owns. It listens on 127.0.0.1 on a free port and on a Unix
socket in that directory, with `trust` authentication for the superuser `hedgerd`, and without
fsync (a test database does not need to survive a power cut; it is removed afterwards).

`find_binaries()` returns None with a reason where PostgreSQL is not installed: the fixture
then skips the tests that need it and says why (Debian: `apt-get install postgresql-15`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "hedgerd"
#: Where Debian's postgresql-15 puts the server binaries (not on PATH); newest first.
BIN_DIRS = tuple(Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14))
BINDIR_ENV = "HEDGERD_TEST_PG_BINDIR"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class PgBinaries:
    initdb: Path
    postgres: Path


@dataclass(frozen=True, slots=True)
class PgServer:
    """A running server: `host`/`port` (TCP on loopback), `socket_dir` (its Unix socket),
    `superuser` (trust authentication, no password), `dbname` (created empty)."""

    host: str
    port: int
    socket_dir: Path
    superuser: str
    dbname: str
    pid: int

    def url(self, dbname: str | None = None) -> str:
        return f"postgresql://{self.superuser}@{self.host}:{self.port}/{dbname or self.dbname}"


def find_binaries() -> PgBinaries | str:
    """The server binaries, or why there are none. `HEDGERD_TEST_PG_BINDIR` names the
    directory to use instead of searching (another version; or a missing one, to see the
    PostgreSQL tests skip)."""
    override = os.environ.get(BINDIR_ENV)
    candidates = [Path(override)] if override else list(BIN_DIRS)
    pg_config = None if override else shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=5, check=True
            )
            candidates.insert(0, Path(out.stdout.strip()))
    for bindir in candidates:
        initdb, postgres = bindir / "initdb", bindir / "postgres"
        if os.access(initdb, os.X_OK) and os.access(postgres, os.X_OK):
            return PgBinaries(initdb, postgres)
    return (
        "PostgreSQL server binaries not found (looked in "
        + ", ".join(str(d) for d in candidates)
        + "; Debian: apt-get install postgresql-15)"
    )


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root (None: run as we are)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(host: str, port: int) -> bool:
    """Whether the server accepts a real login (a bare TCP connect is accepted while it is
    still starting up)."""
    import psycopg

    try:
        with psycopg.connect(
            host=host, port=port, user=SUPERUSER, dbname="postgres", connect_timeout=2
        ):
            return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def running_server(binaries: PgBinaries, dbname: str = "hedgerd_test") -> Iterator[PgServer]:
    """Start a server in a fresh temporary directory; stop it and remove the directory on exit."""
    account = _run_as()
    base = Path(tempfile.mkdtemp(prefix="hedgerd-pg-"))  # short: Unix socket paths are ≤ 107
    proc: subprocess.Popen[bytes] | None = None
    try:
        user_kw: dict[str, object] = {}
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
            # extra_groups=[]: drop root's supplementary groups too (only root may set them)
            user_kw = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        os.chmod(base, 0o700)
        data = base / "data"
        log_path = base / "server.log"
        subprocess.run(
            [
                str(binaries.initdb),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",  # no fsync of the new cluster: it is thrown away
            ],
            cwd=base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
            timeout=120,
            **user_kw,  # type: ignore[arg-type]
        )
        for _attempt in range(3):  # another process may take the free port before we bind it
            port = _free_port()
            with open(log_path, "ab") as log_file:
                proc = subprocess.Popen(
                    [
                        str(binaries.postgres),
                        "-D",
                        str(data),
                        "-p",
                        str(port),
                        "-k",
                        str(base),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        "fsync=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=200",
                    ],
                    cwd=base,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **user_kw,  # type: ignore[arg-type]
                )
            deadline = time.monotonic() + START_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                if _ready("127.0.0.1", port):
                    break
                time.sleep(0.05)  # polling a starting server, not waiting for luck
            if proc.poll() is None and _ready("127.0.0.1", port):
                break
            _stop(proc)
            proc = None
        if proc is None:
            raise RuntimeError(f"PostgreSQL did not start; log:\n{log_path.read_text()[-2000:]}")
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        yield PgServer("127.0.0.1", port, base, SUPERUSER, dbname, proc.pid)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


_schema_counter = iter(range(1, 1 << 62))


@contextlib.contextmanager
def scratch_schema(server: PgServer, prefix: str = "t") -> Iterator[str]:
    """A new empty schema in the server's database, dropped on exit; yields a connection URL
    whose `search_path` is that schema, so each test sees a database of its own (a schema costs
    a few milliseconds, a database a few hundred)."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{next(_schema_counter)}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{server.url()}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Immediate shutdown (SIGQUIT): nothing in a test database needs a checkpoint."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


__all__ = [
    "SUPERUSER",
    "PgBinaries",
    "PgServer",
    "find_binaries",
    "running_server",
    "scratch_schema",
]
