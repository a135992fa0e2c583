"""Evidence uploaded through the employer site's multipart parsing (issue 14, defect 8),
with the real workflow on SQLite and PostgreSQL.

A file is accepted as PDF, JPEG or PNG by its content alone: an HTML page named
``诊断证明.pdf`` and sent as ``application/pdf`` is refused, a real PNG named
``scan.txt`` and sent as ``text/plain`` is accepted as a PNG.  A file over 5 MB is
refused by the streaming reader (413) before anything is stored.  A resubmission
keeps the earlier version's files, and the earlier version keeps its own.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from twisted.internet.testing import MemoryReactorClock
from twisted.web.server import Site

from auth.testing import SynchronousRunner
from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._schema import declaration_attachments, evidence_blobs
from declare_app.interfaces import Actor, DeclarationType
from declare_app.testing import one_pixel_png
from declare_app.web import employer_site, registry_unit_name
from declare_app.web.testing import ALICE, CSRF_KEY, GuardedClient, HttpResponse, csrf_for

UNIT_A = "12345678"
REGION = "330682"
WEB_NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
EMPLOYER_A = replace(ALICE, account=f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, issued_at=WEB_NOW)


def make_id() -> str:
    body = "33068219900115123"
    return body + person_id_check_char(body)


@pytest.fixture
def a(workflow: Declarations, decl_db: Engine) -> GuardedClient:
    clock = MemoryReactorClock()
    clock.advance(WEB_NOW)
    site: Site = employer_site(
        workflow=workflow,
        runner=SynchronousRunner(decl_db),
        clock=clock,
        csrf_key=CSRF_KEY,
        unit_names=registry_unit_name,
    )
    return GuardedClient(site, clock, identity=EMPLOYER_A)


def upload(
    a: GuardedClient, declaration_id: str, data: bytes, *, filename: str, content_type: str
) -> HttpResponse:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f"{csrf_for(EMPLOYER_A)}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="label"\r\n\r\n诊断证明书\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return a.request(
        "POST",
        f"/declarations/{declaration_id}/attachments",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def draft(decl_db: Engine, workflow: Declarations, employer: Actor) -> str:
    form: dict[str, Any] = {
        "name": "张三",
        "id_number": make_id(),
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "hire_date": "2025-03-01",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": "2025-03",
        "monthly_wage": "6000",
        "phone": "13800000000",
    }
    with decl_db.begin() as conn:
        return workflow.create_draft(
            conn, employer, DeclarationType.PERSON_ADD, form, now=WEB_NOW
        ).id


def stored(decl_db: Engine) -> int:
    with decl_db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(evidence_blobs)).scalar_one())


@pytest.mark.parametrize(
    ("content", "filename", "content_type"),
    [
        (b"<html><script>alert(1)</script></html>", "诊断证明.pdf", "application/pdf"),
        (b"MZ\x90\x00" + b"\x00" * 100, "scan.png", "image/png"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "photo.jpg", "image/jpeg"),
    ],
)
def test_content_that_is_not_pdf_jpeg_or_png_is_refused_whatever_its_name(
    a: GuardedClient,
    decl_db: Engine,
    *,
    workflow: Declarations,
    employer_a: Actor,
    content: bytes,
    filename: str,
    content_type: str,
) -> None:
    d = draft(decl_db, workflow, employer_a)
    refused = upload(a, d, content, filename=filename, content_type=content_type)
    assert refused.status == 422
    assert "PDF、JPEG 或 PNG" in refused.text
    assert stored(decl_db) == 0


def test_a_png_is_accepted_by_its_content_and_kept_with_its_hash(
    a: GuardedClient, decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    d = draft(decl_db, workflow, employer_a)
    data = one_pixel_png()
    done = upload(a, d, data, filename="scan.txt", content_type="text/plain")
    assert done.status == 303, done.text
    page = a.get(f"/declarations/{d}")
    assert "诊断证明书" in page.text and "scan.txt" in page.text and "PNG" in page.text
    link = re.search(rf'href="(/declarations/{d}/attachments/\d+)"', page.text)
    assert link is not None
    got = a.get(link.group(1))
    assert (got.status, got.body, got.header("content-type")) == (200, data, "image/png")
    assert (got.header("content-disposition") or "").startswith("attachment;")
    with decl_db.begin() as conn:
        row = conn.execute(select(declaration_attachments)).one()
    assert row.sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_over_five_megabytes_is_refused_before_anything_is_stored(
    a: GuardedClient, decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    d = draft(decl_db, workflow, employer_a)
    big = b"%PDF-1.7\n" + b"0" * (5 * 1024 * 1024) + b"\n%%EOF\n"
    refused = upload(a, d, big, filename="big.pdf", content_type="application/pdf")
    assert refused.status == 413
    assert stored(decl_db) == 0


def test_a_submitted_declaration_takes_no_more_files(
    a: GuardedClient, decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    d = draft(decl_db, workflow, employer_a)
    with decl_db.begin() as conn:
        workflow.submit(conn, employer_a, d, now=WEB_NOW)
    refused = upload(a, d, one_pixel_png(), filename="a.png", content_type="image/png")
    assert refused.status == 409
    assert "只有草稿可以上传附件" in refused.text


def test_a_resubmission_keeps_the_files_and_the_earlier_version_keeps_its_own(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    """DOMAIN §7: resubmission creates a new version linked to the old one (history)."""
    d = draft(decl_db, workflow, employer_a)
    with decl_db.begin() as conn:
        first = workflow.attach(
            conn,
            employer_a,
            d,
            label="劳动合同",
            filename="a.png",
            data=one_pixel_png(),
            now=WEB_NOW,
        )
        workflow.submit(conn, employer_a, d, now=WEB_NOW)
        workflow.claim(conn, auditor, d, now=WEB_NOW)
        workflow.return_(conn, auditor, d, code="R07", text="合同不清晰", now=WEB_NOW)
        old = workflow.get(conn, employer_a, d)
        new = workflow.resubmit(conn, employer_a, d, old.payload, now=WEB_NOW)
        kept = workflow.attachments(conn, employer_a, new.id)
        workflow.detach(conn, employer_a, new.id, kept[0].id, now=WEB_NOW)
        assert workflow.attachments(conn, employer_a, new.id) == []
        assert [x.id for x in workflow.attachments(conn, auditor, d)] == [first.id]
    assert kept[0].carried_from == first.id and kept[0].sha256 == first.sha256
