"""Console changes made after a confirmation, and the page that hands secrets out once.

The carriers' account pages and the administrators' staff pages change one named thing
(an account, a staff member) the same way: a ``GET …/<action>`` confirmation asking
for a reason, a ``POST`` the same path that checks the reason and calls the workflow
the command line calls, then either back to the thing's page (``?done=<action>``), or
a one-time page with what the change handed out (a password, an OTP QR code, a zip of
files as a ``data:`` link, so no secret is kept on the server for a second view).

:class:`ConfirmedChanges` holds that flow; a section subclasses it with its words, its
workflow call and its pages.  The confirmation's HTML is the ``confirm_change`` macro
and the one-time page's parts are ``one_time_qr`` and ``one_time_download`` in
``console/_changes.html``.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from web._answers import Response, see_other
from web._console import ConsoleHandler, StaffCtx
from web._decode import note_problem
from web._time import shown

if TYPE_CHECKING:
    from auth import CredentialState


@dataclass(frozen=True)
class ChangeAction:
    """A change a page offers: its words and the statuses it applies to."""

    name: str
    title: str
    explain: str
    statuses: tuple[str, ...]
    grave: bool = False


class Refusal(Protocol):
    """A workflow's refusal: ``reason`` is its audit code."""

    reason: str


def reason_problem(text: str, *, max_chars: int) -> str:
    """The problem with a reason a staff member typed, in Chinese; empty if none."""
    if not text:
        return "请填写办理原因（将记入审计日志）。"
    problem = note_problem(text, what="办理原因", max_chars=max_chars)
    return f"{problem}。" if problem else ""


def lockout_text(credential: CredentialState | None, now: float) -> str:
    """A principal's lockout as the staff pages show it (an account, a staff member):
    when a temporary lock ends, in Beijing time with the offset; ``—`` for none."""
    c = credential
    if c is None:
        return "—"
    if c.hard_locked:
        return (
            f"已永久锁定（连续失败 {c.consecutive_failures} 次，累计 {c.total_failures} 次），"
            "须解除锁定或重置密码"
        )
    if c.locked_until_at is not None and c.locked_until_at > now:
        until = shown(c.locked_until_at, offset=True)
        return f"临时锁定至 {until}（连续失败 {c.consecutive_failures} 次）"
    if c.consecutive_failures:
        return f"未锁定（连续失败 {c.consecutive_failures} 次）"
    return "未锁定"


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def one_time_files(files: Mapping[str, bytes], *, zipped: bytes, zip_name: str) -> dict[str, Any]:
    """The one-time page's values for *files*: the OTP QR (``otp-qr.png``) and the zip
    link (*zipped*, their zip, offered as *zip_name*) — empty when there are none."""
    qr = files.get("otp-qr.png")
    return {
        "qr": data_url("image/png", qr) if qr is not None else "",
        "zip": data_url("application/zip", zipped) if files else "",
        "zip_name": zip_name,
        "zip_files": sorted(files),
    }


class ConfirmedChanges(ABC):
    """The confirmation (:meth:`confirm`) and the change (:meth:`perform`) of each
    :class:`ChangeAction` on things named in the path by :attr:`param` and shown at
    ``{base}/<name>``."""

    param: str  # the route's parameter and the templates' name for the thing
    base: str  # the path of the things' pages
    unknown: str  # the refusal reason that means "no such thing" (a 404)
    refused: type[Exception]  # the workflow's refusal (a :class:`Refusal`)
    input_errors: tuple[type[Exception], ...] = ()  # checked before: a 400 if it slips
    max_reason: int = 200

    @abstractmethod
    def _page(
        self, ctx: StaffCtx, template: str, title: str, status: int = 200, **values: Any
    ) -> Response: ...

    @abstractmethod
    def _missing(self, ctx: StaffCtx, subject: str) -> Response: ...

    @abstractmethod
    async def _change(self, ctx: StaffCtx, action: ChangeAction, subject: str, reason: str) -> Any:
        """Make the change (the workflow, through ``ctx.runner.call``); its result."""

    @abstractmethod
    def _one_time_values(self, result: Any) -> dict[str, Any] | None:
        """The one-time page's values when *result* hands something out, else None."""

    @abstractmethod
    def _refusal_text(self, refusal: Any) -> str: ...

    def _known(self, subject: str) -> bool:
        """Whether *subject* can name a thing at all (else the page's own 404)."""
        return True

    def _confirm_page(
        self,
        ctx: StaffCtx,
        subject: str,
        action: ChangeAction,
        *,
        reason: str = "",
        error: str = "",
        field_error: str = "",
        status: int = 200,
    ) -> Response:
        values: dict[str, Any] = {self.param: subject}
        return self._page(
            ctx,
            "confirm.html",
            f"{action.title}：{subject}",
            status,
            action=action,
            form_reason=reason,
            error=error,
            field_error=field_error,
            **values,
        )

    def confirm(self, action: ChangeAction) -> ConsoleHandler:
        async def get(ctx: StaffCtx, **params: str) -> Response:
            subject = params[self.param]
            if not self._known(subject):
                return self._missing(ctx, subject)
            return self._confirm_page(ctx, subject, action)

        get.__name__ = f"confirm_{action.name.replace('-', '_')}"
        return get

    def perform(self, action: ChangeAction) -> ConsoleHandler:
        async def post(ctx: StaffCtx, **params: str) -> Response:
            return await self._perform(ctx, action, params[self.param])

        post.__name__ = action.name.replace("-", "_")
        return post

    async def _perform(  # noqa: PLR0911 - one answer per outcome
        self, ctx: StaffCtx, action: ChangeAction, subject: str
    ) -> Response:
        if not self._known(subject):
            return self._missing(ctx, subject)
        reason = ctx.form.get("reason", "").strip()
        problem = reason_problem(reason, max_chars=self.max_reason)
        if problem:
            return self._confirm_page(
                ctx,
                subject,
                action,
                reason=reason[: self.max_reason],
                error="请按提示修改后再确认。",
                field_error=problem,
                status=400,
            )
        try:
            result = await self._change(ctx, action, subject, reason)
        except self.refused as refusal:
            if getattr(refusal, "reason", "") == self.unknown:
                return self._missing(ctx, subject)
            return self._confirm_page(
                ctx,
                subject,
                action,
                reason=reason,
                error=f"未能办理：{self._refusal_text(refusal)}",
                status=409,
            )
        except self.input_errors:
            # The name fits the route and the reason passed its check: not reached
            # unless the two rules drift apart; a 400, never a 500.
            return self._confirm_page(
                ctx,
                subject,
                action,
                reason=reason[: self.max_reason],
                error="请按提示修改后再确认。",
                status=400,
            )
        handed_out = self._one_time_values(result)
        if handed_out is not None:
            return self._page(
                ctx,
                "issued.html",
                f"{action.title}：{subject}",
                done=f"已{action.title}。",
                **handed_out,
            )
        return see_other(f"{self.base}/{subject}?done={action.name}")
