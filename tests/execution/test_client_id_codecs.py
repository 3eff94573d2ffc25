"""Per-venue client-id codecs: Deribit labels (format 2, format 1 still parses) and OKX
clOrdIds. Exact round trip, the venue's length and charset, distinct inputs give distinct ids,
foreign ids (other account, other venue, hand-made) decode to None."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hedgerd.execution.client_ids import (
    MAX_ATTEMPT,
    MAX_EPOCH,
    MAX_LEG,
    MAX_SLICE,
    ClientId,
    ClientIdCodec,
    DeribitLabels,
    OkxClOrdIds,
    account_tag,
    client_label,
    codec_for,
    is_hedgerd_label,
    parse_label,
)

DERIBIT_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
OKX_CLORDID = re.compile(r"[A-Za-z0-9]{1,32}")

TAGS = st.text(
    alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    min_size=4,
    max_size=4,
)
INPUTS = st.tuples(
    st.text(min_size=1, max_size=80),  # decision id: anything, hashed when unsafe or long
    st.integers(0, MAX_LEG),
    st.integers(0, MAX_SLICE),
    st.integers(0, MAX_ATTEMPT),
    st.integers(0, MAX_EPOCH),
)
CODECS = st.sampled_from([DeribitLabels, OkxClOrdIds])

Inputs = tuple[str, int, int, int, int]


def _id(codec: ClientIdCodec, inputs: Inputs) -> ClientId:
    decision_id, leg, slice_no, attempt, epoch = inputs
    return codec.client_id(decision_id, leg, slice_no, attempt, epoch)


def _charset(codec: ClientIdCodec) -> re.Pattern[str]:
    return OKX_CLORDID if isinstance(codec, OkxClOrdIds) else DERIBIT_LABEL


def test_examples() -> None:
    tag = account_tag("deribit-hedge")
    assert tag == account_tag("deribit-hedge") and len(tag) == 4
    deribit = DeribitLabels(tag).client_id("0mi8k2v5c-9f1c04ab", leg=0, slice_no=2, attempt=1)
    assert deribit.label == f"hg2-{tag}-0-0mi8k2v5c-9f1c04ab-0-2-1"
    okx = OkxClOrdIds(tag).client_id("0mi8k2v5c-9f1c04ab", 0, 2, 1, epoch=7)
    assert len(okx.label) == 32 and okx.label.startswith("hg2" + tag)
    assert okx.label.endswith("00" + "002" + "001" + "00007")  # leg, slice, attempt, epoch
    assert OkxClOrdIds(tag).decode(okx.label) == okx
    assert okx.is_for("0mi8k2v5c-9f1c04ab") and not okx.is_for("other")
    assert okx.next_attempt().attempt == 2 and okx.next_attempt().epoch == 7


def test_format_1_labels_of_old_journals_still_parse() -> None:
    old = "hg1-3f9a0c2d11e84b7a-1-2-3"
    cid = parse_label(old)
    assert cid == ClientId("3f9a0c2d11e84b7a", 1, 2, 3)
    assert cid is not None and cid.scheme == "hg1" and cid.account_tag == "" and cid.epoch == 0
    assert cid.next_attempt().label == "hg1-3f9a0c2d11e84b7a-1-2-4"  # a retry keeps format 1
    assert DeribitLabels(account_tag("main")).decode(old) == cid  # the account that wrote it
    assert OkxClOrdIds(account_tag("main")).decode(old) is None
    assert client_label("3f9a0c2d11e84b7a", 1, 2, 3) == old


@settings(max_examples=300, deadline=None)
@given(CODECS, TAGS, INPUTS)
def test_round_trip_length_and_charset(codec_type: type, tag: str, inputs: Inputs) -> None:
    codec: ClientIdCodec = codec_type(tag)
    cid = _id(codec, inputs)
    label = cid.label
    assert _charset(codec).fullmatch(label), label
    if isinstance(codec, OkxClOrdIds):
        assert len(label) == 32
    assert codec.decode(label) == cid
    assert parse_label(label) == cid
    assert cid.label == label == _id(codec, inputs).label  # deterministic
    decision_id, leg, slice_no, attempt, epoch = inputs
    assert cid.is_for(decision_id)
    assert (cid.leg, cid.slice_no, cid.attempt, cid.epoch, cid.account_tag) == (
        leg,
        slice_no,
        attempt,
        epoch,
        tag,
    )


@settings(max_examples=300, deadline=None)
@given(CODECS, TAGS, TAGS, INPUTS, INPUTS)
def test_distinct_inputs_give_distinct_ids(
    codec_type: type, tag_a: str, tag_b: str, a: Inputs, b: Inputs
) -> None:
    # Equal decision keys for distinct decision ids would be a hash collision (2**-71 per
    # pair for OKX, 2**-135 for a hashed Deribit key): not something a test run meets.
    assume((tag_a, a) != (tag_b, b))
    assert _id(codec_type(tag_a), a).label != _id(codec_type(tag_b), b).label


@settings(max_examples=200, deadline=None)
@given(TAGS, INPUTS)
def test_the_same_inputs_differ_across_accounts_and_venues(tag: str, inputs: Inputs) -> None:
    other = "zzzz" if tag != "zzzz" else "yyyy"
    deribit, okx = DeribitLabels(tag), OkxClOrdIds(tag)
    d_label, o_label = _id(deribit, inputs).label, _id(okx, inputs).label
    assert d_label != o_label
    assert okx.decode(d_label) is None and deribit.decode(o_label) is None  # other venue
    assert DeribitLabels(other).decode(d_label) is None  # other account
    assert OkxClOrdIds(other).decode(o_label) is None


@settings(max_examples=500, deadline=None)
@given(CODECS, TAGS, st.text(max_size=70))
def test_decode_is_exact_or_none(codec_type: type, tag: str, text: str) -> None:
    """Anything decodes to None or to the id whose label is exactly the input."""
    codec: ClientIdCodec = codec_type(tag)
    cid = codec.decode(text)
    assert cid is None or cid.label == text
    any_cid = parse_label(text)
    assert any_cid is None or any_cid.label == text


@settings(max_examples=200, deadline=None)
@given(TAGS, st.text(alphabet="0123456789ABCDEFabcdef", min_size=29, max_size=29))
def test_near_miss_okx_ids_are_foreign(tag: str, tail: str) -> None:
    codec = OkxClOrdIds(tag)
    assert codec.decode("hg3" + tail) is None  # wrong prefix
    assert codec.decode(("hg2" + tail)[:31]) is None  # wrong length
    assert codec.decode("hg2" + tail + "0") is None  # 33 characters


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "my manual order",
        "hg2-abc-0-d-0-0-0",  # tag too short
        "hg2-abcd-01-d-0-0-0",  # leading zero: not canonical
        "hg2-abcd-0-d-0-0",  # too few fields
        "hg2-abcd-916132832-d-0-0-0",  # epoch beyond MAX_EPOCH
        "hg2-abcd-0-" + "k" * 29 + "-0-0-0",  # key too long
        "hg2abcd",  # OKX-shaped but short
        "hg2abcd" + "0" * 12 + "G8" + "0" * 11,  # OKX leg 1,000 (G8 in base62)
    ],
)
def test_foreign_or_malformed_ids_do_not_parse(text: str | None) -> None:
    assert parse_label(text) is None
    assert not is_hedgerd_label(text)
    assert DeribitLabels("abcd").decode(text) is None
    assert OkxClOrdIds("abcd").decode(text) is None


def test_bad_parts_are_refused() -> None:
    with pytest.raises(ValueError):
        DeribitLabels("ab-c")
    with pytest.raises(ValueError):
        OkxClOrdIds("abc")
    with pytest.raises(ValueError):
        OkxClOrdIds("abcd").client_id("d", 0, epoch=MAX_EPOCH + 1)
    with pytest.raises(ValueError):
        DeribitLabels("abcd").client_id("d", MAX_LEG + 1)
    with pytest.raises(ValueError):
        DeribitLabels("abcd").client_id("", 0)
    with pytest.raises(ValueError):
        codec_for("binance", "abcd")
    with pytest.raises(ValueError):
        account_tag("")
    assert isinstance(codec_for("okx", "abcd"), OkxClOrdIds)
    assert isinstance(codec_for("deribit", "abcd"), DeribitLabels)
