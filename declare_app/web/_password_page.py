"""密码修改: the channel account changes its own password (old password + current code).

The change itself is :meth:`auth.Authenticator.change_password` (injected as
:class:`ChangePassword`): a full login with the old password and a fresh TOTP code —
replay guard, lockout and source throttling included — then the new hash.  It hashes
with argon2, so it runs on the runner's *login* pool (``runner.call``), never on the
reactor and never on the database pool.

The answer never says which factor was wrong, nor whether the account is locked:
every refusal after the form checks reads the same.  The form checks (fields present,
the code six digits, the new password twice the same, strong, different from the
old) come first and cost no login attempt.  Every post is one audit event
``declare.password-change`` (outcome ``ok`` or ``refused``, the authenticator's
reason for the officers — never a password or code), written on the database pool.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

import audit
from auth import AuthOutcome, WeakPasswordError, check_password_strength
from declare_app._declarations import _audit_actor, _bounded
from declare_app.interfaces import Actor, Finding
from declare_app.web._app import Ctx, HttpError, Response

AUDIT_ACTION = "declare.password-change"
FIELDS = ("old_password", "new_password", "new_password_again", "otp")
MAX_PASSWORD_INPUT = 256  # longer than any acceptable password; longer input is refused

STRENGTH_RULE = "新密码至少10位，且须包含小写字母、大写字母、数字、符号中的至少三类"
REFUSED_MESSAGE = (
    "原密码或动态口令不正确，或账号暂时不能修改密码，密码未修改。"
    "请核对后重试；连续多次失败将锁定账号。"
)
DONE_MESSAGE = "密码已修改。下次登录安全专网时请使用新密码；当前会话不受影响。"
_RULE = "V-PWD"


def _error(field: str, message: str) -> Finding:
    return Finding(_RULE, field, "error", message)


def check_password_form(values: dict[str, str]) -> tuple[Finding, ...]:
    """The form's own checks (no login attempt): each problem beside its field."""
    errors: list[Finding] = []
    for name, label in (("old_password", "原密码"), ("new_password", "新密码")):
        if not values[name]:
            errors.append(_error(name, f"请输入{label}"))
        elif len(values[name]) > MAX_PASSWORD_INPUT:
            errors.append(_error(name, f"{label}过长"))
    otp = values["otp"]
    if not otp:
        errors.append(_error("otp", "请输入动态口令"))
    elif not (otp.isascii() and otp.isdigit() and len(otp) == 6):
        errors.append(_error("otp", "动态口令应为6位数字"))
    new, again = values["new_password"], values["new_password_again"]
    if new and len(new) <= MAX_PASSWORD_INPUT:
        if check_password_strength(new) is not None:
            errors.append(_error("new_password", STRENGTH_RULE))
        elif new == values["old_password"]:
            errors.append(_error("new_password", "新密码不能与原密码相同"))
    if not again:
        errors.append(_error("new_password_again", "请再次输入新密码"))
    elif new and again != new:
        errors.append(_error("new_password_again", "两次输入的新密码不一致"))
    return tuple(errors)


def record_password_change(
    conn: Connection | None, actor: Actor, *, outcome: str, reason: str, now: float
) -> None:
    """The audit event of one password-change post (on the database pool)."""
    if conn is None:  # the fakes' runner has no database
        return
    audit.append(
        conn,
        audit.AuditEvent(
            at=now,
            actor=_audit_actor(actor),
            action=AUDIT_ACTION,
            subject=_bounded(actor.name or "-", 255) or "-",
            outcome=outcome,
            reason=_bounded(reason, 1000),
            unit=_bounded(actor.unit_code or "", 64),
            session_id=_bounded(actor.session_id or "", 128),
            details={},
        ),
    )


def _form(
    ctx: Ctx,
    *,
    status: int = 200,
    errors: tuple[Finding, ...] = (),
    notice: str = "",
    done: bool = False,
) -> Response:
    by_field: dict[str, list[str]] = {name: [] for name in FIELDS}
    general: list[str] = []
    for f in errors:
        by_field.get(f.field, general).append(f.message)
    return ctx.page(
        "password.html",
        status,
        field_errors=by_field,
        general_errors=general,
        notice=notice,
        done=done,
        done_message=DONE_MESSAGE,
        strength_rule=STRENGTH_RULE,
        available=ctx.app.change_password is not None,
    )


async def password_form(ctx: Ctx) -> Response:
    return _form(ctx)


async def password_post(ctx: Ctx) -> Response:
    change = ctx.app.change_password
    if change is None:
        raise HttpError(501, "not-yet", "密码修改暂未开放网上办理，请到经办机构窗口办理。")
    values = {name: ctx.form_value(name) for name in FIELDS}
    values["otp"] = values["otp"].strip().replace(" ", "")
    errors = check_password_form(values)
    now = ctx.now()
    if errors:
        fields = ",".join(sorted({f.field for f in errors}))
        await ctx.app.runner.run(
            record_password_change,
            ctx.actor,
            outcome="refused",
            reason=f"invalid: {fields}",
            now=now,
        )
        return _form(ctx, status=422, errors=errors)
    try:
        result: Any = await ctx.app.login_runner().call(
            change,
            ctx.identity.account,
            values["old_password"],
            values["otp"],
            values["new_password"],
            source=ctx.identity.source_host,
            now=now,
        )
    except WeakPasswordError:  # the form's check is the same rule; kept as a backstop
        await ctx.app.runner.run(
            record_password_change, ctx.actor, outcome="refused", reason="weak-password", now=now
        )
        return _form(ctx, status=422, errors=(_error("new_password", STRENGTH_RULE),))
    outcome: AuthOutcome = result
    await ctx.app.runner.run(
        record_password_change,
        ctx.actor,
        outcome="ok" if outcome.ok else "refused",
        reason=outcome.reason,
        now=now,
    )
    if outcome.ok:
        return _form(ctx, done=True)
    return _form(ctx, status=422, notice=REFUSED_MESSAGE)
