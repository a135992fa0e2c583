"""The carriers' pages in the staff console: channel accounts, found, shown and changed.

A console section (:func:`accounts_section`, role ``carrier``; admin too), its pages
Jinja templates under ``templates/accounts`` in the console layout:

* ``GET /accounts`` — search by account (any part of the name), unit code, status;
* ``GET /accounts/<account>`` — the account: status, lockout, certificates, sessions,
  and the actions its status allows;
* ``GET /accounts/open`` and ``POST /accounts/open`` — open an account for an
  approved unit;
* ``GET /accounts/<account>/<action>`` (the confirmation, with a required reason) and
  ``POST`` the same path, for suspend, resume, cancel, reset-password, reset-otp,
  reissue-cert and unlock.

Every change is a call of the same :class:`~provisioning.Provisioner` method the
``ssgate provision`` command makes, acting as ``staff:<name>`` with the console
session's reference, so the workflow writes the audit event (and the refusal) as it
does on the command line.  The methods block (database, argon2, keys): they go
through ``runner.call``.

What an action hands out (the initial password, the client.p12 passphrase, the OTP
QR code, the bundle) is shown on the answer to the POST and nowhere else: the zip is
a ``data:`` link on that page, so no secret is kept on the server for a second view,
and the page is ``Cache-Control: no-store`` as every console answer is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import PackageLoader

import auth
import gateway
import web
from provisioning._bundle import bundle_zip
from provisioning._workflows import (
    ACCOUNT_STATUSES,
    SEARCH_LIMIT,
    AccountView,
    Issued,
    Provisioner,
    ProvisioningInputError,
    ProvisioningRefused,
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

ACCOUNTS = "/accounts"
ROLES = ("carrier",)
MAX_REASON = 200
MAX_SEARCH = 64

# Loose on purpose: the name is parsed against the configured realms and regions
# inside, and a name that fails gets the page's own 404, not the router's.
_ACCOUNT = r"[0-9]{1,20}@[a-z][a-z0-9-]{0,31}"

STATUS_TEXT: Mapping[str, str] = {"active": "正常", "suspended": "已暂停", "cancelled": "已注销"}
CERT_STATUS_TEXT: Mapping[str, str] = {"valid": "有效", "revoked": "已吊销", "expired": "已过期"}
# The gateway's session statuses (gateway sessions.status: live, detached, ended).
SESSION_STATUS_TEXT: Mapping[str, str] = {
    "live": "在线",
    "detached": "暂离（可续接）",
    "ended": "已结束",
}
# Why a session ended: the gateway's reason codes in the words staff read; a code
# not listed is shown as it is.
SESSION_END_TEXT: Mapping[str, str] = gateway.REASON_WORDS
# Why a certificate was revoked (certs.REVOCATION_REASONS, the CRL's reason codes).
REVOCATION_TEXT: Mapping[str, str] = {
    "cessation_of_operation": "账号注销",
    "superseded": "已补发新证书",
    "key_compromise": "私钥泄露",
    "affiliation_changed": "单位信息变更",
    "unspecified": "未说明原因",
}


# A change an account page offers: its words and the statuses it applies to.
Action = ChangeAction

ACTIONS: Mapping[str, Action] = {
    a.name: a
    for a in (
        Action(
            "suspend",
            "暂停账号",
            "暂停后该账号不能登录，正在进行的专网会话将在数秒内断开。可随时恢复。",
            ("active",),
        ),
        Action("resume", "恢复账号", "恢复后该账号可以重新登录专网。", ("suspended",)),
        Action(
            "cancel",
            "注销账号",
            "注销不可撤销：账号永久停用，其证书全部吊销并列入证书吊销列表，"
            "正在进行的会话将被断开。单位如需继续使用须重新开设账号。",
            ("active", "suspended"),
            grave=True,
        ),
        Action(
            "reset-password",
            "重置密码",
            "生成新的初始密码（仅在下一页显示一次），旧密码立即失效，同时解除登录锁定。",
            ("active", "suspended"),
        ),
        Action(
            "reset-otp",
            "重置动态口令",
            "生成新的动态口令密钥，二维码仅在下一页显示一次；单位原有的动态口令立即失效。",
            ("active", "suspended"),
        ),
        Action(
            "reissue-cert",
            "补发证书",
            "吊销该账号现有的客户端证书（列入证书吊销列表）并签发新证书，"
            "新证书包仅在下一页提供一次下载；正在进行的会话将被断开。",
            ("active", "suspended"),
            grave=True,
        ),
        Action(
            "unlock",
            "解除锁定",
            "清除连续登录失败次数及临时或永久锁定，账号可以立即重新登录。",
            ("active", "suspended"),
        ),
    )
}

# The workflow's refusal codes, in words for the carrier.
REFUSALS: Mapping[str, str] = {
    "unknown-account": "该账号不存在。",
    "unit-unregistered": "该单位尚未在社保经办机构登记，请先由经办机构登记并审核通过网上申报。",
    "unit-unapproved": "该单位已登记，但尚未审核通过网上申报，暂不能开设专网账号。",
    "region-mismatch": "账号中的地区代码与该单位登记的地区不一致，请核对账号。",
    "account-exists": "该账号已存在，不能重复开设。",
    "bad-transition": "账号当前的状态不允许此操作，请刷新账号页面后再试。",
    "account-cancelled": "该账号已注销，不能再办理此业务；如需继续使用，请为该单位开设新账号。",
    "not-locked": "该账号当前没有被锁定，无需解除锁定。",
}


def when(ts: float | None) -> str:
    """Epoch seconds as Beijing time with its offset; ``—`` for none."""
    return shown(ts, offset=True)


def check_reason(text: str) -> str:
    """The problem with a reason the carrier typed, in Chinese; empty if none."""
    return reason_problem(text, max_chars=MAX_REASON)


def refusal_text(refusal: ProvisioningRefused) -> str:
    return REFUSALS.get(refusal.reason, "该操作未被允许。")


def _handed_out(issued: Issued) -> dict[str, Any]:
    """What the one-time page shows of *issued*: secrets, the QR, the zip link."""
    files = issued.files
    return {
        "account": issued.account,
        "password": issued.password or "",
        "p12_passphrase": issued.p12_passphrase or "",
        "serial": issued.certificate_serial or "",
        "bundle": "client.p12" in files,
        **one_time_files(
            files, zipped=bundle_zip(issued.account, files), zip_name=f"{issued.account}.zip"
        ),
    }


def accounts_section(provisioner: Provisioner) -> web.ConsoleSection:
    """The carriers' account pages (see the module docstring) as a console section."""
    pages = AccountPages(provisioner)
    account_path = f"{ACCOUNTS}/<acct:account>"
    return web.ConsoleSection(
        path=ACCOUNTS,
        title="专网账号",
        roles=ROLES,
        routes=(
            web.Route("GET", ACCOUNTS, ROLES, pages.search),
            web.Route("GET", f"{ACCOUNTS}/open", ROLES, pages.open_page),
            web.Route("POST", f"{ACCOUNTS}/open", ROLES, pages.open_account),
            web.Route("GET", account_path, ROLES, pages.show),
            *(
                route
                for action in ACTIONS.values()
                for route in (
                    web.Route("GET", f"{account_path}/{action.name}", ROLES, pages.confirm(action)),
                    web.Route(
                        "POST", f"{account_path}/{action.name}", ROLES, pages.perform(action)
                    ),
                )
            ),
        ),
        templates=PackageLoader("provisioning", "templates"),
        converters={"acct": _ACCOUNT},
    )


class AccountPages(ConfirmedChanges):
    """The handlers of :func:`accounts_section` over one :class:`Provisioner`."""

    param = "account"
    base = ACCOUNTS
    unknown = "unknown-account"
    refused = ProvisioningRefused
    max_reason = MAX_REASON

    def __init__(self, provisioner: Provisioner) -> None:
        self._provisioner = provisioner

    def _acting(self, ctx: StaffCtx) -> Provisioner:
        return self._provisioner.acting_as(ctx.staff.audit_actor, session_ref=ctx.session_ref)

    def _page(
        self, ctx: StaffCtx, template: str, title: str, status: int = 200, **values: Any
    ) -> Response:
        return ctx.page(
            f"accounts/{template}",
            status,
            title=title,
            current=ACCOUNTS,
            when=when,
            status_text=STATUS_TEXT,
            max_reason=MAX_REASON,
            **values,
        )

    def _missing(self, ctx: StaffCtx, account: str) -> Response:
        message = f"账号 {account} 不存在。"
        return self._page(ctx, "missing.html", "账号不存在", 404, message=message)

    def _known_name(self, account: str) -> bool:
        try:
            self._provisioner.parse(account)
        except ProvisioningInputError:
            return False
        return True

    def _name_help(self) -> str:
        settings = self._provisioner.settings
        region = settings.regions[0] if settings.regions else "330682"
        realm = settings.realms[0] if settings.realms else "sxlss"
        return (
            "账号格式不正确：应为 6 位地区代码 + 8 位单位社保编号 + @ + 域，"
            f"如 {region}12345678@{realm}；可用地区代码：{'、'.join(settings.regions)}；"
            f"可用域：{'、'.join(settings.realms)}。"
        )

    # -- search and show ---------------------------------------------------------------

    async def search(self, ctx: StaffCtx) -> Response:
        account = ctx.query.get("account", "").strip()[:MAX_SEARCH]
        unit = ctx.query.get("unit", "").strip()[:MAX_SEARCH]
        status = ctx.query.get("status", "")
        error = ""
        if status and status not in ACCOUNT_STATUSES:
            error, status = "请选择有效的账号状态。", ""
        elif unit and not (unit.isascii() and unit.isdigit()):
            error, unit = "单位编号应为 8 位数字。", ""
        rows: list[auth.AccountRecord] = []
        if not error:
            rows = await ctx.runner.call(
                self._provisioner.search, account=account, unit=unit, status=status or None
            )
        return self._page(
            ctx,
            "search.html",
            "专网账号",
            400 if error else 200,
            rows=rows,
            error=error,
            q_account=account,
            q_unit=unit,
            q_status=status,
            statuses=ACCOUNT_STATUSES,
            limit=SEARCH_LIMIT,
        )

    async def show(self, ctx: StaffCtx, account: str) -> Response:
        if not self._known_name(account):
            return self._missing(ctx, account)
        try:
            view: AccountView = await ctx.runner.call(self._provisioner.show, account)
        except ProvisioningRefused:
            return self._missing(ctx, account)
        status = view.account.status
        done = ACTIONS.get(ctx.query.get("done", ""))
        c = view.credential
        return self._page(
            ctx,
            "account.html",
            f"专网账号 {account}",
            view=view,
            lockout=lockout_text(view.credential, ctx.now),
            locked=c is not None and (c.is_locked(ctx.now) or c.consecutive_failures > 0),
            actions=[a for a in ACTIONS.values() if status in a.statuses],
            notice=f"已{done.title}。" if done is not None else "",
            cert_status=CERT_STATUS_TEXT,
            revocation_text=REVOCATION_TEXT,
            session_status=SESSION_STATUS_TEXT,
            end_text=SESSION_END_TEXT,
        )

    # -- open --------------------------------------------------------------------------

    def _open_form(
        self,
        ctx: StaffCtx,
        *,
        account: str = "",
        reason: str = "",
        error: str = "",
        field_errors: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        settings = self._provisioner.settings
        return self._page(
            ctx,
            "open.html",
            "开设专网账号",
            status,
            form_account=account,
            form_reason=reason,
            error=error,
            field_errors=dict(field_errors or {}),
            realms=settings.realms,
            regions=settings.regions,
        )

    async def open_page(self, ctx: StaffCtx) -> Response:
        return self._open_form(ctx, account=ctx.query.get("account", "").strip()[:MAX_SEARCH])

    async def open_account(self, ctx: StaffCtx) -> Response:
        account = ctx.form.get("account", "").strip()
        reason = ctx.form.get("reason", "").strip()
        errors: dict[str, str] = {}
        if not account:
            errors["account"] = "请填写账号。"
        elif not self._known_name(account):
            errors["account"] = self._name_help()
        problem = check_reason(reason)
        if problem:
            errors["reason"] = problem
        if errors:
            return self._open_form(
                ctx,
                account=account[:MAX_SEARCH],
                reason=reason[:MAX_REASON],
                error="请按提示修改后再提交。",
                field_errors=errors,
                status=400,
            )
        try:
            issued: Issued = await ctx.runner.call(self._acting(ctx).open, account, reason=reason)
        except ProvisioningRefused as refusal:
            return self._open_form(
                ctx,
                account=account,
                reason=reason,
                error=f"未能开设：{refusal_text(refusal)}",
                status=409,
            )
        return self._page(
            ctx,
            "issued.html",
            f"已开设专网账号 {issued.account}",
            done="账号已开设。",
            **_handed_out(issued),
        )

    # -- the other actions: a confirmation with a reason, then the workflow -------------

    def _known(self, subject: str) -> bool:
        return self._known_name(subject)

    async def _change(self, ctx: StaffCtx, action: ChangeAction, subject: str, reason: str) -> Any:
        return await ctx.runner.call(run_action, self._acting(ctx), action.name, subject, reason)

    def _one_time_values(self, result: Any) -> dict[str, Any] | None:
        return _handed_out(result) if isinstance(result, Issued) else None

    def _refusal_text(self, refusal: Any) -> str:
        return refusal_text(refusal)


def run_action(  # noqa: PLR0911 - one case per action
    p: Provisioner, action: str, account: str, reason: str
) -> object:
    """*action* as one call of the workflow the command line makes (blocking)."""
    match action:
        case "suspend":
            return p.suspend(account, reason=reason)
        case "resume":
            return p.resume(account, reason=reason)
        case "cancel":
            return p.cancel(account, reason=reason)
        case "reset-password":
            return p.reset_password(account, reason=reason)
        case "reset-otp":
            return p.reset_otp(account, reason=reason)
        case "reissue-cert":
            return p.reissue_cert(account, reason=reason)
        case "unlock":
            return p.unlock(account, reason=reason)
    raise ValueError(f"no account action {action!r}")
