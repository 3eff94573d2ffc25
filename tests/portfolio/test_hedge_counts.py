"""A decision counts once for the portfolio and once on each account it filled on; a split
one says so on each account (so the accounts' counts may add up to more than the total). The
summary says why an account (or the desk) is not ACTIVE."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hedgerd.paper import render_summary
from hedgerd.portfolio.stats import UnderlyingStats


def test_a_split_hedge_counts_once_in_total_and_as_split_on_each_account() -> None:
    s = UnderlyingStats()
    s.count_hedge(set())  # nothing filled: not a hedge
    s.count_hedge({"okx"})
    s.count_hedge({"deribit", "okx"})
    assert s.hedges == 2
    assert (s.by_account["okx"].hedges, s.by_account["okx"].split_hedges) == (2, 1)
    assert (s.by_account["deribit"].hedges, s.by_account["deribit"].split_hedges) == (1, 1)


@given(st.lists(st.sets(st.sampled_from(["a", "b", "c"])), max_size=30))
def test_accounts_less_their_splits_never_exceed_the_total(outcomes: list[set[str]]) -> None:
    s = UnderlyingStats()
    for filled_on in outcomes:
        s.count_hedge(filled_on)
    assert s.hedges == sum(1 for f in outcomes if f)
    shares = s.by_account.values()
    assert sum(a.hedges - a.split_hedges for a in shares) <= s.hedges
    assert sum(a.hedges for a in shares) == sum(len(f) for f in outcomes)


def _summary(splits: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    """A paper summary (`paper.run_paper`'s) with a venue per (name, split hedges)."""
    return {
        "simulated_s": 60.0,
        "wall_s": 3.0,
        "speed": 20.0,
        "seed": 7,
        "numeraire": "usd",
        "state": "ACTIVE",
        "hedges": 16,
        "hedge_cost_usd": 1.0,
        "orders_sent": 30,
        "underlyings": {},
        "pnl_usd": {},
        "errors": [],
        "venues": {
            name: {
                "exchange": name,
                "hedges": 11,
                "split_hedges": split,
                "orders": 15,
                "hedge_cost_usd": 0.5,
                "hedge_notional_usd": 1000.0,
                "option_positions": 3,
                "state": "ACTIVE",
            }
            for name, split in splits
        },
    }


def test_the_summary_says_how_many_of_a_venues_hedges_were_split() -> None:
    lines = render_summary(_summary((("deribit", 6), ("okx", 0)))).splitlines()
    deribit = next(line for line in lines if "venue deribit" in line)
    okx = next(line for line in lines if "venue okx" in line)
    assert "11 hedges (6 split with another venue), 15 orders" in deribit
    assert "11 hedges, 15 orders" in okx


def test_the_summary_says_why_a_venue_or_the_desk_is_not_active() -> None:
    """A venue's state comes with its reasons (code: detail), as does the final state."""
    summary = _summary((("sim", 0), ("okx", 0)))
    margin = "okx USD: maintenance margin is 50.14% of equity (limit 50%)"
    summary["venues"]["okx"].update(
        state="REDUCE_ONLY",
        reasons=[{"code": "margin", "state": "reduce_only", "detail": margin, "actor": "auto"}],
    )
    summary.update(state="HALTED", reasons=[{"code": "daily_loss", "detail": ""}])
    lines = render_summary(summary).splitlines()
    okx = next(line for line in lines if "venue okx" in line)
    assert okx.endswith(f"state REDUCE_ONLY (margin: {margin})")
    assert next(line for line in lines if "venue sim" in line).endswith("state ACTIVE")
    assert next(line for line in lines if "final state" in line).endswith(
        "final state HALTED (daily_loss)"
    )
