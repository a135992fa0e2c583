"""``ssgate provision show``: each certificate line says its status once (issue 11)."""

from __future__ import annotations

import io

import auth
import certs
import provisioning
from ssgate.cli import _show_account

DAY = 86400.0
T0 = 1_780_000_000.0


def _cert(serial: str, *, revoked_at: float | None = None) -> certs.CertificateRecord:
    return certs.CertificateRecord(
        serial=serial,
        kind="client",
        subject="CN=33068212345678@sxlss",
        fingerprint_sha256="00" * 32,
        not_before_at=T0,
        not_after_at=T0 + 730 * DAY,
        issued_at=T0,
        status="revoked" if revoked_at else "valid",
        revoked_at=revoked_at,
        revocation_reason="superseded" if revoked_at else None,
        pem="",
    )


def _shown(*cert_records: certs.CertificateRecord) -> list[str]:
    account = auth.AccountRecord(
        name="33068212345678@sxlss",
        region="330682",
        unit_code="12345678",
        realm="sxlss",
        status="active",
        status_reason=None,
        created_at=T0,
        updated_at=T0,
    )
    out = io.StringIO()
    view = provisioning.AccountView(account, "approved", list(cert_records), None)
    _show_account(view, out)
    return [line for line in out.getvalue().splitlines() if line.startswith("cert:")]


def test_a_valid_certificate_says_valid_once_and_until_when() -> None:
    (line,) = _shown(_cert("0a1b"))
    assert "valid valid" not in line
    assert line.count("valid") == 1
    assert line.startswith("cert:      0a1b valid until ")


def test_a_revoked_certificate_says_when_and_why_not_valid() -> None:
    (line,) = _shown(_cert("0c2d", revoked_at=T0 + DAY))
    assert line.startswith("cert:      0c2d revoked ")
    assert "(superseded)" in line and "would have expired" in line
    assert "valid" not in line.replace("would have expired", "")
