"""`hedgerctl` against `hedgerd paper` as an operator runs both: paper started from a directory
laid out like the repository (config/paper.toml, as `scripts/paper` runs it), hedgerctl from
the same directory with no flags, with `--json` before or after the command, and with the exact
line paper printed at start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from e2e_support import REPO, short_dir, wait_for

from hedgerd.control.locate import probe
from hedgerd.paper_config import BUILTIN_PAPER_CONFIG
from pinned_clock import TEST_START_MS

CTL = [sys.executable, "-m", "hedgerd.ctl"]
#: The simulated day the run happens on (it lasts well under an hour of simulated time).
START_DAY = datetime.fromtimestamp(TEST_START_MS / 1000, tz=UTC).strftime("%Y-%m-%d")


def _env() -> dict[str, str]:
    """The operator's environment: no HEDGERD_* overrides, so the default paths are used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEDGERD_")}
    return {**env, "PYTHONPATH": str(REPO / "src"), "HEDGERD_LOG__FORMAT": "json"}


async def _hedgerctl(cwd: Path, argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one hedgerctl run in `cwd`."""
    done = await asyncio.to_thread(
        subprocess.run, argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=30
    )
    return done.returncode, done.stdout, done.stderr


async def test_hedgerctl_reaches_paper_with_and_without_flags() -> None:
    work = short_dir()
    (work / "config").mkdir()
    shutil.copy(REPO / "config" / "paper.toml", work / "config" / "paper.toml")
    sock = work / BUILTIN_PAPER_CONFIG["control"]["socket_path"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hedgerd.cli",
        "paper",
        "--speed",
        "10",
        "--seed",
        "1",
        "--start-ms",
        str(TEST_START_MS),
        cwd=str(work),
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr: list[str] = []

    async def drain() -> None:  # the status line and logs must not fill the pipe
        assert proc.stderr is not None
        async for raw in proc.stderr:
            stderr.append(raw.decode())

    drainer = asyncio.get_running_loop().create_task(drain())
    try:
        await wait_for(lambda: any("in another terminal: " in s for s in stderr), 30.0, "line")
        hint = [s for s in stderr if "in another terminal: " in s]
        assert len(hint) == 1, hint  # printed once
        printed = shlex.split(hint[0].split("in another terminal: ", 1)[1])
        # Run with `python -m`: no hedgerctl beside `python -m hedgerd.cli` to print.
        assert printed == ["hedgerctl", "--socket", "var/paper/hedgerd.sock", "status"]
        await wait_for(lambda: probe(sock) is None, 60.0, "paper's control socket")

        async def ready() -> bool:
            code, out, _err = await _hedgerctl(work, [*CTL, "--json", "status"])
            doc = json.loads(out) if code == 0 else {}
            return all(u.get("delta") is not None for u in doc.get("underlyings", {}).values())

        await wait_for(ready, 60.0, "both underlyings evaluated")

        code, out, err = await _hedgerctl(work, [*CTL, *printed[1:]])
        assert code == 0, err
        assert out.startswith(f"hedgerd ACTIVE since {START_DAY}"), out

        code, out, err = await _hedgerctl(work, [*CTL, "status"])  # no flags at all
        assert code == 0, err
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= 100, out
        # One row per underlying in the underlyings table and in the band inputs table under
        # it (an open order's row starts "  BTC-PERPETUAL": not one).
        rows = [line.split() for line in lines if line.startswith(("  BTC ", "  ETH "))]
        assert [r[0] for r in rows] == ["BTC", "ETH", "BTC", "ETH"], out
        at = next(i for i, line in enumerate(lines) if line.startswith("  band inputs"))
        assert lines[at + 3].startswith("  BTC ") and lines[at + 4].startswith("  ETH "), out
        for band_row in rows[2:]:
            # The daemon's figures, not "-": mark vol in %, vol-of-vol, jump ratio >= 1.
            vol, vov, jump = band_row[1:4]
            assert vol.endswith("%") and 5.0 < float(vol[:-1]) < 300.0, out
            assert float(vov) >= 0.0 and float(jump) >= 1.0, out
        assert "venue sim | mode sim 10x | numeraire coin" in out

        for argv in (["status", "--json"], ["--json", "status"]):
            code, out, err = await _hedgerctl(work, [*CTL, *argv])
            assert code == 0, err
            doc = json.loads(out)
            assert doc["state"] == "ACTIVE" and set(doc["underlyings"]) == {"BTC", "ETH"}
            assert doc["started_ms"] >= TEST_START_MS and doc["mode"] == "sim"
            for u in ("BTC", "ETH"):
                inputs = doc["underlyings"][u]["band_inputs"]
                assert inputs["vol"] > 0.0 and inputs["jump_var_ratio"] >= 1.0, inputs

        code, out, err = await _hedgerctl(work, [*CTL, "halt", "--reason", "e2e", "--json"])
        assert code == 0, err
        assert json.loads(out)["state"] == "HALTED"
        code, out, err = await _hedgerctl(work, [*CTL, "resume"])
        assert code == 0, err
        assert out.splitlines()[0] == "resume: state now ACTIVE"
        code, out, err = await _hedgerctl(work, [*CTL, "events"])
        assert code == 0, err
        halt, resume = out.splitlines()[-2:]
        assert halt.startswith(f"{START_DAY}T") and "  halt  reason=e2e  by unix uid=" in halt
        assert resume.startswith(f"{START_DAY}T") and "  resume  " in resume
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: paper stops and prints its summary
            try:
                await asyncio.wait_for(proc.wait(), 30.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer
    # Gone: hedgerctl names the socket it tried and exits 3.
    code, _out, err = await _hedgerctl(work, [*CTL, "status"])
    assert code == 3
    assert "var/paper/hedgerd.sock (hedgerd paper, config/paper.toml): no such file" in err
