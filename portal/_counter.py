"""The agency counter in the staff console: open or reset an insured person's portal
account (issue 18), the console twin of ``ssgate persons enrol|reset-password``.

A console section (:func:`persons_section`, role ``auditor``; admin sees every
section), its pages Jinja templates under ``console_templates/persons``:

* ``GET /persons`` — what the counter does, and its two actions;
* ``GET /persons/<action>`` — the form: the ID number read off the person's identity
  document and a reason (``enrol`` or ``reset-password``);
* ``POST /persons/<action>`` — first the confirmation (the masked ID number and the
  reason, the full number carried in a hidden field), then, with ``confirmed=1``,
  the change and the one-time page.

The ID number only ever travels in a POST body and a ``no-store`` page, never in a
URL (so never in an access log, a Referer or the browser's history); the pages show
it masked.  The change is the same :class:`~portal.PersonCounter` method the command
line calls, acting as ``staff:<name>`` in the console session, so the workflow writes
the audit event (and the refusal) as it does for ``ssgate persons``.  It blocks
(database, argon2): it goes through ``runner.call``.  The initial password and the
TOTP QR code are shown on the answer to that POST and nowhere else (the QR files as a
``data:`` zip link, as the staff and carriers' pages do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import PackageLoader

import web
from declare_app._voucher_pdf import mask_id_number
from provisioning import bundle_zip
from web import Response, StaffCtx
from web._changes import ChangeAction, one_time_files, reason_problem

from ._accounts import (
    MAX_REASON,
    PersonCounter,
    PersonInputError,
    PersonIssued,
    PersonRefused,
    normalise_id_number,
)

PERSONS = "/persons"
ROLES = ("auditor",)

ACTIONS: Mapping[str, ChangeAction] = {
    a.name: a
    for a in (
        ChangeAction(
            "enrol",
            "开通个人网上服务账户",
            "请先核验参保人本人的居民身份证。开通后，初始密码和动态口令二维码只在下一页显示一次，"
            "请当面交给参保人；参保人首次登录时须修改初始密码。",
            (),
        ),
        ChangeAction(
            "reset-password",
            "重置个人账户密码",
            "请先核验参保人本人的居民身份证。生成新的初始密码（只在下一页显示一次），旧密码立即失效，"
            "同时解除登录锁定，参保人已登录的会话立即结束；参保人下次登录时须修改密码。",
            (),
        ),
    )
}

REFUSALS: Mapping[str, str] = {
    "unknown-person": "没有该身份证号码的参保人（须先由参保单位申报增员）。",
    "already-enrolled": "该参保人已开通个人账户；如忘记密码，请办理“重置个人账户密码”。",
    "not-enrolled": "该参保人尚未开通个人账户，请先办理开通。",
}

ID_PROBLEM = "请输入 18 位居民身份证号码（17 位数字，最后一位为数字或 X）。"


def persons_section(counter: PersonCounter) -> web.ConsoleSection:
    """The counter's pages (see the module docstring) as a console section."""
    pages = CounterPages(counter)
    return web.ConsoleSection(
        path=PERSONS,
        title="个人账户",
        roles=ROLES,
        routes=(
            web.Route("GET", PERSONS, ROLES, pages.index),
            *(
                route
                for action in ACTIONS.values()
                for route in (
                    web.Route("GET", f"{PERSONS}/{action.name}", ROLES, pages.form(action)),
                    web.Route("POST", f"{PERSONS}/{action.name}", ROLES, pages.submit(action)),
                )
            ),
        ),
        templates=PackageLoader("portal", "console_templates"),
    )


def _handed_out(issued: PersonIssued) -> dict[str, Any]:
    """What the one-time page shows of *issued*: the password, the QR, the zip link."""
    folder = "portal-otp"
    return {
        "masked_id": issued.masked_id,
        "password": issued.password,
        "sessions_ended": issued.sessions_ended,
        **one_time_files(
            issued.files, zipped=bundle_zip(folder, issued.files), zip_name=f"{folder}.zip"
        ),
    }


class CounterPages:
    """The handlers of :func:`persons_section` over one :class:`PersonCounter`."""

    def __init__(self, counter: PersonCounter) -> None:
        self._counter = counter

    def _page(
        self, ctx: StaffCtx, template: str, title: str, status: int = 200, **values: Any
    ) -> Response:
        return ctx.page(
            f"persons/{template}",
            status,
            title=title,
            current=PERSONS,
            max_reason=MAX_REASON,
            actions=list(ACTIONS.values()),
            **values,
        )

    async def index(self, ctx: StaffCtx) -> Response:
        return self._page(ctx, "index.html", "个人账户")

    def _form_page(
        self,
        ctx: StaffCtx,
        action: ChangeAction,
        *,
        id_number: str = "",
        reason: str = "",
        error: str = "",
        field_errors: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        return self._page(
            ctx,
            "form.html",
            action.title,
            status,
            action=action,
            form_id_number=id_number,
            form_reason=reason,
            error=error,
            field_errors=dict(field_errors or {}),
        )

    def form(self, action: ChangeAction) -> web.ConsoleHandler:
        async def get(ctx: StaffCtx) -> Response:
            return self._form_page(ctx, action)

        get.__name__ = f"{action.name.replace('-', '_')}_form"
        return get

    def submit(self, action: ChangeAction) -> web.ConsoleHandler:
        async def post(ctx: StaffCtx) -> Response:
            return await self._submit(ctx, action)

        post.__name__ = action.name.replace("-", "_")
        return post

    async def _submit(self, ctx: StaffCtx, action: ChangeAction) -> Response:
        typed = ctx.form.get("id_number", "")
        reason = ctx.form.get("reason", "").strip()
        number = normalise_id_number(typed)
        errors: dict[str, str] = {}
        if number is None:
            errors["id_number"] = ID_PROBLEM
        problem = reason_problem(reason, max_chars=MAX_REASON)
        if problem:
            errors["reason"] = problem
        if number is None or errors:
            return self._form_page(
                ctx,
                action,
                # Echoed only if it could be a number (a page, never a URL or a log).
                id_number=number or "",
                reason=reason[:MAX_REASON],
                error="请按提示修改后再提交。",
                field_errors=errors,
                status=400,
            )
        if ctx.form.get("confirmed") != "1":
            return self._page(
                ctx,
                "confirm.html",
                action.title,
                action=action,
                masked_id=mask_id_number(number),
                id_number=number,
                form_reason=reason,
            )
        acting = self._counter.acting_as(ctx.staff.audit_actor, session_ref=ctx.session_ref)
        try:
            issued: PersonIssued = await ctx.runner.call(
                run_action, acting, action.name, number, reason
            )
        except PersonRefused as refusal:
            text = REFUSALS.get(refusal.reason, "该操作未被允许。")
            return self._form_page(
                ctx, action, id_number=number, reason=reason, error=f"未能办理：{text}", status=409
            )
        except PersonInputError:
            # Checked above in the console's words; never a 500 if the rules drift.
            return self._form_page(
                ctx,
                action,
                id_number=number,
                reason=reason,
                error="请按提示修改后再提交。",
                status=400,
            )
        return self._page(
            ctx,
            "issued.html",
            action.title,
            action=action,
            done=f"已{action.title}。",
            **_handed_out(issued),
        )


def run_action(counter: PersonCounter, action: str, id_number: str, reason: str) -> PersonIssued:
    """*action* as one call of the workflow the command line makes (blocking)."""
    match action:
        case "enrol":
            return counter.enrol(id_number, reason=reason)
        case "reset-password":
            return counter.reset_password(id_number, reason=reason)
    raise ValueError(f"no counter action {action!r}")
