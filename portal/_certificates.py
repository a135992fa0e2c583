"""参保证明: the certificate's content, its verification code, its PDF and the record
``/verify/CODE`` reads.

The code is 128 random bits in base32 (26 characters, no padding): unguessable, and
short enough to type from paper.  The database keeps only its SHA-256, with the
content exactly as certified (canonical JSON, the ID number masked) and the SHA-256 of
that content and of the PDF as issued: a reader who holds an edited PDF finds at
``/verify/CODE`` the original content (and the original PDF's digest), not theirs.

Wrong codes count per source in auth's ``source_failures`` under a ``verify:`` key of
their own (so guessing codes does not throttle the source's logins, nor the reverse):
:data:`VERIFY_MAX_FAILURES` in :data:`VERIFY_WINDOW_SECONDS` and the source is refused
without a look-up.

The PDF is drawn with the voucher's font (``declare_app._voucher_pdf``: the CJK
TrueType font embedded when installed) and reportlab's invariant mode, so the same
content gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import Connection, insert, select

from auth._store import record_source_failure, source_failure_count
from declare_app._china_time import CHINA_TIME
from declare_app._voucher_pdf import voucher_font

from ._schema import portal_certificates

CODE_BYTES = 16  # 128 bits
CODE_SHAPE = re.compile(r"^[A-Z2-7]{26}$")
VALID_DAYS = 90  # a 参保证明 is good for three months from issue [inference: local practice]
VERIFY_MAX_FAILURES = 100
VERIFY_WINDOW_SECONDS = 3600.0

INSURANCE_NAMES = {
    "110": "企业职工基本养老保险",
    "210": "失业保险",
    "310": "职工基本医疗保险",
    "410": "工伤保险",
    "510": "生育保险",
}


def new_code(random_bytes: Callable[[int], bytes]) -> str:
    return base64.b32encode(random_bytes(CODE_BYTES)).decode("ascii").rstrip("=")


def code_digest(code: str) -> str:
    return hashlib.sha256(b"ssgate-certificate\x00" + code.encode("ascii")).hexdigest()


def normalise_code(text: str) -> str | None:
    value = text.strip().upper()
    return value if CODE_SHAPE.fullmatch(value) else None


def canonical(content: Mapping[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def content_sha256(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()


def certificate_content(
    *,
    name: str,
    masked_id: str,
    from_month: str,
    to_month: str,
    enrolments: Sequence[Mapping[str, str | None]],
    paid_months: Mapping[str, int],
    issued_at: float,
) -> dict[str, Any]:
    """What the certificate says, as plain JSON values (the same dict is drawn in the
    PDF, hashed and shown by ``/verify``)."""
    issued = datetime.fromtimestamp(issued_at, CHINA_TIME)
    return {
        "title": "社会保险参保证明",
        "name": name,
        "id_number": masked_id,
        "period": [from_month, to_month],
        "enrolments": [dict(e) for e in enrolments],
        "paid_months": {k: paid_months[k] for k in sorted(paid_months)},
        "issued": issued.isoformat(timespec="seconds"),
        "valid_until": (issued + timedelta(days=VALID_DAYS)).date().isoformat(),
    }


@dataclass(frozen=True)
class CertificateRecord:
    content: Mapping[str, Any]
    content_sha256: str
    pdf_sha256: str
    issued_at: float
    valid_until: float
    intact: bool  # the stored content still hashes to the stored digest

    def valid(self, now: float) -> bool:
        return self.intact and now < self.valid_until


def store_certificate(
    conn: Connection,
    *,
    code: str,
    principal: str,
    person_number: str,
    content: Mapping[str, Any],
    pdf: bytes,
    issued_at: float,
) -> None:
    period = content["period"]
    conn.execute(
        insert(portal_certificates).values(
            code_digest=code_digest(code),
            principal=principal,
            person_number=person_number,
            issued_at=issued_at,
            valid_until=issued_at + VALID_DAYS * 86400,
            from_month=period[0],
            to_month=period[1],
            content=canonical(content),
            content_sha256=content_sha256(content),
            pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        )
    )


def find_certificate(conn: Connection, code: str) -> CertificateRecord | None:
    t = portal_certificates.c
    row = conn.execute(
        select(t.content, t.content_sha256, t.pdf_sha256, t.issued_at, t.valid_until).where(
            t.code_digest == code_digest(code)
        )
    ).first()
    if row is None:
        return None
    content = json.loads(row.content)
    return CertificateRecord(
        content=content,
        content_sha256=row.content_sha256,
        pdf_sha256=row.pdf_sha256,
        issued_at=float(row.issued_at),
        valid_until=float(row.valid_until),
        # The stored text is canonical: hash it as stored, so any edit shows.
        intact=hashlib.sha256(row.content.encode("utf-8")).hexdigest() == row.content_sha256,
    )


def pdf_matches(record: CertificateRecord, pdf: bytes) -> bool:
    """True only for the very PDF issued: an edited file has another digest."""
    return hashlib.sha256(pdf).hexdigest() == record.pdf_sha256


def verify_throttled(conn: Connection, source: str, *, now: float) -> bool:
    count = source_failure_count(
        conn, _verify_key(source), now=now, window_seconds=VERIFY_WINDOW_SECONDS
    )
    return count >= VERIFY_MAX_FAILURES


def count_verify_failure(conn: Connection, source: str, *, now: float) -> None:
    record_source_failure(conn, _verify_key(source), now=now, window_seconds=VERIFY_WINDOW_SECONDS)


def _verify_key(source: str) -> str:
    return "verify:" + source


# -- the PDF ----------------------------------------------------------------------------


def certificate_pdf(content: Mapping[str, Any], *, code: str, verify_url: str) -> bytes:
    """An A4 参保证明: the content, the verification code and a QR code of *verify_url*."""
    font, _ = voucher_font()
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True)
    canvas.setTitle("社会保险参保证明")
    canvas.setSubject(f"verification code {code}")
    width, height = A4
    y = height - 72
    canvas.setFont(font, 20)
    canvas.drawCentredString(width / 2, y, str(content["title"]))
    y -= 40
    canvas.setFont(font, 11)
    period = content["period"]
    for label, value in (
        ("姓名", content["name"]),
        ("公民身份号码", content["id_number"]),
        ("证明期间", f"{period[0]} 至 {period[1]}"),
        ("出具时间", content["issued"]),
        ("有效期至", content["valid_until"]),
    ):
        canvas.drawString(60, y, f"{label}：{_clip(str(value), 60)}")
        y -= 18
    y -= 8
    canvas.setFont(font, 12)
    canvas.drawString(60, y, "参保情况")
    y -= 18
    canvas.setFont(font, 9)
    for e in list(content["enrolments"])[:30]:
        text = (
            f"{_clip(str(e.get('unit_name') or ''), 24)}  {e.get('insurance_name')}  "
            f"{e.get('start_month')} 至 {e.get('end_month') or '今'}  {e.get('status')}"
        )
        canvas.drawString(60, y, text)
        y -= 14
    y -= 8
    canvas.setFont(font, 12)
    canvas.drawString(60, y, "期间内缴费月数")
    y -= 18
    canvas.setFont(font, 10)
    for insurance, months in dict(content["paid_months"]).items():
        canvas.drawString(60, y, f"{INSURANCE_NAMES.get(insurance, insurance)}：{months} 个月")
        y -= 15
    qr = io.BytesIO()
    segno.make(verify_url, error="m").save(qr, kind="png", scale=4, border=2)
    qr.seek(0)
    canvas.drawImage(ImageReader(qr), width - 190, 70, 120, 120)
    canvas.setFont(font, 9)
    canvas.drawString(60, 110, f"验证码：{code}")
    canvas.drawString(60, 95, "扫描右侧二维码或访问：")
    canvas.drawString(60, 80, _clip(verify_url, 90))
    canvas.drawString(60, 60, "本证明以验证页面显示的内容为准；内容不一致即为无效。")
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def _clip(text: str, limit: int) -> str:
    clean = "".join(c for c in text if c.isprintable())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
