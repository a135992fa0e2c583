"""The administrators' staff pages in the staff console: who works here, enrolled and
changed.

A console section (:func:`staff_section`, role ``admin`` only), its pages Jinja
templates under ``templates/staff`` in the console layout:

* ``GET /staff`` — every staff member: role, status, lockout;
* ``GET /staff/add`` and ``POST /staff/add`` — enrol a member with a role;
* ``GET /staff/members/<name>`` — the member and the actions their state allows;
* ``GET /staff/members/<name>/<action>`` (the confirmation, with a required reason)
  and ``POST`` the same path, for disable, enable, reset-password, reset-otp, unlock.

Members live under ``/staff/members/`` because every word (``add`` too) can be a
staff name.  Every change is a call of the same
:class:`~staffing.StaffAdministration` method the ``ssgate staff`` command makes,
acting as ``staff:<name>`` with the console session's reference, so the workflow
writes the audit event (and the refusal) as it does on the command line.  The methods
block (database, argon2): they go through ``runner.call``.

What a change hands out (the initial password, the OTP QR code and its files) is
shown on the answer to the POST and nowhere else, the files as a ``data:`` zip link,
as the carriers' pages do: no secret is kept on the server for a second view, and the
page is ``Cache-Control: no-store`` as every console answer is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import PackageLoader

import auth
import web
from auth.console import ROLE_TITLES
from provisioning import bundle_zip
from staffing._workflows import (
    StaffAdministration,
    StaffInputError,
    StaffIssued,
    StaffRefused,
    StaffView,
)
from web import Response, StaffCtx
from web._changes import (
    ChangeAction,
    ConfirmedChanges,
    lockout_text,
    one_time_files,
    reason_problem,
)
from web._time import shown

STAFF = "/staff"
MEMBERS = f"{STAFF}/members"
ROLES = ("admin",)
MAX_REASON = 200

# The staff-name rule (auth.check_staff_name); a path that breaks it is the router's 404.
_NAME = r"[a-z][a-z0-9._-]{1,31}"

STATUS_TEXT: Mapping[str, str] = {"active": "正常", "disabled": "已停用"}


# A change a member's page offers: its words and the statuses it applies to.
Action = ChangeAction

ACTIONS: Mapping[str, Action] = {
    a.name: a
    for a in (
        Action(
            "disable",
            "停用",
            "停用后该工作人员不能登录控制台，其已登录的控制台会话立即结束（所有节点）。可随时重新启用。",
            ("active",),
            grave=True,
        ),
        Action(
            "enable",
            "重新启用",
            "启用后该工作人员可以重新登录控制台；停用时结束的会话不会恢复。",
            ("disabled",),
        ),
        Action(
            "reset-password",
            "重置密码",
            "生成新的初始密码（仅在下一页显示一次），旧密码立即失效，同时解除登录锁定；"
            "该工作人员已登录的控制台会话立即结束。",
            ("active", "disabled"),
        ),
        Action(
            "reset-otp",
            "重置动态口令",
            "生成新的动态口令密钥，二维码仅在下一页显示一次；原有的动态口令立即失效，"
            "该工作人员已登录的控制台会话立即结束。",
            ("active", "disabled"),
        ),
        Action(
            "unlock",
            "解除锁定",
            "清除连续登录失败次数及临时或永久锁定，该工作人员可以立即重新登录。",
            ("active", "disabled"),
        ),
    )
}

# The workflow's refusal codes, in words for the administrator.
REFUSALS: Mapping[str, str] = {
    "unknown-staff": "该工作人员不存在。",
    "staff-exists": "该用户名已被使用，请换一个用户名。",
    "bad-transition": "该工作人员当前的状态不允许此操作，请刷新页面后再试。",
    "own-account": "不能停用自己的账号；如确需停用，请由另一位系统管理员办理。",
    "not-locked": "该工作人员当前没有被锁定，无需解除锁定。",
    "password-in-directory": "工作人员密码由 LDAP 目录管理，请在目录中重置密码。",
}


def when(ts: float | None) -> str:
    """Epoch seconds as Beijing time with its offset; ``—`` for none."""
    return shown(ts, offset=True)


def check_reason(text: str) -> str:
    """The problem with a reason the administrator typed, in Chinese; empty if none."""
    return reason_problem(text, max_chars=MAX_REASON)


def refusal_text(refusal: StaffRefused) -> str:
    return REFUSALS.get(refusal.reason, "该操作未被允许。")


def _handed_out(issued: StaffIssued) -> dict[str, Any]:
    """What the one-time page shows of *issued*: the password, the QR, the zip link."""
    files = issued.files
    return {
        "name": issued.name,
        "issued_role": ROLE_TITLES.get(issued.role, issued.role),
        "password": issued.password or "",
        "sessions_ended": issued.sessions_ended,
        **one_time_files(
            files, zipped=bundle_zip(issued.name, files), zip_name=f"{issued.name}-otp.zip"
        ),
    }


def staff_section(admin: StaffAdministration) -> web.ConsoleSection:
    """The administrators' staff pages (see the module docstring) as a console section."""
    pages = StaffPages(admin)
    member = f"{MEMBERS}/<staffname:name>"
    return web.ConsoleSection(
        path=STAFF,
        title="工作人员",
        roles=ROLES,
        routes=(
            web.Route("GET", STAFF, ROLES, pages.list),
            web.Route("GET", f"{STAFF}/add", ROLES, pages.add_page),
            web.Route("POST", f"{STAFF}/add", ROLES, pages.add),
            web.Route("GET", member, ROLES, pages.show),
            *(
                route
                for action in ACTIONS.values()
                for route in (
                    web.Route("GET", f"{member}/{action.name}", ROLES, pages.confirm(action)),
                    web.Route("POST", f"{member}/{action.name}", ROLES, pages.perform(action)),
                )
            ),
        ),
        templates=PackageLoader("staffing", "templates"),
        converters={"staffname": _NAME},
    )


class StaffPages(ConfirmedChanges):
    """The handlers of :func:`staff_section` over one :class:`StaffAdministration`."""

    param = "name"
    base = MEMBERS
    unknown = "unknown-staff"
    refused = StaffRefused
    input_errors = (StaffInputError,)
    max_reason = MAX_REASON

    def __init__(self, admin: StaffAdministration) -> None:
        self._admin = admin

    def _acting(self, ctx: StaffCtx) -> StaffAdministration:
        return self._admin.acting_as(ctx.staff.audit_actor, session_ref=ctx.session_ref)

    def _page(
        self, ctx: StaffCtx, template: str, title: str, status: int = 200, **values: Any
    ) -> Response:
        return ctx.page(
            f"staff/{template}",
            status,
            title=title,
            current=STAFF,
            when=when,
            status_text=STATUS_TEXT,
            role_titles=ROLE_TITLES,
            max_reason=MAX_REASON,
            in_directory=self._admin.settings.passwords_in_directory,
            **values,
        )

    def _missing(self, ctx: StaffCtx, name: str) -> Response:
        message = f"工作人员 {name} 不存在。"
        return self._page(ctx, "missing.html", "工作人员不存在", 404, message=message)

    # -- list and show -----------------------------------------------------------------

    async def list(self, ctx: StaffCtx) -> Response:
        rows: list[StaffView] = await ctx.runner.call(self._admin.list)
        return self._page(
            ctx,
            "list.html",
            "工作人员",
            rows=rows,
            lockout=lambda view: lockout_text(view.credential, ctx.now),
        )

    async def show(self, ctx: StaffCtx, name: str) -> Response:
        try:
            view: StaffView = await ctx.runner.call(self._admin.show, name)
        except (StaffRefused, StaffInputError):
            return self._missing(ctx, name)
        done = ACTIONS.get(ctx.query.get("done", ""))
        return self._page(
            ctx,
            "member.html",
            f"工作人员 {name}",
            view=view,
            lockout=lockout_text(view.credential, ctx.now),
            actions=[
                a
                for a in ACTIONS.values()
                if view.record.status in a.statuses
                and (a.name != "unlock" or view.may_unlock(ctx.now))
                and not (a.name == "reset-password" and self._admin.settings.passwords_in_directory)
            ],
            notice=f"已{done.title}。" if done is not None else "",
        )

    # -- add ---------------------------------------------------------------------------

    def _add_form(
        self,
        ctx: StaffCtx,
        *,
        name: str = "",
        role: str = "",
        reason: str = "",
        error: str = "",
        field_errors: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        return self._page(
            ctx,
            "add.html",
            "添加工作人员",
            status,
            form_name=name,
            form_role=role,
            form_reason=reason,
            error=error,
            field_errors=dict(field_errors or {}),
            roles=auth.STAFF_ROLES,
        )

    async def add_page(self, ctx: StaffCtx) -> Response:
        return self._add_form(ctx)

    async def add(self, ctx: StaffCtx) -> Response:
        name = ctx.form.get("name", "").strip()
        role = ctx.form.get("role", "")
        reason = ctx.form.get("reason", "").strip()
        errors: dict[str, str] = {}
        try:
            auth.check_staff_name(name)
        except auth.StaffNameError:
            errors["name"] = (
                "用户名须为 2–32 个字符：以小写英文字母开头，其后为小写字母、数字、“.”、“_”或“-”。"
            )
        if role not in auth.STAFF_ROLES:
            errors["role"] = "请选择角色。"
        problem = check_reason(reason)
        if problem:
            errors["reason"] = problem
        if errors:
            return self._add_form(
                ctx,
                name=name[:32],
                role=role if role in auth.STAFF_ROLES else "",
                reason=reason[:MAX_REASON],
                error="请按提示修改后再提交。",
                field_errors=errors,
                status=400,
            )
        try:
            issued: StaffIssued = await ctx.runner.call(
                self._acting(ctx).add, name, role, reason=reason
            )
        except StaffRefused as refusal:
            return self._add_form(
                ctx,
                name=name,
                role=role,
                reason=reason,
                error=f"未能添加：{refusal_text(refusal)}",
                status=409,
            )
        except StaffInputError:
            # Checked above in the console's words; never a 500 if the rules drift.
            return self._add_form(
                ctx, name=name, role=role, reason=reason, error="请按提示修改后再提交。", status=400
            )
        return self._page(
            ctx,
            "issued.html",
            f"已添加工作人员 {issued.name}",
            done=f"已添加工作人员，角色：{ROLE_TITLES.get(issued.role, issued.role)}。",
            **_handed_out(issued),
        )

    # -- the other changes: a confirmation with a reason, then the workflow -------------

    async def _change(self, ctx: StaffCtx, action: ChangeAction, subject: str, reason: str) -> Any:
        return await ctx.runner.call(run_action, self._acting(ctx), action.name, subject, reason)

    def _one_time_values(self, result: Any) -> dict[str, Any] | None:
        return _handed_out(result) if isinstance(result, StaffIssued) else None

    def _refusal_text(self, refusal: Any) -> str:
        return refusal_text(refusal)


def run_action(admin: StaffAdministration, action: str, name: str, reason: str) -> object:
    """*action* as one call of the workflow the command line makes (blocking)."""
    match action:
        case "disable":
            return admin.disable(name, reason=reason)
        case "enable":
            return admin.enable(name, reason=reason)
        case "reset-password":
            return admin.reset_password(name, reason=reason)
        case "reset-otp":
            return admin.reset_otp(name, reason=reason)
        case "unlock":
            return admin.unlock(name, reason=reason)
    raise ValueError(f"no staff action {action!r}")
