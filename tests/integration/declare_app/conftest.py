"""Fixtures for the declaration workflow tests: a migrated-by-metadata database with two
approved units in region 330682, the workflow on the DOMAIN demo rates, and actors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

import declare_app
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app.interfaces import Actor, Declaration, DeclarationType
from declare_app.testing import one_pixel_png
from ssgate._schema import all_metadata

UNIT_A = "12345678"
UNIT_B = "87654321"
REGION = "330682"
# 2025-03-10 10:00 in China: inside the 2024 base limits, which carry forward.
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()


@pytest.fixture
def decl_db(engine: Engine) -> Engine:
    for metadata in all_metadata():
        metadata.create_all(engine)
    with engine.begin() as conn:
        for code, name in ((UNIT_A, "上虞示范机械厂"), (UNIT_B, "上虞另一家公司")):
            declare_app.register_unit(
                conn,
                code,
                name=name,
                region=REGION,
                credit_code=None,
                actor="os:t",
                now=1.0,
                injury_risk_class=3,
            )
            declare_app.approve_unit(conn, code, actor="os:t", now=2.0)
    return engine


@pytest.fixture
def workflow() -> Declarations:
    return Declarations(declare_app.demo_rate_table(), clock=lambda: NOW)


@pytest.fixture
def employer_a() -> Actor:
    return Actor("employer", f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, session_id="sess-a-1")


@pytest.fixture
def employer_b() -> Actor:
    return Actor("employer", f"{REGION}{UNIT_B}@sxlss", unit_code=UNIT_B, session_id="sess-b-1")


@pytest.fixture
def auditor() -> Actor:
    return Actor("staff", "zhang", role="auditor")


def person_add_form(id_number: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "张三",
        "id_number": id_number,
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "hire_date": "2025-01-02",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": "2025-01",
        "monthly_wage": "6000",
        "phone": "13800000000",
    }
    values.update(changes)
    return values


@pytest.fixture
def decide(decl_db: Engine, workflow: Declarations, auditor: Actor) -> Callable[..., Declaration]:
    """Create, submit, claim and approve a declaration; return it applied."""

    def run(
        employer: Actor, type: DeclarationType, payload: dict[str, Any], now: float = NOW
    ) -> Declaration:
        with decl_db.begin() as conn:
            d = workflow.create_draft(conn, employer, type, payload, now=now)
            if type is DeclarationType.PERSON_REDUCE:
                attach_evidence(conn, workflow, employer, d.id, now=now)
            workflow.submit(conn, employer, d.id, now=now)
            workflow.claim(conn, auditor, d.id, now=now)
            return workflow.approve(conn, auditor, d.id, now=now)

    return run


def evidence_png() -> bytes:
    """A valid 1×1 PNG: the smallest file the evidence check accepts."""
    return one_pixel_png()


def attach_evidence(
    conn: Connection, workflow: Declarations, employer: Actor, declaration_id: str, *, now: float
) -> None:
    """Upload the reduce's evidence onto its draft, as V-RED-01 requires before submit."""
    workflow.attach(
        conn,
        employer,
        declaration_id,
        label="解除劳动合同证明",
        filename="证明.png",
        data=evidence_png(),
        now=now,
    )


@pytest.fixture
def enrol(decide: Callable[..., Declaration]) -> Callable[..., str]:
    """Enrol a person through an applied person-add (January 2025); the 个人编号."""

    def run(employer: Actor, id_number: str, **changes: Any) -> str:
        done = decide(
            employer,
            DeclarationType.PERSON_ADD,
            person_add_form(id_number, **changes),
            datetime(2025, 1, 10, 10, 0, tzinfo=CHINA_TIME).timestamp(),
        )
        number = done.result["person_no"]
        assert isinstance(number, str)
        return number

    return run
