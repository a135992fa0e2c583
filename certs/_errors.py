"""The one exception the certs package raises for bad input, keys or bundles."""

from __future__ import annotations


class CertificateError(ValueError):
    """A certificate, key, CRL or bundle is unusable; the message names the problem.

    Messages never contain key material or passphrases: callers print them as one line
    on stderr and may log them.
    """
