"""The canonical encoding is deterministic, exact for ``at``, and every field is in the hash."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from audit import GENESIS_HASH, AuditEvent, DetailValue
from audit._chain import event_bytes, event_hash, format_at
from audit._events import MAX_AT

texts = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=20,
)
required_texts = texts.filter(lambda s: bool(s.strip()))
instants = st.floats(min_value=0.0, max_value=MAX_AT, exclude_max=True, allow_nan=False)
detail_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
details = st.dictionaries(required_texts, detail_values, max_size=5)
hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
seqs = st.integers(min_value=1, max_value=2**62)

events = st.builds(
    AuditEvent,
    at=instants,
    actor=required_texts,
    action=required_texts,
    subject=required_texts,
    outcome=st.sampled_from(["ok", "refused", "failed"]),
    reason=texts,
    unit=texts,
    session_id=texts,
    details=details,
)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "at": instants,
    "actor": required_texts,
    "action": required_texts,
    "subject": required_texts,
    "outcome": st.sampled_from(["ok", "refused", "failed"]),
    "reason": texts,
    "unit": texts,
    "session_id": texts,
    "details": details,
}


@given(events, seqs, hashes)
def test_encoding_is_deterministic_whatever_the_order_details_were_given_in(
    event: AuditEvent, seq: int, prev: str
) -> None:
    reordered = dataclasses.replace(event, details=dict(reversed(list(event.details.items()))))
    assert event_bytes(seq, event, prev) == event_bytes(seq, reordered, prev)
    assert event_hash(seq, event, prev) == event_hash(seq, reordered, prev)


@given(events, seqs, hashes)
def test_encoding_is_canonical_json_with_sorted_keys_and_no_whitespace(
    event: AuditEvent, seq: int, prev: str
) -> None:
    encoded = event_bytes(seq, event, prev)
    decoded = json.loads(encoded.decode("utf-8"))
    assert list(decoded) == sorted(decoded)
    again = json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert again.encode("utf-8") == encoded
    assert decoded["seq"] == seq
    assert decoded["prev_hash"] == prev


@given(st.data(), events, seqs, hashes, st.sampled_from(sorted(FIELD_VALUES)))
def test_changing_any_event_field_changes_the_hash(
    data: st.DataObject, event: AuditEvent, seq: int, prev: str, field: str
) -> None:
    changed = dataclasses.replace(event, **{field: data.draw(FIELD_VALUES[field], label=field)})
    assume(changed != event)
    assert event_hash(seq, changed, prev) != event_hash(seq, event, prev)


@given(events, seqs, seqs, hashes)
def test_changing_seq_changes_the_hash(event: AuditEvent, seq: int, other: int, prev: str) -> None:
    assume(seq != other)
    assert event_hash(seq, event, prev) != event_hash(other, event, prev)


@given(events, seqs, hashes, hashes)
def test_changing_prev_hash_changes_the_hash(
    event: AuditEvent, seq: int, prev: str, other: str
) -> None:
    assume(prev != other)
    assert event_hash(seq, event, prev) != event_hash(seq, event, other)


@given(instants)
def test_at_is_encoded_so_that_it_reads_back_as_the_same_double(at: float) -> None:
    assert float(format_at(at)) == at


def test_detail_values_of_different_json_types_hash_differently() -> None:
    def h(value: DetailValue) -> str:
        e = AuditEvent(
            at=1.0, actor="a", action="b", subject="c", outcome="ok", details={"k": value}
        )
        return event_hash(1, e, GENESIS_HASH)

    assert len({h(1), h(1.0), h(True), h("1"), h(None)}) == 5


def test_moving_text_between_fields_changes_the_hash() -> None:
    one = AuditEvent(at=1.0, actor="a", action="b", subject="c", outcome="ok", reason="x")
    other = AuditEvent(at=1.0, actor="a", action="b", subject="c", outcome="ok", unit="x")
    assert event_hash(1, one, GENESIS_HASH) != event_hash(1, other, GENESIS_HASH)


def test_known_vector_pins_the_format_for_outside_verifiers() -> None:
    """A change to this hash is a change of the on-disk format: bump FORMAT_VERSION."""
    e = AuditEvent(
        at=1_700_000_000.5,
        actor="33068212345678@sxlss",
        action="login",
        subject="33068212345678@sxlss",
        outcome="refused",
        reason="错误的动态口令",
        unit="12345678",
        session_id="s-1",
        details={"attempt": 3, "ip": "192.0.2.7"},
    )
    assert event_bytes(1, e, GENESIS_HASH).decode("utf-8") == (
        '{"action":"login","actor":"33068212345678@sxlss","at":"1700000000.5",'
        '"details":"{\\"attempt\\":3,\\"ip\\":\\"192.0.2.7\\"}","outcome":"refused",'
        f'"prev_hash":"{GENESIS_HASH}","reason":"错误的动态口令","seq":1,"session_id":"s-1",'
        '"subject":"33068212345678@sxlss","unit":"12345678","v":1}'
    )
    assert event_hash(1, e, GENESIS_HASH) == KNOWN_HASH


KNOWN_HASH = "78fb8f16ecaf293b8e9fbae10480b8ae368005d2b9fec8d049cefc9f9e7ae68d"
