"""The enrolment bundle a carrier hands to an employer, and writing it safely.

A bundle is written into a fresh directory (the command line): everything is staged
in a sibling temporary directory and renamed into place, so an employer never
receives half a bundle and an existing directory is never overwritten.  The console
hands the same files out as one zip (:func:`bundle_zip`), built in memory.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import segno

BUNDLE_DIR_MODE = 0o700
BUNDLE_FILE_MODE = 0o600  # client.p12 and otpauth.txt carry secrets


class BundleError(RuntimeError):
    """The bundle directory cannot be used."""


def qr_files(uri: str) -> dict[str, bytes]:
    """``otpauth.txt``, ``otp-qr.png`` and ``otp-qr.svg`` for a TOTP URI."""
    qr = segno.make(uri, error="m")
    png, svg = io.BytesIO(), io.BytesIO()
    qr.save(png, kind="png", scale=6, border=4)
    qr.save(svg, kind="svg", scale=6, border=4, xmldecl=True)
    return {
        "otpauth.txt": (uri + "\n").encode(),
        "otp-qr.png": png.getvalue(),
        "otp-qr.svg": svg.getvalue(),
    }


def render_profile(
    *, account: str, gateway_host: str, gateway_port: int, ca_fingerprint: str
) -> bytes:
    """``profile.toml``: what ``ssgate connect`` needs besides the PKCS#12 file."""
    return f"""\
# ssgate client profile.  Use: ssgate connect --profile profile.toml
account = "{account}"
gateway_host = "{gateway_host}"
gateway_port = {gateway_port}
# SHA-256 of the carrier's CA certificate (ca.pem); the client checks it.
ca_fingerprint_sha256 = "{ca_fingerprint}"
ca_file = "ca.pem"
client_bundle = "client.p12"
""".encode()


def check_bundle_dir(path: Path) -> None:
    """Refuse a directory that exists and is not empty, before any work is done."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BundleError(f"{path}: exists and is not an empty directory; choose a new --out")
    if not path.parent.is_dir():
        raise BundleError(f"{path.parent}: no such directory")


def write_bundle(path: Path, files: Mapping[str, bytes]) -> None:
    """Write *files* into the new directory *path*, all or nothing."""
    check_bundle_dir(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        os.chmod(staging, BUNDLE_DIR_MODE)
        for name, data in files.items():
            fd = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, BUNDLE_FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                os.fsync(f.fileno())
        if path.exists():
            path.rmdir()  # empty, checked above
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_bundle(path: Path) -> None:
    """Undo :func:`write_bundle` when the database transaction did not commit."""
    shutil.rmtree(path, ignore_errors=True)


def bundle_zip(folder: str, files: Mapping[str, bytes]) -> bytes:
    """*files* as a zip, inside one *folder* (so unpacking gives the same directory the
    command line writes), owner-only modes, fixed timestamps."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=(2000, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | BUNDLE_FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return out.getvalue()
