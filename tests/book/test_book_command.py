"""`hedgerd book`: the example books, both formats, and errors that name the row."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from hedgerd.book.command import add_parser
from hedgerd.book.positions_file import BookFileError, build_book, load_book_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_JSON = ROOT / "config" / "example-book.json"
EXAMPLE_CSV = ROOT / "config" / "example-book.csv"

HEADER = "record,name,size,mark_iv_pct,mark_price,average_price_usd,underlying_price_usd,value"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["book", *argv])
    result: int = args.func(args)
    return result


def test_example_book_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--positions", str(EXAMPLE_JSON)) == 0
    out = capsys.readouterr().out
    for needle in (
        "BTC  index 91,250.00 USD",
        "ETH  index 3,050.00 USD",
        "Delta to hedge (usd numeraire)",
        "delta USD-num (BTC)",
        "delta coin-num (BTC)",
        "vega (USD per vol pt)",
        "theta (USD/day)",
        "Scenario P&L in USD",
        "inverse perpetual",
        "coin collateral",
        "21NOV26 *settling*",
        "Settlement window",
    ):
        assert needle in out, needle
    assert "nan" not in out.lower()


def test_example_json_and_csv_agree(capsys: pytest.CaptureFixture[str]) -> None:
    docs = []
    for path in (EXAMPLE_JSON, EXAMPLE_CSV):
        assert run("--positions", str(path), "--json", "--numeraire", "coin") == 0
        doc = json.loads(capsys.readouterr().out)
        doc.pop("source")
        docs.append(doc)
    assert docs[0] == docs[1]
    btc = docs[0]["underlyings"][0]
    assert docs[0]["numeraire"] == "coin"
    assert btc["delta_to_hedge_coin"] == btc["projected_delta_coinnum_coin"]
    t = btc["total"]
    # the two numeraires differ by the book's value in coin
    assert t["delta_usdnum_coin"] - t["delta_coinnum_coin"] == pytest.approx(
        t["value_usd"] / btc["index_price_usd"], rel=1e-12
    )
    # options + hedges = total; expiries add up to the total
    assert t["options_delta_usdnum_coin"] + t["hedge_delta_usdnum_coin"] == pytest.approx(
        t["delta_usdnum_coin"]
    )
    assert sum(e["delta_coinnum_coin"] for e in btc["by_expiry"]) == pytest.approx(
        t["delta_coinnum_coin"]
    )
    kinds = {h["kind"]: h for h in btc["hedges"]}
    assert kinds["coin collateral"]["delta_usdnum_coin"] == 25.0
    assert kinds["coin collateral"]["delta_coinnum_coin"] == 0.0
    # inverse perpetual in coin numeraire: size / index (Deribit's size_currency)
    assert kinds["inverse perpetual"]["delta_coinnum_coin"] == pytest.approx(6_500_000 / 91_250)
    grid = btc["scenario"]
    assert grid["pnl_usd"][2][4] == pytest.approx(0.0, abs=1e-6)
    assert len(grid["pnl_usd"]) == 5 and len(grid["pnl_usd"][0]) == 9


def test_mark_price_rows_imply_vols_consistent_with_the_marks() -> None:
    bf = load_book_file(EXAMPLE_JSON)
    book = build_book(bf)
    (row,) = [p for p in bf.positions if p.instrument.name == "BTC-25DEC26-80000-P"]
    snap = book.snapshot(bf.valuation_time_ms).get("BTC")
    assert snap.complete
    # valued at its mark: premium in coin times the index
    from hedgerd.book.greeks_book import GreeksBook

    solo = GreeksBook([row.instrument])
    solo.set_index("BTC", 91_250.0)
    solo.set_forward("BTC", row.instrument.expiry_ms or 0, 91_700.0)
    assert row.mark_price is not None
    solo.set_option_mark_price(row.instrument.name, row.mark_price, bf.valuation_time_ms)
    solo.set_position(row.instrument.name, 80.0, row.instrument.amount_unit)
    v = solo.underlying_snapshot("BTC", bf.valuation_time_ms).total.value_usd
    assert v == pytest.approx(80 * 0.0185 * 91_250.0, rel=1e-9)


CSV_OK_TOP = [
    "# comment line",
    HEADER,
    "time,,,,,,,2026-11-20T11:00:00Z",
    "index,BTC,,,,,,90000",
    "balance,BTC,,,,,,1",
]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("position,BTC-FOO,1,50,,,,", "row 7: unknown instrument 'BTC-FOO'"),
        ("position,DOGE-PERPETUAL,10,,,,,", "row 7: unknown instrument 'DOGE-PERPETUAL'"),
        ("position,BTC-31FEB27-90000-C,1,50,,,,", "row 7: unknown instrument"),
        ("position,BTC-PERPETUAL,15,,,,,", "row 7: BTC-PERPETUAL: size 15 USD is not a multiple"),
        ("position,BTC-27NOV26-90000-C,0.05,50,,,,", "row 7: BTC-27NOV26-90000-C: size 0.05 BTC"),
        ("position,BTC-27NOV26-90000-C,1,0.5,,,,", "row 7: mark_iv_pct 0.5 looks like a fraction"),
        ("position,BTC-27NOV26-90000-C,1,,,,,", "row 7: option BTC-27NOV26-90000-C needs"),
        ("position,BTC-27NOV26-90000-C,nan,50,,,,", "row 7: size must be finite"),
        ("position,BTC-27NOV26-90000-C,1,-5,,,,", "row 7: mark_iv_pct must be positive"),
        ("position,BTC-27NOV26-90000-C,1,5000,,,,", "row 7: BTC-27NOV26-90000-C: bad mark vol"),
        ("position,BTC-20NOV26-90000-C,1,50,,,,", "row 7: BTC-20NOV26-90000-C has expired"),
        ("position,ETH-PERPETUAL,10,,,,,", "row 7: ETH-PERPETUAL: no index price for ETH"),
        (
            "position,BTC-27NOV26-90000-C,1,,1.5,,,",
            "row 7: BTC-27NOV26-90000-C: mark_price 1.5 BTC",
        ),
        ("position,BTC-27NOV26-80000-C,1,,0.0001,,,", "implies no volatility"),
        ("position,BTC-PERPETUAL,10,50,,,,", "row 7: mark_iv_pct is only for options"),
        ("index,BTC,,,,,,-1", "row 7: index price must be positive"),
        ("oops,BTC,,,,,,1", "row 7: unknown record 'oops'"),
        (
            "position,BTC-PERPETUAL,10,,,,,\nposition,BTC-PERPETUAL,20,,,,,",
            "row 8: second position in BTC-PERPETUAL (first at row 7)",
        ),
    ],
)
def test_csv_errors_name_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    path = tmp_path / "book.csv"
    path.write_text("\n".join([*CSV_OK_TOP, "", line]) + "\n")  # blank line 6 still counts
    assert run("--positions", str(path)) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_json_errors_name_the_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {
        "valuation_time": "2026-11-20T11:00:00Z",
        "index_prices_usd": {"BTC": 90000},
        "positions": [
            {"instrument": "BTC-PERPETUAL", "size": 100},
            {"instrument": "BTC-27NOV26-90000-C", "size": 1, "mark_iv_pct": 50},
            {"instrument": "BTC-FOO", "size": 1},
        ],
    }
    path = tmp_path / "book.json"
    path.write_text(json.dumps(doc))
    assert run("--positions", str(path)) == 2
    assert "positions row 3: unknown instrument 'BTC-FOO'" in capsys.readouterr().err
    doc["positions"] = doc["positions"][:2]  # type: ignore[index]
    doc["valuation_time"] = "2026-11-20T11:00:00"
    path.write_text(json.dumps(doc))
    assert run("--positions", str(path)) == 2
    assert "needs a zone" in capsys.readouterr().err
    doc["valuation_time"] = 1795_000_000_000
    doc["positions"][0]["sizee"] = 1  # type: ignore[index]
    path.write_text(json.dumps(doc))
    assert run("--positions", str(path)) == 2
    assert "positions row 1: unknown field(s) sizee" in capsys.readouterr().err


def test_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--positions", str(tmp_path / "missing.json")) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "book.json"
    bad.write_text("{not json")
    assert run("--positions", str(bad)) == 2
    assert "not valid JSON" in capsys.readouterr().err
    other = tmp_path / "book.txt"
    other.write_text("x")
    with pytest.raises(BookFileError, match="unknown format"):
        load_book_file(other)
