"""What a handler may answer: redirects that stay on the site, attachments with plain
names and checked types, problem documents, and who may call a console route."""

from __future__ import annotations

import json

import pytest

import web
from auth.console import StaffMember


async def _noop(ctx: object) -> web.Response:  # pragma: no cover - never called
    raise NotImplementedError


@pytest.mark.parametrize(
    "location",
    ["https://evil.example/", "//evil.example/", "review", "/a\r\nSet-Cookie: x", "/\\evil"],
)
def test_redirects_stay_inside_the_site(location: str) -> None:
    with pytest.raises(ValueError):
        web.see_other(location)


def test_a_site_path_is_a_fine_redirect() -> None:
    r = web.see_other("/review/abc?done=claimed")
    assert r.status == 303 and dict(r.headers)[b"Location"] == b"/review/abc?done=claimed"


@pytest.mark.parametrize("filename", ["", "a b.csv", 'x".csv', "日志.csv", "../x", "a;b", ".."])
def test_download_names_are_plain_ascii(filename: str) -> None:
    with pytest.raises(ValueError):
        web.attachment("text/csv", filename, b"")


def test_download_content_type_is_checked() -> None:
    r = web.attachment("text/csv; charset=utf-8", "audit-2026.csv", b"x")
    assert dict(r.headers)[b"Content-Disposition"] == b'attachment; filename="audit-2026.csv"'
    with pytest.raises(ValueError):
        web.attachment("text/html\r\nX: y", "a.html", b"")


def test_admin_may_call_every_console_route_others_only_their_roles() -> None:
    route = web.Route("GET", "/review", ("auditor",), _noop)
    assert web.may_call(route, "auditor")
    assert web.may_call(route, "admin")
    assert not web.may_call(route, "carrier")
    assert not web.may_call(route, "officer")
    anyone = web.Route("GET", "/", (web.STAFF,), _noop)
    assert all(web.may_call(anyone, r) for r in ("carrier", "auditor", "officer", "admin"))


def test_a_problem_document_follows_rfc_9457_and_keeps_our_members() -> None:
    r = web.problem(404, "not-found", "申报不存在")
    assert r.content_type == b"application/problem+json; charset=utf-8"
    assert json.loads(r.body) == {
        "type": "about:blank",
        "title": "页面不存在",
        "status": 404,
        "detail": "申报不存在",
        "error": "not-found",
        "message": "申报不存在",
        "findings": [],
    }


def test_staff_member_audit_actor() -> None:
    member = StaffMember("alice", "auditor")
    assert member.audit_actor == "staff:alice"
    assert member.role_title == "经办审核员"
