"""`hedgerd paper` and `hedgerd run` as processes: the paper summary shows hedging that keeps
|delta| inside the band, and SIGTERM stops `hedgerd run` cleanly with its orders cancelled."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest
from e2e_support import (
    REPO,
    daemon_config,
    hedgerd_env,
    mm_open_orders,
    on_sim_calendar,
    paper_argv,
    short_dir,
    simulator,
    start_daemon,
    status,
    toml_text,
    wait_for,
)
from structlog.testing import capture_logs
from test_daemon_control import _resting_hedger_order

from hedgerd.cli import build_parser
from hedgerd.cli import main as hedgerd_main


async def _paper(work: Path, *args: str) -> tuple[str, str]:
    """`hedgerd paper` with the repo's paper config at speed 30, seed 1, from the pinned
    start; its stdout and stderr once it has exited 0."""
    proc = await asyncio.create_subprocess_exec(
        *paper_argv("--speed", "30", "--seed", "1", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=hedgerd_env(work),
        cwd=str(REPO),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90.0)
    finally:
        if proc.returncode is None:  # timed out: leave no process behind
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-3000:])
    return out.decode(), err.decode()


async def test_paper_hedges_keeps_delta_in_band_and_plots_both_underlyings() -> None:
    """One run (each `hedgerd paper` process costs seconds of start-up) checks the summary
    and `--plot`: a short run draws BTC and ETH (the figure's panels are checked in
    tests/ops/test_plots.py; here the run's own series reach a PNG that opens)."""
    work = short_dir()
    summary_path = work / "summary.json"
    png = work / "paper.png"
    out, err = await _paper(
        work, "--duration", "10", "--summary-json", str(summary_path), "--plot", str(png)
    )
    assert "hedges:" in out
    summary = json.loads(summary_path.read_text())
    assert summary["hedges"] >= 1
    assert summary["hedge_cost_usd"] > 0
    assert summary["errors"] == []
    assert summary["state"] == "ACTIVE"
    assert set(summary["time_in_band"]) == {"BTC", "ETH"}
    venues = summary["venues"]
    # Two venues by default: Deribit and its OKX twin, options on both.
    assert set(venues) == {"sim", "okx"}
    assert all(v["option_positions"] > 0 and v["state"] == "ACTIVE" for v in venues.values()), (
        venues,
        err[-3000:],
    )
    for u, share in summary["time_in_band"].items():
        assert share >= 0.95, (u, share, summary["underlyings"][u], summary["simulated_s"])
        assert summary["max_abs_delta"][u] > 0
    for u in ("BTC", "ETH"):
        pnl = summary["pnl_usd"][u]
        assert set(pnl) >= {"options_usd", "hedges_usd", "fees_usd", "funding_usd", "total_usd"}
        assert pnl["fees_usd"] <= 0
    assert f"wrote {png} (BTC, ETH)" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert (width, height) == (1100, 1040)  # two underlyings: 5.2 in each, at 100 dpi


def test_paper_start_ms_is_epoch_ms_or_now(capsys: pytest.CaptureFixture[str]) -> None:
    parse = build_parser().parse_args
    assert parse(["paper"]).start_ms == "now"
    assert parse(["paper", "--start-ms", "1767571200000"]).start_ms == 1_767_571_200_000
    for bad in ("2026-01-05", "-1"):
        with pytest.raises(SystemExit):
            parse(["paper", "--start-ms", bad])
        assert "--start-ms" in capsys.readouterr().err


async def test_sigterm_cancels_orders_and_exits_zero() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with simulator(1.0, seed=7) as sim:
        label = _resting_hedger_order(sim)  # left over "from an earlier run"
        values = daemon_config(work, rest_url=sim.rest_url, ws_url=sim.ws_url)
        # The shipped default budget, not e2e_support's 5 s: on a loaded host one venue round
        # trip has taken seconds, and this test proves the cancels happen, not how fast a
        # starved process makes them. The exit within 15 s is still asserted.
        values["daemon"]["shutdown_timeout_s"] = 10.0
        # The switches judged on wall-clock ages are off: a host that starves the daemon
        # for 5 s (seen under load: index data 12.8 s old) tripped stale_data, and the
        # halt's cancel-all cancelled the order before SIGTERM, whose own cancel-all then
        # found nothing (cancelled_orders 0). This test is about SIGHUP and SIGTERM; the
        # switches have their own tests.
        values["risk"] = {
            switch: {"enabled": False}
            for switch in ("stale_data", "venue_disconnected", "clock_skew")
        }
        config_path = work / "hedgerd.toml"
        config_path.write_text(toml_text(values), encoding="utf-8")
        assert hedgerd_main(["check-config", str(config_path)]) == 0
        faked_env = on_sim_calendar(sim)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hedgerd.cli",
            "run",
            "--config",
            str(config_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**hedgerd_env(work), "HEDGERD_LOG__LEVEL": "info", **faked_env},
        )

        async def up() -> bool:
            assert proc.returncode is None
            if not sock.exists():
                return False
            try:
                return bool((await status(sock))["state"] == "ACTIVE")
            except OSError:
                return False

        try:
            await wait_for(up, 40.0, "hedgerd run to serve its control socket")
            # Start-up reconciliation adopted the resting order with a hedgerd label.
            await wait_for(
                lambda: any(o.label == label for o in mm_open_orders(sim)), 1.0, "the order"
            )
            # SIGHUP reloads the hedging policy from the file: a wider band floor shows in
            # the band the next decision reports.
            values["hedging"]["policies"]["t"]["min_halfwidth_coin"] = 4.0
            config_path.write_text(toml_text(values), encoding="utf-8")
            proc.send_signal(signal.SIGHUP)

            async def widened() -> bool:
                band = (await status(sock))["underlyings"]["BTC"]["band"]
                # No band until the first decision after the reload.
                return band["upper"] is not None and band["upper"] - band["lower"] >= 7.9

            # A bound, not a wait: the first decision after the reload, which a starved
            # host delays by seconds.
            await wait_for(widened, 30.0, "the reloaded band")
            # Still resting: what cancels it below is the shutdown.
            assert any(o.label == label for o in mm_open_orders(sim))
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _out, err = await asyncio.wait_for(proc.communicate(), 20.0)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()[-3000:]
        assert time.monotonic() - start < 15.0
        assert all(o.label != label for o in mm_open_orders(sim)), err.decode()[-6000:]
        # The daemon cancelled it itself (not only the venue's cancel-on-disconnect).
        stopped = [
            json.loads(line) for line in err.decode().splitlines() if '"daemon.stopped"' in line
        ]
        assert stopped and stopped[0]["cancelled_orders"] >= 1, err.decode()[-3000:]
        assert not sock.exists()


async def test_shutdown_cancels_before_the_slow_journal_work() -> None:
    """An execution hung on the wire and a fill repair hung on a slow venue (what a loaded
    host looked like when an order was left open after SIGTERM): the execution gets half the
    budget, then the cancel-all goes before the repair's wait, so the resting order is
    cancelled although the shutdown runs out of time."""
    work = short_dir()
    async with simulator(10.0, seed=7) as sim:
        label = _resting_hedger_order(sim)
        values = daemon_config(work)
        values["daemon"]["shutdown_timeout_s"] = 2.0
        run = await start_daemon(sim, values, 10.0)
        executor = run.daemon.executor
        assert executor is not None
        adopted = [r for r in executor.open_records() if r.label == label]
        assert adopted, "start-up reconciliation adopts the order before READY"
        loop = asyncio.get_running_loop()
        hung_execution = loop.create_task(asyncio.Event().wait())
        run.daemon.hedge_loop.exec_tasks.add(hung_execution)
        hung_repair = loop.create_task(asyncio.Event().wait())
        executor._repairs[label] = hung_repair  # a fill repair that never answers
        with capture_logs() as logs:
            assert await run.shutdown() == 0
        assert hung_execution.cancelled()
        assert all(o.label != label for o in mm_open_orders(sim))
        (timeout,) = [e for e in logs if e["event"] == "daemon.shutdown_timeout"]
        assert timeout["open_orders"] == []
        hung_repair.cancel()
