"""The real ``openssl`` binary accepts what the CA writes: PKCS#12, chains, CRLs.

These run against the wall clock, because ``openssl verify`` checks validity at "now".
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs import (
    CertificateAuthority,
    IssuedCertificate,
    RevokedEntry,
    crl_pem,
    make_pkcs12,
)

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl binary not installed")

ACCOUNT = "33068212345678@sxlss"
PASSPHRASE = "s3cret-Bundle-pass"


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: CertificateAuthority
    good: IssuedCertificate
    revoked: IssuedCertificate
    server: IssuedCertificate


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )


def _openssl_serial(issued: IssuedCertificate) -> str:
    """How openssl prints a serial: upper case, padded to whole bytes."""
    digits = issued.serial_hex.upper()
    return digits.zfill(len(digits) + len(digits) % 2)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    now = datetime.now(UTC)
    ca = CertificateAuthority.create("ssgate interop CA", now=now)
    good = ca.issue_client(ACCOUNT, now=now)
    revoked = ca.issue_client("33068200000001@sxlss", now=now)
    server = ca.issue_server(["gw.example.org", "127.0.0.1"], now=now)
    crl = ca.build_crl(
        [RevokedEntry(serial_hex=revoked.serial_hex, revoked_at=now, reason="key_compromise")],
        now=now,
        crl_number=5,
    )
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "client.pem").write_bytes(good.cert_pem())
    (tmp_path / "revoked.pem").write_bytes(revoked.cert_pem())
    (tmp_path / "server.pem").write_bytes(server.cert_pem())
    (tmp_path / "crl.pem").write_bytes(crl_pem(crl))
    (tmp_path / "client.p12").write_bytes(
        make_pkcs12(good, ca.certificate, PASSPHRASE.encode(), friendly_name=ACCOUNT)
    )
    return Pki(tmp_path, ca, good, revoked, server)


def test_openssl_opens_the_pkcs12_bundle_with_its_passphrase(pki: Pki) -> None:
    """`openssl pkcs12 -passin` reads the client and CA certificates out of the bundle."""
    result = _openssl(
        "pkcs12", "-in", pki.dir / "client.p12", "-passin", f"pass:{PASSPHRASE}", "-nokeys"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("-----BEGIN CERTIFICATE-----") == 2
    assert f"friendlyName: {ACCOUNT}" in result.stdout
    assert pki.good.cert_pem().decode().strip() in result.stdout
    assert pki.ca.cert_pem().decode().strip() in result.stdout


def test_openssl_extracts_the_key_and_reports_modern_encryption(pki: Pki) -> None:
    """The key comes out with the passphrase; the bundle uses PBES2/AES-256 and a SHA-256 MAC."""
    result = _openssl(
        "pkcs12",
        "-in",
        pki.dir / "client.p12",
        "-passin",
        f"pass:{PASSPHRASE}",
        "-nocerts",
        "-nodes",
        "-info",
    )
    assert result.returncode == 0, result.stderr
    assert "-----BEGIN PRIVATE KEY-----" in result.stdout
    info = result.stderr
    assert "MAC: sha256" in info
    assert "AES-256-CBC" in info


def test_openssl_refuses_the_bundle_with_a_wrong_passphrase(pki: Pki) -> None:
    """A wrong passphrase fails the MAC check in openssl too."""
    result = _openssl("pkcs12", "-in", pki.dir / "client.p12", "-passin", "pass:wrong", "-nokeys")
    assert result.returncode != 0


def test_openssl_verifies_client_and_server_against_the_ca(pki: Pki) -> None:
    """`openssl verify -CAfile ca.pem` accepts both leaves, each for its own purpose only."""
    ca_file = pki.dir / "ca.pem"
    result = _openssl("verify", "-CAfile", ca_file, pki.dir / "client.pem")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("client.pem: OK")
    assert (
        _openssl(
            "verify", "-purpose", "sslclient", "-CAfile", ca_file, pki.dir / "client.pem"
        ).returncode
        == 0
    )
    assert (
        _openssl(
            "verify", "-purpose", "sslserver", "-CAfile", ca_file, pki.dir / "server.pem"
        ).returncode
        == 0
    )
    # EKU keeps a client certificate from serving as a server one and vice versa.
    assert (
        _openssl(
            "verify", "-purpose", "sslserver", "-CAfile", ca_file, pki.dir / "client.pem"
        ).returncode
        != 0
    )
    assert (
        _openssl(
            "verify", "-purpose", "sslclient", "-CAfile", ca_file, pki.dir / "server.pem"
        ).returncode
        != 0
    )


def test_openssl_server_certificate_matches_its_names(pki: Pki) -> None:
    """`openssl x509 -checkhost/-checkip` find the SAN names and not others."""
    server = pki.dir / "server.pem"
    assert (
        "does match"
        in _openssl("x509", "-in", server, "-noout", "-checkhost", "gw.example.org").stdout
    )
    assert (
        "does NOT match"
        in _openssl("x509", "-in", server, "-noout", "-checkhost", "evil.example.org").stdout
    )
    assert "does match" in _openssl("x509", "-in", server, "-noout", "-checkip", "127.0.0.1").stdout


def test_openssl_parses_the_crl_and_lists_the_revoked_serial(pki: Pki) -> None:
    """`openssl crl -text` shows the revoked serial with its reason and the CRL number."""
    result = _openssl("crl", "-in", pki.dir / "crl.pem", "-noout", "-text")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"Serial Number: {_openssl_serial(pki.revoked)}" in text
    assert _openssl_serial(pki.good) not in text
    assert "Key Compromise" in text
    assert "X509v3 CRL Number" in text
    signature = _openssl("crl", "-in", pki.dir / "crl.pem", "-noout", "-CAfile", pki.dir / "ca.pem")
    assert signature.returncode == 0
    assert "verify OK" in signature.stdout + signature.stderr


def test_openssl_crl_check_rejects_revoked_and_accepts_good(pki: Pki) -> None:
    """`openssl verify -crl_check` says "certificate revoked" for the revoked one only."""
    args = ("verify", "-crl_check", "-CAfile", pki.dir / "ca.pem", "-CRLfile", pki.dir / "crl.pem")
    revoked = _openssl(*args, pki.dir / "revoked.pem")
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr
    good = _openssl(*args, pki.dir / "client.pem")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.strip().endswith("client.pem: OK")
