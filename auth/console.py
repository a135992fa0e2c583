"""What a staff console page is: the contract between the console shell and the features.

The console shell (``ssgate._console``) owns the listener, staff login (password +
TOTP through :class:`auth.Authenticator`), sessions, CSRF, security headers, the
layout and the role check.  Feature packages own their pages: the agency's auditor
pages in ``declare_app``, the officers' in ``audit``, the carriers' in
``provisioning``.  They meet here, in the bottom layer that already knows staff and
roles, so that no feature imports the shell and the shell imports no feature's page.

A page is an object satisfying :class:`ConsolePage`: one URL segment (``path``), a
Chinese ``title`` for the navigation, the staff ``roles`` allowed to open it (admin
may open every page), and ``render_get`` / ``render_post`` returning an awaitable (a
``Deferred`` or a coroutine) of a :class:`Page`, :class:`Redirect` or
:class:`Download`.  Before a page is called the shell has:

* logged the staff member in, checked the session is neither idle for too long nor
  too old, and re-read the staff record (a disabled member or changed role ends the
  session);
* checked the role: a refused role gets the 403 page and an audit event;
* on POST, checked the CSRF token (form field :data:`CSRF_FIELD`) and parsed the
  ``application/x-www-form-urlencoded`` body (bounded size, valid UTF-8, no NUL, no
  repeated field) into :attr:`ConsoleRequest.form`.

So a page validates only its own fields.  Its HTML goes into the console layout as
is: render it with Jinja2 ``autoescape=True`` and put ``request.csrf_token`` into
every form as ``<input type="hidden" name="csrf_token" value="…">``.  The layout
provides the classes ``list`` (tables), ``error``, ``notice``, ``field-error`` and
``actions`` (a row of buttons); pages never add scripts or inline styles (the
Content-Security-Policy forbids both).

Nothing here imports Twisted: a Deferred is one kind of awaitable.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from ._store import STAFF_ROLES

CSRF_FIELD = "csrf_token"

# Chinese names of the roles, as the console shows them.
ROLE_TITLES: Mapping[str, str] = {
    "carrier": "电信运营人员",
    "auditor": "经办审核员",
    "officer": "安全审计员",
    "admin": "系统管理员",
}
assert set(ROLE_TITLES) == set(STAFF_ROLES)

# A page's URL segment: lowercase, short, and not one the shell keeps for itself.
PAGE_PATH = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
RESERVED_PATHS = frozenset({"login", "logout", "static", "metrics", "health"})


@dataclass(frozen=True)
class StaffMember:
    """The logged-in staff member, as re-read from the store for this request."""

    name: str
    role: str

    @property
    def audit_actor(self) -> str:
        """The ``actor`` of this member's audit events: ``staff:<name>``."""
        return f"staff:{self.name}"

    @property
    def role_title(self) -> str:
        return ROLE_TITLES.get(self.role, self.role)


@dataclass(frozen=True)
class ConsoleRequest:
    """One request as a page sees it: decoded, bounded, and already checked.

    ``subpath`` are the URL segments after the page's own (``/review/abc/claim`` →
    ``("abc", "claim")`` for the page at ``review``), percent-decoded, empty ones
    dropped.  ``query`` and ``form`` map each field to its one value.
    ``session_ref`` is a non-secret name for the console session (not the cookie),
    for audit events, so an officer can follow one staff session.
    """

    method: str  # "GET" or "POST"
    subpath: tuple[str, ...]
    query: Mapping[str, str]
    form: Mapping[str, str]
    source: str  # the client's address
    now: float  # epoch seconds UTC, from the console's clock
    session_ref: str
    csrf_token: str = field(repr=False)


@dataclass(frozen=True)
class Page:
    """HTML for the console layout: *body_html* is the page's own, already escaped."""

    title: str
    body_html: str
    status: int = 200


@dataclass(frozen=True)
class Redirect:
    """See other (303): *location* is a console path, such as ``/review/abc``."""

    location: str

    def __post_init__(self) -> None:
        # Only our own paths: never an absolute or scheme-relative URL (open redirect).
        if not self.location.startswith("/") or self.location.startswith("//"):
            raise ValueError(f"redirect location must be a console path, got {self.location!r}")
        if any(c in self.location for c in "\r\n\x00\\"):
            raise ValueError("redirect location contains a forbidden character")


@dataclass(frozen=True)
class Download:
    """A file to save (an export, an enrolment bundle): served as an attachment."""

    content_type: str
    filename: str  # ASCII letters, digits, '.', '_', '-'
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if re.fullmatch(r"[A-Za-z0-9._-]{1,128}", self.filename) is None:
            raise ValueError(f"download filename must be plain ASCII, got {self.filename!r}")
        if re.fullmatch(r"[a-z]+/[a-z0-9.+-]+(; ?charset=[a-z0-9-]+)?", self.content_type) is None:
            raise ValueError(f"bad content type {self.content_type!r}")


ConsoleResult: TypeAlias = Page | Redirect | Download


class ConsolePage(Protocol):
    """One section of the staff console (see the module docstring for what the shell
    guarantees before calling it)."""

    @property
    def path(self) -> str:
        """The URL segment, matching :data:`PAGE_PATH`, not in :data:`RESERVED_PATHS`."""
        ...

    @property
    def title(self) -> str:
        """The Chinese name in the navigation."""
        ...

    @property
    def roles(self) -> frozenset[str]:
        """Staff roles that may open the page (``admin`` always may)."""
        ...

    def render_get(self, request: ConsoleRequest, staff: StaffMember) -> Awaitable[ConsoleResult]:
        """Answer a GET (or HEAD); must not change anything."""
        ...

    def render_post(self, request: ConsoleRequest, staff: StaffMember) -> Awaitable[ConsoleResult]:
        """Answer a POST whose CSRF token the shell has checked; after a change,
        return a :class:`Redirect` (post/redirect/get)."""
        ...


class ConsoleRunner(Protocol):
    """Where pages run blocking calls: ``run(fn, *args)`` calls ``fn(conn, *args)`` in
    one database transaction on the database thread pool (``ssgate._serve.Runner``)."""

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]: ...


def may_open(page: ConsolePage, role: str) -> bool:
    """True if staff with *role* may open *page* (admin may open every page)."""
    return role == "admin" or role in page.roles


def check_page(page: ConsolePage) -> None:
    """Raise ValueError if *page* cannot be mounted: bad path or unknown role."""
    if PAGE_PATH.fullmatch(page.path) is None or page.path in RESERVED_PATHS:
        raise ValueError(f"console page path {page.path!r} is not allowed")
    unknown = set(page.roles) - set(STAFF_ROLES)
    if unknown:
        raise ValueError(f"console page {page.path!r} names unknown roles {sorted(unknown)}")
