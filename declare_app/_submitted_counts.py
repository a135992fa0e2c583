"""Declarations submitted per interval, by type and current state: what the officers'
chart of declarations per day reads (``oversight.DeclarationCounts``).

One ``GROUP BY type, status`` with a conditional count per interval, over the rows
submitted in ``[first boundary, last boundary)``: the ``(status, submitted_at)``
index serves it (every submitted state is named, so each is one index range).
Drafts were never submitted and have no day here.  Blocking, on the caller's
``Connection``, plain values back.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, func, select

from declare_app._schema import declarations
from declare_app.interfaces import DeclarationType, Status

MAX_INTERVALS = 366

# Every state a declaration can be in once submitted.
_SUBMITTED = tuple(s.value for s in Status if s is not Status.DRAFT)


@dataclass(frozen=True)
class SubmittedCount:
    type: str
    type_text: str
    status: str
    status_text: str
    counts: tuple[int, ...]  # one per interval


def submitted_per_interval(conn: Connection, boundaries: Sequence[float]) -> list[SubmittedCount]:
    """Per (type, current state): how many declarations were submitted in each
    ``[boundaries[i], boundaries[i + 1])``; types and states without any are left out."""
    if len(boundaries) < 2:
        return []
    if len(boundaries) > MAX_INTERVALS + 1:
        raise ValueError(f"at most {MAX_INTERVALS} intervals, got {len(boundaries) - 1}")
    if any(hi <= lo for lo, hi in itertools.pairwise(boundaries)):
        raise ValueError("boundaries must increase")
    d = declarations.c
    counts = [
        func.sum(case((and_(d.submitted_at >= lo, d.submitted_at < hi), 1), else_=0))
        for lo, hi in itertools.pairwise(boundaries)
    ]
    rows = conn.execute(
        select(d.type, d.status, *counts)
        .where(
            d.status.in_(_SUBMITTED),
            d.submitted_at >= boundaries[0],
            d.submitted_at < boundaries[-1],
        )
        .group_by(d.type, d.status)
        .order_by(d.type, d.status)
    )
    return [
        SubmittedCount(
            type=row[0],
            type_text=_text(DeclarationType, row[0]),
            status=row[1],
            status_text=_text(Status, row[1]),
            counts=tuple(int(v or 0) for v in row[2:]),
        )
        for row in rows
    ]


def _text(kind: type[DeclarationType] | type[Status], value: str) -> str:
    try:
        return kind(value).chinese
    except ValueError:
        return value
