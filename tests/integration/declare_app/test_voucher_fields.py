"""Vouchers, HTML and PDF, carry the same facts (issue 14, defect 3): the unit's name,
the 经办机构 (``[agency] name``), the auditor, the submission and applied times in
Beijing time with their offset, and the ID number masked alike (first 6 and last 4;
DOMAIN §1.1 numbers are personal data, 社会保险法 Art. 81 on confidentiality)."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import datetime

import pypdf
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock

from auth.testing import SynchronousRunner
from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app.interfaces import Actor, DeclarationType
from declare_app.web import employer_site, registry_unit_name
from declare_app.web.testing import ALICE, CSRF_KEY, GuardedClient, element_text

UNIT_A = "12345678"
AGENCY = "绍兴市上虞区社会保险事业管理中心"
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
EMPLOYER_A = replace(ALICE, account=f"330682{UNIT_A}@sxlss", unit_code=UNIT_A, issued_at=NOW)


def test_html_and_pdf_vouchers_name_unit_agency_auditor_times_and_mask_the_id(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    body = "33068219900115123"
    idn = body + person_id_check_char(body)
    form = {
        "name": "张三",
        "id_number": idn,
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
        d = workflow.create_draft(conn, employer_a, DeclarationType.PERSON_ADD, form, now=NOW)
        workflow.submit(conn, employer_a, d.id, now=NOW)
        workflow.claim(conn, auditor, d.id, now=NOW + 60)
        workflow.approve(conn, auditor, d.id, now=NOW + 120)
    clock = MemoryReactorClock()
    clock.advance(NOW)
    site = employer_site(
        workflow=workflow,
        runner=SynchronousRunner(decl_db),
        clock=clock,
        csrf_key=CSRF_KEY,
        unit_names=registry_unit_name,
        agency_name=AGENCY,
    )
    a = GuardedClient(site, clock, identity=EMPLOYER_A)
    html = a.get(f"/declarations/{d.id}/voucher").text
    pdf = a.get(f"/declarations/{d.id}/voucher.pdf")
    assert pdf.status == 200
    text = re.sub(r"\s+", "", pypdf.PdfReader(io.BytesIO(pdf.body)).pages[0].extract_text())
    masked = idn[:6] + "********" + idn[-4:]
    assert element_text(html, "voucher-unit") == "上虞示范机械厂"
    assert element_text(html, "voucher-agency") == AGENCY
    assert element_text(html, "voucher-auditor") == "zhang"
    assert element_text(html, "voucher-submitted") == "2025-03-10 10:00:00 +08:00"
    assert element_text(html, "voucher-applied") == "2025-03-10 10:02:00 +08:00"
    for shown in (
        "上虞示范机械厂",
        AGENCY,
        "zhang",
        "2025-03-1010:00:00+08:00",
        "2025-03-1010:02:00+08:00",
        masked,
    ):
        assert shown in text, shown
    assert idn not in html and idn not in text
    assert masked in html
