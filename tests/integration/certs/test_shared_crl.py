"""The current CRL stored in the database (issue 13), on SQLite and PostgreSQL: never
replaced by an older one, signed from the register of revocations, renewed only when
due — and then by one caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from sqlalchemy import Engine

import certs
from certs._schema import metadata

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture
def db(engine: Engine) -> Engine:
    metadata.create_all(engine)
    return engine


@pytest.fixture(scope="module")
def ca() -> certs.CertificateAuthority:
    return certs.CertificateAuthority.create("shared CRL test CA", now=NOW)


def test_a_stored_crl_is_never_replaced_by_one_with_a_lower_number(
    db: Engine, ca: certs.CertificateAuthority
) -> None:
    newer = ca.build_crl([], now=NOW, crl_number=5)
    older = ca.build_crl([], now=NOW, crl_number=4)
    with db.begin() as conn:
        assert certs.current_crl(conn) is None and certs.current_crl_version(conn) is None
        assert certs.store_crl(conn, newer, now=NOW)
        assert not certs.store_crl(conn, older, now=NOW)
        stored = certs.current_crl(conn)
    assert stored is not None and stored.crl_number == 5
    assert stored.crl() == newer
    assert stored.next_update_at == (NOW + WEEK).timestamp()
    with db.begin() as conn:
        assert certs.current_crl_version(conn) == (5, (NOW + WEEK).timestamp())


def test_sign_crl_lists_the_revoked_certificates_with_the_next_number(
    db: Engine, ca: certs.CertificateAuthority
) -> None:
    client = ca.issue_client("33068212345678@sxlss", now=NOW)
    with db.begin() as conn:
        certs.record_certificate(
            conn, client.certificate, kind="client", subject="33068212345678@sxlss", now=NOW
        )
        first = certs.sign_crl(conn, ca, now=NOW, next_update=WEEK)
        certs.revoke(conn, client.serial_hex, reason="superseded", now=NOW)
        second = certs.sign_crl(conn, ca, now=NOW, next_update=WEEK)
        stored = certs.current_crl(conn)
    assert stored is not None and stored.crl() == second
    assert _number(second) == _number(first) + 1
    assert second.get_revoked_certificate_by_serial_number(client.certificate.serial_number)


def test_the_crl_is_renewed_only_once_less_than_the_margin_is_left(
    db: Engine, ca: certs.CertificateAuthority
) -> None:
    """No CRL yet: signed.  Fresh: left alone.  Within the margin of nextUpdate:
    re-signed once — a second node arriving just after finds it fresh again."""
    margin = WEEK / 2
    with db.begin() as conn:
        first = certs.renew_crl_if_due(conn, ca, now=NOW, next_update=WEEK, renew_before=margin)
    assert first is not None
    later = NOW + timedelta(days=2)
    with db.begin() as conn:
        assert (
            certs.renew_crl_if_due(conn, ca, now=later, next_update=WEEK, renew_before=margin)
            is None
        )
    due = NOW + timedelta(days=4)
    with db.begin() as conn:
        renewed = certs.renew_crl_if_due(conn, ca, now=due, next_update=WEEK, renew_before=margin)
    with db.begin() as conn:
        again = certs.renew_crl_if_due(conn, ca, now=due, next_update=WEEK, renew_before=margin)
        stored = certs.current_crl(conn)
    assert renewed is not None and again is None
    assert stored is not None and stored.crl_number == _number(renewed) == _number(first) + 1
    assert stored.next_update_at == (due + WEEK).timestamp()


def _number(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
