"""The console page contract's own checks (auth.console): what a page may return."""

from __future__ import annotations

import pytest

from auth.console import Download, Redirect, StaffMember, check_page, may_open


class _Page:
    def __init__(self, path: str = "review", roles: frozenset[str] = frozenset({"auditor"})):
        self.path = path
        self.title = "审核"
        self.roles = roles

    async def render_get(self, request: object, staff: object) -> object:  # pragma: no cover
        raise NotImplementedError

    render_post = render_get


@pytest.mark.parametrize(
    "location",
    ["https://evil.example/", "//evil.example/", "review", "/a\r\nSet-Cookie: x", "/\\evil"],
)
def test_redirects_stay_inside_the_console(location: str) -> None:
    with pytest.raises(ValueError):
        Redirect(location)


def test_a_console_path_is_a_fine_redirect() -> None:
    assert Redirect("/review/abc?done=claimed").location == "/review/abc?done=claimed"


@pytest.mark.parametrize("filename", ["", "a b.csv", 'x".csv', "日志.csv", "../x", "a;b"])
def test_download_names_are_plain_ascii(filename: str) -> None:
    with pytest.raises(ValueError):
        Download("text/csv", filename, b"")


def test_download_content_type_is_checked() -> None:
    assert Download("text/csv; charset=utf-8", "audit-2026.csv", b"x").filename == "audit-2026.csv"
    with pytest.raises(ValueError):
        Download("text/html\r\nX: y", "a.html", b"")


def test_admin_may_open_every_page_others_only_their_roles() -> None:
    page = _Page()
    assert may_open(page, "auditor")
    assert may_open(page, "admin")
    assert not may_open(page, "carrier")
    assert not may_open(page, "officer")


@pytest.mark.parametrize(
    "page",
    [
        _Page(path="login"),
        _Page(path="static"),
        _Page(path="Review"),
        _Page(path="a/b"),
        _Page(path=""),
        _Page(roles=frozenset({"root"})),
    ],
)
def test_pages_that_cannot_be_mounted(page: _Page) -> None:
    with pytest.raises(ValueError):
        check_page(page)  # type: ignore[arg-type]


def test_staff_member_audit_actor() -> None:
    member = StaffMember("alice", "auditor")
    assert member.audit_actor == "staff:alice"
    assert member.role_title == "经办审核员"
