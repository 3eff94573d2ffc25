"""Price sanity after a legitimate gap (issue 19): a jump of `max_jump_pct` or more is
quarantined without a trip for `gap_confirm_s`; then the new level is accepted when the source
held it and an independent feed of the same underlying moved to it too (another venue's index;
the same venue's index against its marks). An isolated jump that reverts is dropped without a
trip; one that holds trips, as every jump did before. Board clock: plain ms."""

from __future__ import annotations

import pytest

from hedgerd.risk.limits import PriceSanitySettings
from hedgerd.risk.sanity import GapWitness, PriceSanitySwitch

T0 = 1_700_000_000_000
DERIBIT = ("deribit:index:BTC", GapWitness("BTC", "deribit:index"))
OKX = ("okx:index:BTC", GapWitness("BTC", "okx:index"))
MARK = ("deribit:forward:BTC:1", GapWitness("BTC", "deribit:mark"))
ETH_OKX = ("okx:index:ETH", GapWitness("ETH", "okx:index"))


def _switch(confirm_s: float = 3.0) -> PriceSanitySwitch:
    return PriceSanitySwitch(
        PriceSanitySettings(max_jump_pct=10.0, jump_interval_s=60.0, gap_confirm_s=confirm_s)
    )


def _see(sw: PriceSanitySwitch, ms: int, feed: tuple[str, GapWitness], price: float) -> bool:
    """One price of `feed` at T0 + `ms`; whether it was accepted (asserting no trip unless
    it was refused for good)."""
    source, witness = feed
    return sw.observe(T0 + ms, source, price, witness=witness).accepted


@pytest.mark.parametrize("other", [OKX, MARK], ids=["other venue's index", "same venue's mark"])
def test_a_gap_two_feeds_confirm_is_accepted_after_the_window(
    other: tuple[str, GapWitness],
) -> None:
    sw = _switch()
    assert _see(sw, 0, DERIBIT, 100_000.0) and _see(sw, 0, other, 100_050.0)
    # -15 %: both feeds jump; quarantined, no trip, the last good price stays.
    for ms in (1_000, 2_000, 3_000):
        v = sw.observe(T0 + ms, DERIBIT[0], 85_000.0 + ms / 100, witness=DERIBIT[1])
        assert not v.accepted and v.trip is None and "awaiting confirmation" in v.reason
        assert not _see(sw, ms + 100, other, 85_040.0)
    assert sw.last_good(DERIBIT[0]) == (T0, 100_000.0)
    # The window over, the level held and confirmed: accepted, and from now on the last good.
    assert _see(sw, 4_000, DERIBIT, 85_030.0)
    assert sw.last_good(DERIBIT[0]) == (T0 + 4_000, 85_030.0)
    assert _see(sw, 4_100, other, 85_050.0)  # confirmed by the first feed
    assert _see(sw, 5_000, DERIBIT, 85_100.0)  # and it trades on from there


def test_an_isolated_jump_that_reverts_is_dropped_without_a_trip() -> None:
    sw = _switch()
    assert _see(sw, 0, DERIBIT, 100_000.0) and _see(sw, 0, OKX, 100_000.0)
    v = sw.observe(T0 + 1_000, DERIBIT[0], 60_000.0, witness=DERIBIT[1])  # one bad tick
    assert not v.accepted and v.trip is None
    assert _see(sw, 1_200, DERIBIT, 100_010.0)  # back: accepted, the outlier forgotten
    assert _see(sw, 5_000, DERIBIT, 100_020.0)
    # A later jump starts its own window: not confirmed by the old bad tick's age.
    v = sw.observe(T0 + 6_000, DERIBIT[0], 60_000.0, witness=DERIBIT[1])
    assert not v.accepted and v.trip is None


def test_an_isolated_jump_that_holds_trips_after_the_window() -> None:
    """The other venue's index stays where it was (and another underlying's feed moving
    does not count): the jump is this feed's alone."""
    sw = _switch()
    assert _see(sw, 0, DERIBIT, 100_000.0) and _see(sw, 0, OKX, 100_000.0)
    assert _see(sw, 0, ETH_OKX, 3_000.0)
    for ms in (1_000, 2_000, 3_000):
        assert sw.observe(T0 + ms, DERIBIT[0], 85_000.0, witness=DERIBIT[1]).trip is None
        assert _see(sw, ms + 100, OKX, 100_010.0)
        assert not _see(sw, ms + 100, ETH_OKX, 2_550.0)  # ETH gapped: not BTC's witness
    v = sw.observe(T0 + 4_000, DERIBIT[0], 85_000.0, witness=DERIBIT[1])
    assert not v.accepted and v.trip is not None and "moved 15.00%" in v.reason
    assert sw.last_good(DERIBIT[0]) == (T0, 100_000.0)


def test_a_witness_seen_only_before_the_jump_does_not_confirm_it() -> None:
    """The other venue's last price is from before the jump (its feed then went quiet): it
    says nothing of the new level."""
    sw = _switch()
    assert _see(sw, 0, DERIBIT, 100_000.0)
    assert _see(sw, 500, OKX, 100_000.0)
    assert not _see(sw, 1_000, DERIBIT, 85_000.0)
    assert not sw.observe(T0 + 4_000, DERIBIT[0], 85_000.0, witness=DERIBIT[1]).accepted


def test_a_jump_to_another_level_restarts_the_window() -> None:
    sw = _switch()
    assert _see(sw, 0, DERIBIT, 100_000.0) and _see(sw, 0, OKX, 100_000.0)
    assert not _see(sw, 1_000, DERIBIT, 85_000.0)
    assert not _see(sw, 3_500, DERIBIT, 70_000.0)  # nearer neither: a new jump from 3.5 s
    assert _see(sw, 3_600, OKX, 70_100.0) is False
    v = sw.observe(T0 + 4_500, DERIBIT[0], 70_050.0, witness=DERIBIT[1])
    assert not v.accepted and v.trip is None  # 1 s into its own window
    assert _see(sw, 6_500, DERIBIT, 70_020.0)


@pytest.mark.parametrize("confirm_s", [0.0, 3.0])
def test_without_a_window_or_a_witness_every_jump_trips_at_once(confirm_s: float) -> None:
    sw = _switch(confirm_s)
    assert _see(sw, 0, DERIBIT, 100_000.0) and _see(sw, 0, OKX, 100_000.0)
    witness = DERIBIT[1] if confirm_s == 0.0 else None
    v = sw.observe(T0 + 1_000, DERIBIT[0], 85_000.0, witness=witness)
    assert not v.accepted and v.trip is not None


def test_a_jump_far_from_its_own_reference_trips_at_once() -> None:
    """A forward 30 % off its own ticker's index is wrong in any market: no window."""
    sw = _switch()
    source, witness = MARK
    assert sw.observe(T0, source, 100_000.0, 100_000.0, 0.05, witness).accepted
    v = sw.observe(T0 + 1_000, source, 130_000.0, 100_000.0, 0.05, witness)
    assert not v.accepted and v.trip is not None and "from its reference" in v.reason
