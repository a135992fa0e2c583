"""Fixtures for the declaration workflow tests: a migrated-by-metadata database with two
approved units in region 330682, the workflow on the DOMAIN demo rates, and actors."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine

import declare_app
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app.interfaces import Actor
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
                conn, code, name=name, region=REGION, credit_code=None, actor="os:t", now=1.0
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
