"""The gateway's one deadline queue for all sessions (gateway/_deadlines.py)."""

from __future__ import annotations

from gateway._deadlines import DeadlineQueue


class Item:
    """A hashable stand-in for a tunnel."""


def test_due_takes_out_only_what_is_due_by_now_earliest_first() -> None:
    q: DeadlineQueue[Item] = DeadlineQueue()
    a, b, c = Item(), Item(), Item()
    q.file(a, 30.0)
    q.file(b, 10.0)
    q.file(c, 90.0)
    assert q.due(9.9) == []
    assert q.due(30.0) == [b, a]  # due at exactly now counts
    assert a not in q and c in q and len(q) == 1
    assert q.due(1000.0) == [c]
    assert q.due(2000.0) == []


def test_filing_again_replaces_the_earlier_time() -> None:
    q: DeadlineQueue[Item] = DeadlineQueue()
    a = Item()
    q.file(a, 10.0)
    q.file(a, 50.0)  # activity moved its deadline on
    assert q.due(20.0) == []
    assert q.due(50.0) == [a]
    assert q.due(60.0) == []  # taken out once, not once per filing


def test_a_discarded_item_never_comes_due_and_is_not_kept() -> None:
    q: DeadlineQueue[Item] = DeadlineQueue()
    items = [Item() for _ in range(1000)]
    for i, item in enumerate(items):
        q.file(item, 100.0 + i)
    for item in items:
        q.discard(item)
    q.discard(Item())  # not filed: no error
    assert len(q) == 0
    # The superseded entries do not pile up (nor keep the items alive) until due.
    assert len(q._heap) <= 64
    assert q.due(10_000.0) == []


def test_an_item_taken_out_can_be_filed_again_for_the_next_poll() -> None:
    q: DeadlineQueue[Item] = DeadlineQueue()
    a = Item()
    q.file(a, 5.0)
    assert q.due(5.0) == [a]
    q.file(a, 5.0)  # still past due: the next poll looks again
    assert q.due(6.0) == [a]
