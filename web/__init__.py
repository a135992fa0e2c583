"""The one web shell both sites use: the employer site and the staff console.

``web`` is the bottom layer for HTTP (ARCHITECTURE §3): request caps, strict form
and multipart decoding, CSRF/Origin/Host checks, security headers, problem+json
errors and the route tables that Klein serves.  It imports nothing of ours but
``auth`` types, so both feature sites and ``ssgate`` can build on it.
"""

__all__: list[str] = []
