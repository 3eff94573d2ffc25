"""Deterministic client ids (Deribit labels): same inputs, same label; parse back; length and
charset safe for Deribit."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.execution.client_ids import (
    MAX_ATTEMPT,
    MAX_LEG,
    MAX_SLICE,
    ClientId,
    client_id,
    client_label,
    decision_key,
    is_hedgerd_label,
    new_decision_id,
    parse_label,
)

SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def test_label_is_deterministic_and_parses_back() -> None:
    label = client_label("3f9a0c2d11e84b7a", leg=1, slice_no=2, attempt=3)
    assert label == "hg1-3f9a0c2d11e84b7a-1-2-3"
    assert client_label("3f9a0c2d11e84b7a", 1, 2, 3) == label  # a restart recomputes it
    parsed = parse_label(label)
    assert parsed == ClientId("3f9a0c2d11e84b7a", 1, 2, 3)
    assert parsed is not None and parsed.is_for("3f9a0c2d11e84b7a")
    assert not parsed.is_for("other")
    assert parsed.next_attempt().label == "hg1-3f9a0c2d11e84b7a-1-2-4"


def test_every_input_changes_the_label() -> None:
    labels = {
        client_label(d, leg, s, a)
        for d in ("d1", "d2")
        for leg in (0, 1)
        for s in (0, 1)
        for a in (0, 1)
    }
    assert len(labels) == 16


def test_long_or_unsafe_decision_ids_are_hashed_deterministically() -> None:
    long_id = "a" * 64  # e.g. a sha256 hex digest
    key = decision_key(long_id)
    assert key == decision_key(long_id) and key.startswith("x") and len(key) == 32
    assert decision_key("a" * 63) != key
    unsafe = "BTC/2026-11-21T13:00:00Z#1"
    label = client_label(unsafe, MAX_LEG, MAX_SLICE, MAX_ATTEMPT)
    assert SAFE.fullmatch(label) and len(label) <= 64
    parsed = parse_label(label)
    assert parsed is not None and parsed.is_for(unsafe)


def test_decision_id_with_dashes_parses_unambiguously() -> None:
    label = client_label("mhy2k3l0-9f1c04ab", 0, 0, 1)
    assert parse_label(label) == ClientId("mhy2k3l0-9f1c04ab", 0, 0, 1)


@pytest.mark.parametrize(
    "label",
    [
        None,
        "",
        "my manual order",
        "hd-abc-0-0",
        "hg1-abc-0-0",  # too few fields
        "hg1-abc-01-0-0",  # leading zero: not canonical
        "hg1-abc-0-0-0-extra!",
        "hg2-abc-0-0-0",
        "hg1-abc-1000-0-0",  # leg out of range
        "hg1-" + "a" * 41 + "-0-0-0",
    ],
)
def test_foreign_or_malformed_labels_do_not_parse(label: str | None) -> None:
    assert parse_label(label) is None
    assert not is_hedgerd_label(label)


def test_out_of_range_parts_are_refused() -> None:
    with pytest.raises(ValueError):
        client_id("d", -1)
    with pytest.raises(ValueError):
        client_id("d", 0, MAX_SLICE + 1)
    with pytest.raises(ValueError):
        client_id("", 0)


def test_new_decision_id() -> None:
    did = new_decision_id(1_763_730_000_000, entropy=b"\x9f\x1c\x04\xab")
    assert did == new_decision_id(1_763_730_000_000, entropy=b"\x9f\x1c\x04\xab")
    assert did.endswith("-9f1c04ab") and decision_key(did) == did
    assert new_decision_id(1) != new_decision_id(1)  # random part
    assert new_decision_id(1_000, b"\0\0\0\0") < new_decision_id(2_000, b"\0\0\0\0")


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=1, max_size=120),
    st.integers(0, MAX_LEG),
    st.integers(0, MAX_SLICE),
    st.integers(0, MAX_ATTEMPT),
)
def test_any_decision_id_gives_a_safe_label_that_round_trips(
    decision_id: str, leg: int, slice_no: int, attempt: int
) -> None:
    label = client_label(decision_id, leg, slice_no, attempt)
    assert SAFE.fullmatch(label), label
    parsed = parse_label(label)
    assert parsed is not None
    assert (parsed.leg, parsed.slice_no, parsed.attempt) == (leg, slice_no, attempt)
    assert parsed.is_for(decision_id) and parsed.label == label
