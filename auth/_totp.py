"""TOTP (RFC 6238) with pyotp 2.12: secrets, provisioning URIs and step matching.

Defaults only — SHA-1, 6 digits, 30-second steps — because many authenticator apps
ignore anything else.  :func:`match_totp` returns the matching *time-step* rather than a
bool: pyotp has no replay protection, so the authenticator stores the last accepted
step per principal and accepts only a greater one (RFC 6238 §5.2), atomically in the
database.  Codes are checked for exactly six ASCII digits before pyotp sees them,
because pyotp NFKC-normalises both sides (a full-width ``１２３４５６`` would match).
"""

from __future__ import annotations

import base64
import math
import re
import secrets

import pyotp

TOTP_DIGITS = 6
TOTP_INTERVAL = 30
TOTP_SECRET_BYTES = 20  # 160 bits, RFC 4226 §4 recommendation
VALID_WINDOW = 1  # accept the previous, current and next step (±30 s clock skew)

_CODE = re.compile(r"[0-9]{6}")
_SECRET = re.compile(r"[A-Z2-7]{32,}")


class TotpSecretError(ValueError):
    """A TOTP secret or URI label is unusable; the message never contains the secret."""


def new_totp_secret() -> str:
    """A fresh random secret: 160 bits as 32 base32 characters, no padding."""
    return base64.b32encode(secrets.token_bytes(TOTP_SECRET_BYTES)).decode("ascii")


def totp_secret_context(principal: str) -> str:
    """The SecretBox context a principal's TOTP secret is sealed under.

    Binding the principal in means a sealed secret copied to another row will not open.
    """
    return f"totp-secret:{principal}"


def _totp(secret: str, **kwargs: str) -> pyotp.TOTP:
    if not isinstance(secret, str) or _SECRET.fullmatch(secret) is None:
        raise TotpSecretError(
            "TOTP secret must be at least 32 base32 characters (A-Z, 2-7), as made by "
            "new_totp_secret()"
        )
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL, **kwargs)


def totp_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…`` provisioning URI.

    SHA-1, 6 digits and 30 s are the Key URI Format defaults and so are implied.
    """
    for label, value in (("account", account), ("issuer", issuer)):
        if not value or ":" in value:
            raise TotpSecretError(f"TOTP {label} label must be non-empty and contain no ':'")
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def totp_step(now: float) -> int:
    """The RFC 6238 time-step (counter) that *now* falls in."""
    return int(now) // TOTP_INTERVAL


def match_totp(secret: str, code: str, *, now: float) -> int | None:
    """The time-step *code* is valid for (within ±1 step of *now*), or None.

    None also for anything that is not exactly six ASCII digits.  Raises ValueError for
    a *now* that is not a finite time after the first two steps of the epoch.
    """
    if not math.isfinite(now) or now < VALID_WINDOW * TOTP_INTERVAL:
        raise ValueError(f"now must be epoch seconds (UTC), got {now!r}")
    if not isinstance(code, str) or _CODE.fullmatch(code) is None:
        return None
    try:
        step: int = _totp(secret).verify_and_get_timecode(
            code, for_time=now, valid_window=VALID_WINDOW
        )
    except pyotp.OTPVerificationError:
        return None
    return step


def current_code(secret: str, now: float) -> str:
    """The code an authenticator app shows at *now* (for tests and the demo)."""
    return _totp(secret).at(now)


def code_for_step(secret: str, step: int) -> str:
    """The code for time-step *step* (for tests: codes one step early or late)."""
    return _totp(secret).generate_otp(step)
