"""A failed statement's error never carries the statement's parameters (secrets and
personal data travel as parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc, text

from ssgate._db import make_engine


def test_a_failed_statement_does_not_show_its_parameters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t VALUES (:k)"), {"k": "11010519491231002X"})
    with pytest.raises(exc.IntegrityError) as raised, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (:k)"), {"k": "11010519491231002X"})
    assert "11010519491231002X" not in str(raised.value)
    engine.dispose()
