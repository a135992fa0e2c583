"""Migration 0012 gives the enrolments made before the ledger their contribution plan."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, text

from ssgate._schema import _alembic_config, upgrade


def test_existing_enrolments_get_a_plan_from_their_start_month(engine: Engine) -> None:
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO units (code, region, name, status, registered_at, registered_by) "
                "VALUES ('12345678', '330682', 'u', 'approved', 1, 't')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO persons (person_number, id_number, id_type, name, gender, "
                "birth_date, staff_kind, receiving_pension, created_at, updated_at) VALUES "
                "('33068200000001', '11010519491231002X', '01', 'n', '2', '1949-12-31', 'B', "
                "false, 1, 1)"
            )
        )
        for insurance, status, end in (("110", "1", None), ("210", "2", "2026-05")):
            conn.execute(
                text(
                    "INSERT INTO enrolments (person_number, unit_code, insurance, status, "
                    "start_month, end_month, base_fen, updated_at) VALUES "
                    "('33068200000001', '12345678', :ins, :status, '2026-03', :end, 900000, 1)"
                ),
                {"ins": insurance, "status": status, "end": end},
            )
    upgrade(engine)
    with engine.connect() as conn:
        plans = conn.execute(
            text(
                "SELECT insurance, from_month, until_month, base_fen FROM contribution_plans "
                "ORDER BY insurance"
            )
        ).all()
    assert [tuple(p) for p in plans] == [
        ("110", "2026-03", None, 900000),
        ("210", "2026-03", "2026-05", 900000),
    ]
