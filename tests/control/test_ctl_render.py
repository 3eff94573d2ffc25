"""hedgerctl's human output: the status table pinned by a golden text, confirmations, events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hedgerd.control.render import (
    render_event,
    render_events,
    render_result,
    render_status,
)
from hedgerd.control.views import BandInputsView, StatusView, summarize_freshness
from hedgerd.textfmt import duration, table

DATA = Path(__file__).parent / "data"


def _sample() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "status_two_underlyings.json").read_text())
    return doc


def test_status_table_matches_the_golden_text() -> None:
    # A status document captured from a paper daemon (a halt, a stale ticker and the band
    # inputs' jump skews added).
    expected = (DATA / "status_two_underlyings.txt").read_text()
    assert render_status(_sample()) + "\n" == expected


def test_status_fits_100_columns_and_names_every_unit() -> None:
    text = render_status(_sample())
    assert max(len(line) for line in text.splitlines()) <= 100
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "delta" in line and "theta" in line)
    header, units = lines[at : at + 2]
    for name in ("delta", "band", "target", "gamma", "vega", "theta", "hedges", "cost"):
        assert name in header
    for unit in ("coin", "coin/1%", "USD/vol pt", "USD/day", "USD", "of time"):
        assert unit in units
    # The band's inputs, a second table under it, with its units likewise (the two gamma
    # columns' names stacked, "gamma" on the line above the others' names).
    at = next(i for i, line in enumerate(lines) if line.startswith("  band inputs"))
    over, header, units = lines[at - 1 : at + 2]
    for name in ("mark vol", "vol of vol", "jump ratio", "jump skew", "coherence", "ahead"):
        assert name in header
    assert "option flow" in header and over.split() == ["gamma", "gamma"]
    assert header.index("coherence") + len("coherence") == over.index("gamma") + len("gamma")
    assert header.index("ahead") + len("ahead") == over.rindex("gamma") + len("gamma")
    for unit in ("%/year", "1/sqrt(year)", "index/marks", "return", "|net|/gross", "coin/1%"):
        assert unit in units
    assert "coin^2/year" in units
    # No epoch milliseconds, no 17-digit floats: the sample's now_ms and BTC gamma (and the
    # band inputs' vol and flow).
    assert "1796518" not in text and "0.000339" not in text
    assert "0.455" not in text and "9590.0" not in text


def _band_rows(text: str) -> dict[str, list[str]]:
    """The band inputs table's rows by underlying (cells split on runs of spaces)."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  band inputs"))
    rows = {}
    for line in lines[at + 3 :]:
        if not line.startswith("  ") or line.startswith("  mark vol:"):
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


def test_band_inputs_show_vol_in_percent_and_gamma_ahead_per_1pct() -> None:
    doc = _sample()
    btc = doc["underlyings"]["BTC"]
    btc["index_usd"] = 90_000.0
    btc["band_inputs"] = {
        "vol": 0.4567,
        "vol_of_vol_per_sqrt_year": 1.2345,
        "jump_var_ratio": 1.006,
        "jump_skew": 0.0123,
        "gamma_coherence": 0.8765,
        "gamma_ahead_coin_per_usd": 0.0002,
        "flow_var_coin2_per_year": 12.345,
    }
    rows = _band_rows(render_status(doc))
    # vol 0.4567 a year = 45.7 %; gamma ahead 0.0002 coin/USD x 90,000 USD x 1 % = 0.18 coin.
    # The jumps' lean a signed return, 3 decimals: 0.0123 as +0.012.
    assert rows["BTC"] == ["45.7%", "1.23", "1.01", "+0.012", "0.88", "+0.1800", "12.3"]
    # The sample's ETH: its jumps leaning down (-0.0342...), no coherence computed for its
    # policy (null) shows "-".
    assert rows["ETH"] == ["63.7%", "0.00137", "1.42", "-0.034", "-", "+0.0995", "5,240"]
    # A daemon from before the jump skew (the key absent): "-" in its column alone.
    del btc["band_inputs"]["jump_skew"]
    assert _band_rows(render_status(doc))["BTC"] == [
        "45.7%", "1.23", "1.01", "-", "0.88", "+0.1800", "12.3"
    ]  # fmt: skip


def test_an_older_daemon_without_band_inputs_shows_dashes() -> None:
    """A daemon from before the band inputs (no `band_inputs` key), or one that sends
    something else there: every figure "-", the rest of the status unchanged."""
    doc = _sample()
    del doc["underlyings"]["BTC"]["band_inputs"]
    doc["underlyings"]["ETH"]["band_inputs"] = "n/a"
    view = StatusView.from_json(doc)
    assert [u.band_inputs for u in view.underlyings] == [BandInputsView(), BandInputsView()]
    text = render_status(doc)
    assert _band_rows(text) == {"BTC": ["-"] * 7, "ETH": ["-"] * 7}
    golden = (DATA / "status_two_underlyings.txt").read_text()
    # The underlyings table above it reads as before.
    assert text.split("  band inputs")[0] == golden.split("  band inputs")[0]


def test_gamma_vega_are_shown_per_1pct_and_per_vol_point() -> None:
    doc = _sample()
    btc = doc["underlyings"]["BTC"]
    btc.update(gamma=0.0001, index_usd=90_000.0, vega=12_345.0, theta=-1_000.4, delta=0.123456)
    doc["underlyings"] = {"BTC": btc}
    row = next(line for line in render_status(doc).splitlines() if line.startswith("  BTC"))
    # gamma 0.0001 coin/USD x 90,000 USD x 1 % = 0.09 coin; vega 12,345 per 1.00 = 123 per pt
    assert row.split()[1:2] == ["+0.1235"]
    assert row.split()[4:7] == ["+0.0900", "123", "-1,000"]


def test_a_sparse_document_renders_with_dashes() -> None:
    doc = {
        "state": "ACTIVE",
        "reasons": [],
        "underlyings": {"BTC": {"delta": 0.1, "gamma": None}},
        "open_orders": [],
    }
    lines = render_status(doc).splitlines()
    assert lines[0] == "hedgerd ACTIVE"
    row = next(line for line in lines if line.startswith("  BTC"))
    assert row.split() == ["BTC", "+0.1000", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert "  open orders: none" in lines
    assert "  data freshness: not reported" in lines


def test_an_account_not_active_says_why_under_the_accounts_table() -> None:
    """An account's own trips (margin, funds, its link) show their detail, as the header
    shows the portfolio's: the operator sees why `okx` is REDUCE_ONLY, not just `margin`."""
    margin = {
        "code": "margin",
        "state": "reduce_only",
        "detail": "okx USD: maintenance margin is 50.14% of equity (limit 50%)",
        "since_ms": 1_767_571_200_000,
        "actor": "auto",
    }

    def account(exchange: str, state: str, reasons: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "exchange": exchange,
            "roles": ["options", "hedge"],
            "state": state,
            "effective_state": state,
            "reasons": reasons,
            "margin": {"USD": {"equity": 1.3e6, "maintenance_margin": 6.5e5, "margin_use": 0.5}},
        }

    doc = {
        **_sample(),
        "accounts": {
            "sim": account("deribit", "ACTIVE", []),
            "okx": account("okx", "REDUCE_ONLY", [margin]),
        },
    }
    lines = render_status(doc).splitlines()
    row = next(line for line in lines if line.split()[:1] == ["okx"])
    assert "REDUCE_ONLY" in row and "margin" in row
    at = lines.index(row) + 1  # right under the accounts' rows, wrapped to the width
    assert " ".join(line.strip() for line in lines[at : at + 2]) == (
        "- okx: margin (auto, since 2026-01-05 00:00:00 UTC): okx USD: maintenance margin is "
        "50.14% of equity (limit 50%)"
    )
    assert not any(line.startswith("  - sim") for line in lines)  # ACTIVE: nothing to explain
    assert max(len(line) for line in lines) <= 100


def test_freshness_summary_per_source_kind() -> None:
    summary = summarize_freshness(
        [
            ("positions", "", 3.0, False),
            ("tickers", "A", 1.0, False),
            ("tickers", "B", 40.0, True),
            ("index", "BTC", None, True),
            ("portfolio", "", 99.0, True),
        ]
    )
    assert [(f.source, f.count, f.oldest_age_s, f.stale) for f in summary] == [
        ("positions", 1, 3.0, ()),
        ("tickers", 2, 40.0, ("B",)),
        ("index", 1, None, ("BTC",)),
        ("portfolio", 1, 99.0, ("account",)),
    ]
    doc = {"state": "ACTIVE", "data_freshness_summary": [f.to_json() for f in summary]}
    text = render_status(doc)
    assert "  index            1   never  1: BTC" in text.splitlines()
    # A daemon sending only the per-source list gets the same summary.
    listed = {
        "state": "ACTIVE",
        "data_freshness": [
            {"source": s, "key": k, "age_s": a, "stale": st}
            for s, k, a, st in [("tickers", "A", 1.0, False), ("tickers", "B", 40.0, True)]
        ],
    }
    assert "  tickers        2  40.0 s  1: B" in render_status(listed).splitlines()


def test_confirmations_say_the_state_after_and_why() -> None:
    halted = {
        "state": "HALTED",
        "reasons": [
            {
                "code": "operator",
                "state": "halted",
                "detail": "lunch",
                "since_ms": 1_767_571_200_000,
                "actor": "unix:uid=1000",
            }
        ],
        "cancelled_orders": 2,
    }
    assert render_result("halt", halted) == (
        "halt: state now HALTED; 2 open order(s) cancelled\n"
        "  - operator (unix:uid=1000, since 2026-01-05 00:00:00 UTC): lunch"
    )
    assert render_result("resume", {"state": "ACTIVE", "reasons": []}) == (
        "resume: state now ACTIVE"
    )
    assert render_result("reduce-only", {"state": "REDUCE_ONLY", "reasons": ["operator"]}) == (
        "reduce-only: state now REDUCE_ONLY\n  - operator"
    )
    assert render_result("cancel-all", {"cancelled_orders": 3}) == (
        "cancel-all: 3 open order(s) cancelled"
    )
    assert render_result("set", {"key": "hedging.BTC.band_coin", "value": 2.5}) == (
        "set hedging.BTC.band_coin = 2.5"
    )
    report = {"venue": "sim", "missed_fills": ["t-1", "t-2"], "adopted": [], "errors": ["x"]}
    assert render_result("reconcile", report) == ("reconciled sim: missed fills 2\n  error: x")
    flat = {
        "underlyings": {
            "BTC": {
                "decision_id": "flatten-BTC-1",
                "legs": [
                    {
                        "instrument": "BTC-PERPETUAL",
                        "side": "sell",
                        "amount": 1230.0,
                        "amount_unit": "usd",
                        "outcome": "filled",
                        "filled_amount": 1230.0,
                    }
                ],
                "skipped": [{"instrument": "BTC-27DEC26-100000-C", "why": "not a hedge"}],
            }
        }
    }
    assert render_result("flatten", flat).splitlines() == [
        "flatten BTC: 1 order(s) sent (flatten-BTC-1)",
        "  sell 1230.0 USD BTC-PERPETUAL: filled, filled 1230.0 USD",
        "  skipped BTC-27DEC26-100000-C: not a hedge",
    ]
    flat_cancelling = {**flat, "cancelled_orders": ["hg1-a-0-0-0", "hg1-b-1-0-2"]}
    assert render_result("flatten", flat_cancelling).splitlines()[:2] == [
        "cancelled 2 open order(s) first: hg1-a-0-0-0, hg1-b-1-0-2",
        "flatten BTC: 1 order(s) sent (flatten-BTC-1)",
    ]


def test_events_one_line_each_with_a_utc_iso_time() -> None:
    journal_entry = {
        "seq": 7,
        "ts_ms": 1_767_571_200_123,
        "uid": 1000,
        "surface": "unix",
        "command": "halt",
        "args": {"reason": "lunch break"},
        "outcome": "ok",
    }
    live_notice = {"event": "set", "key": "hedging.BTC.band_coin", "ts_ms": 1_767_571_260_000}
    assert render_event(journal_entry) == (
        '2026-01-05T00:00:00.123+00:00  halt  reason="lunch break"  by unix uid=1000  ok'
    )
    assert render_event(live_notice) == (
        "2026-01-05T00:01:00.000+00:00  set  key=hedging.BTC.band_coin"
    )
    assert render_events([]) == "no events"
    assert len(render_events([journal_entry, live_notice]).splitlines()) == 2


def test_table_stacks_units_and_aligns() -> None:
    lines = table(["name", "delta\ncoin", "note"], [["BTC", "+0.1", "ok"]], align="lrl")
    assert lines == [
        "  name  delta  note",
        "         coin",
        "  ----  -----  ----",
        "  BTC    +0.1  ok",
    ]
    assert table(["a", "b"], []) == ["  a  b", "  -  -"]


def test_duration() -> None:
    assert [duration(s) for s in (-1, 45, 725, 10_920, 187_200)] == [
        "0s",
        "45s",
        "12m 05s",
        "3h 02m",
        "2d 04h",
    ]


def test_open_orders_fit_100_columns_with_real_labels() -> None:
    # Found by the calendar check: a partially filled hedge with hedgerd's 42-character label
    # made a 109-column row. The label keeps both ends; --json has it whole.
    doc = _sample()
    label = "hg1-9e738a04aabe839b96144b7dbc0ad10a-0-0-0"
    doc["open_orders"] = [
        dict(
            doc["open_orders"][0],
            instrument="BTC_USDC-PERPETUAL",
            amount=136_830.0,
            limit_price=89_797.25,
            status="partially_filled",
            label=label,
        )
    ]
    text = render_status(doc)
    assert max(len(line) for line in text.splitlines()) <= 100
    row = next(line for line in text.splitlines() if "BTC_USDC-PERPETUAL" in line)
    assert "partial" in row and "…" in row
    assert label[:8] in row and row.endswith(label[-6:])
