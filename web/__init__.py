"""The one web shell both sites use: the employer site and the staff console.

``web`` is the bottom layer for HTTP (ARCHITECTURE §3): route tables served by Klein
(:mod:`._routes`), the request with per-route body caps (:mod:`._request`), the one
body reader (:mod:`._body`) and strict decoders (:mod:`._decode`), streaming
multipart (:mod:`._multipart`), the Host/Origin and CSRF checks (:mod:`._origin`,
:mod:`._csrf`), the security headers (:mod:`._headers`) and the answers, errors as
HTML pages or RFC 9457 problem documents, streamed downloads among them
(:mod:`._answers`), and a database outage as 503 with ``Retry-After`` rather than
a 500 (:mod:`._outage`).  It imports nothing of ours but ``auth`` types, so both feature
sites and ``ssgate`` build on it.
"""

from ._access import AccessLog, masked_target, request_line
from ._answers import (
    HTML,
    JSON,
    PROBLEM_JSON,
    REASONS,
    TEXT,
    TITLES,
    ChunkSource,
    Cookie,
    HttpError,
    Response,
    Streamed,
    attachment,
    content_disposition,
    download,
    finding_json,
    plain,
    problem,
    see_other,
)
from ._body import Body, MultipartLimits, read_body
from ._console import (
    CONSOLE_ROLES,
    PUBLIC,
    REFUSED_MESSAGE,
    STAFF,
    AuditTrail,
    ConsoleHandler,
    ConsoleSection,
    ConsoleSession,
    ConsoleShell,
    SessionLookup,
    StaffAuthenticator,
    StaffCtx,
    StaffSessions,
    may_call,
    new_token,
)
from ._csrf import CSRF_FIELD, CSRF_HEADER, CsrfTokens, same_token
from ._decode import (
    MalformedInput,
    media_type,
    note_problem,
    parse_form_body,
    parse_json_body,
    parse_query,
    single_values,
)
from ._headers import security_headers
from ._multipart import MultipartError, MultipartReader, Upload
from ._origin import host_allowed, origin_allowed, same_origin
from ._outage import (
    OUTAGE_CODE,
    OUTAGE_MESSAGE,
    RETRY_AFTER_SECONDS,
    DatabaseUnavailable,
    OutageRunner,
    is_outage,
    retry_after_headers,
)
from ._request import (
    INTERNAL_MESSAGE,
    CappedChannel,
    CappedRequest,
    WebSite,
    write,
    write_stream,
)
from ._routes import Dispatcher, Handler, Route, RoutedResource, RouteTable

__all__ = [
    "CONSOLE_ROLES",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "HTML",
    "INTERNAL_MESSAGE",
    "JSON",
    "OUTAGE_CODE",
    "OUTAGE_MESSAGE",
    "PROBLEM_JSON",
    "PUBLIC",
    "REASONS",
    "REFUSED_MESSAGE",
    "RETRY_AFTER_SECONDS",
    "STAFF",
    "TEXT",
    "TITLES",
    "AccessLog",
    "AuditTrail",
    "Body",
    "CappedChannel",
    "CappedRequest",
    "ChunkSource",
    "ConsoleHandler",
    "ConsoleSection",
    "ConsoleSession",
    "ConsoleShell",
    "Cookie",
    "CsrfTokens",
    "DatabaseUnavailable",
    "Dispatcher",
    "Handler",
    "HttpError",
    "MalformedInput",
    "MultipartError",
    "MultipartLimits",
    "MultipartReader",
    "OutageRunner",
    "Response",
    "Route",
    "RouteTable",
    "RoutedResource",
    "SessionLookup",
    "StaffAuthenticator",
    "StaffCtx",
    "StaffSessions",
    "Streamed",
    "Upload",
    "WebSite",
    "attachment",
    "content_disposition",
    "download",
    "finding_json",
    "host_allowed",
    "is_outage",
    "masked_target",
    "may_call",
    "media_type",
    "new_token",
    "note_problem",
    "origin_allowed",
    "parse_form_body",
    "parse_json_body",
    "parse_query",
    "plain",
    "problem",
    "read_body",
    "request_line",
    "retry_after_headers",
    "same_origin",
    "same_token",
    "security_headers",
    "see_other",
    "single_values",
    "write",
    "write_stream",
]
