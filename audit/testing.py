"""For tests: what someone with write access to the database can do to the log.

:func:`rewrite_chain` edits one record and recomputes every later hash and the head
with plain SQL, the consistent rewrite that the hash chain alone cannot detect and
signed checkpoints can (issue 12, acceptance 5).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from audit._chain import canonical_bytes, digest


def rewrite_chain(conn: Connection, seq: int, **changes: str) -> int:
    """Set the text columns in *changes* on record *seq*, then recompute its hash and
    every later record's ``prev_hash`` and ``hash``, and move the head to the new last
    hash — all with SQL, as a tamperer would.  Returns how many records were rewritten.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL extra_float_digits = 3")
    for column, value in changes.items():
        if column not in ("actor", "action", "subject", "reason", "unit", "session_id"):
            raise ValueError(f"rewrite_chain changes text columns only, not {column}")
        conn.execute(
            text(f"UPDATE audit_events SET {column} = :value WHERE seq = :seq"),  # noqa: S608
            {"value": value, "seq": seq},
        )
    rows = conn.execute(
        text(
            "SELECT seq, at, actor, action, subject, outcome, reason, unit, session_id, "
            "details, prev_hash FROM audit_events WHERE seq >= :seq ORDER BY seq"
        ),
        {"seq": seq},
    ).all()
    prev = None
    for row in rows:
        prev_hash = row.prev_hash if prev is None else prev
        new_hash = digest(
            canonical_bytes(
                seq=row.seq,
                at=float(row.at),
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                outcome=row.outcome,
                reason=row.reason,
                unit=row.unit,
                session_id=row.session_id,
                details_json=row.details,
                prev_hash=prev_hash,
            )
        )
        conn.execute(
            text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :seq"),
            {"p": prev_hash, "h": new_hash, "seq": row.seq},
        )
        prev = new_hash
    if prev is not None:
        conn.execute(text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": prev})
    return len(rows)
