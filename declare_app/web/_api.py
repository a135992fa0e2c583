"""The JSON API under ``/api/v1/`` (documented in ``docs/api.md``).

The same operations as the pages, for the employers' HR software that reaches the
service through the same tunnel.  Errors are ``{"error": code, "message": 中文,
"findings": [...]}`` with the HTTP status saying what kind of error it is.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from declare_app._rules import FORM_SPECS, FieldSpec, FormSpec
from declare_app.interfaces import Declaration, DeclarationType, Finding
from declare_app.web._app import JSON, Ctx, HttpError, Response, plain_json, status_param
from declare_app.web._input import INPUT_RULE, payload_from_json
from declare_app.web._views import fmt_time as _fmt_time

MAX_LIST = 200


def json_response(
    status: int, value: Any, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> Response:
    body = json.dumps(plain_json(value), ensure_ascii=False, allow_nan=False, indent=None)
    return Response(status, body.encode("utf-8") + b"\n", JSON, headers)


def finding_json(f: Finding) -> dict[str, str]:
    return {"rule": f.rule, "field": f.field, "severity": f.severity, "message": f.message}


def error_json(code: str, message: str, findings: tuple[Finding, ...] = ()) -> dict[str, Any]:
    return {"error": code, "message": message, "findings": [finding_json(f) for f in findings]}


def _iso(ts: float | None) -> str | None:
    text = _fmt_time(ts, seconds=True)
    return text.replace(" ", "T") + "+08:00" if text else None


def declaration_json(d: Declaration) -> dict[str, Any]:
    return {
        "id": d.id,
        "unit_code": d.unit_code,
        "type": d.type.value,
        "type_name": d.type.chinese,
        "status": d.status.value,
        "status_name": d.status.chinese,
        "version": d.version,
        "previous_id": d.previous_id,
        "payload": plain_json(d.payload),
        "findings": [finding_json(f) for f in d.findings],
        "created_at": _iso(d.created_at),
        "created_session": d.created_session,
        "submitted_at": _iso(d.submitted_at),
        "decided_at": _iso(d.decided_at),
        "return_code": d.return_code,
        "return_text": d.return_text,
        "voucher_no": d.voucher_no,
        "result": plain_json(d.result),
        "history": plain_json(list(d.history)),
    }


def _field_json(f: FieldSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": f.name,
        "label": f.label,
        "kind": f.kind.value,
        "required": f.required,
        "max_length": f.max_length,
    }
    if f.choices:
        out["choices"] = [{"value": c.value, "label": c.label} for c in f.choices]
    if f.hint:
        out["hint"] = f.hint
    if f.columns:
        out["columns"] = [_field_json(c) for c in f.columns]
        out["max_lines"] = f.max_lines
    return out


def spec_json(spec: FormSpec) -> dict[str, Any]:
    return {
        "type": spec.type.value,
        "name": spec.title,
        "intro": spec.intro,
        "sections": [
            {"title": s.title, "fields": [_field_json(f) for f in s.fields]} for s in spec.sections
        ],
    }


# -- body checks -------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> HttpError:
    return HttpError(
        422, "invalid-input", "请求内容有误", (Finding(INPUT_RULE, field, "error", message),)
    )


def _body(ctx: Ctx, allowed: tuple[str, ...], *, optional: bool = False) -> dict[str, Any]:
    """The JSON body as an object with only *allowed* keys (an empty body is ``{}``
    where *optional*)."""
    if not ctx.has_json:
        if optional:
            return {}
        raise HttpError(400, "empty-body", "请求内容为空，应为 JSON 对象")
    value = ctx.json
    if not isinstance(value, dict):
        raise _invalid("", "请求内容应为 JSON 对象")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        shown = unknown[0] if len(unknown[0]) <= 40 else unknown[0][:40] + "…"
        raise _invalid(shown, "未知字段")
    return value


def _type_of(body: dict[str, Any]) -> FormSpec:
    value = body.get("type")
    if not isinstance(value, str):
        raise _invalid("type", "应为申报类型，如 person-add")
    for t in DeclarationType:
        if t.value == value:
            return FORM_SPECS[t]
    raise _invalid("type", "没有这种申报类型")


def _payload(spec: FormSpec, body: dict[str, Any]) -> dict[str, Any]:
    if "payload" not in body:
        raise _invalid("payload", "缺少 payload")
    parsed = payload_from_json(spec, body["payload"])
    if not parsed.ok:
        raise HttpError(422, "invalid-input", "请求内容有误", parsed.errors)
    return parsed.payload


def _created(d: Declaration) -> Response:
    location = f"/api/v1/declarations/{quote(d.id, safe='')}".encode()
    return json_response(201, declaration_json(d), ((b"Location", location),))


# -- handlers ------------------------------------------------------------------------------------


async def whoami(ctx: Ctx) -> Response:
    i = ctx.identity
    return json_response(
        200,
        {
            "account": i.account,
            "unit_code": i.unit_code,
            "session_id": i.session_id,
            "source": f"{i.source_host}:{i.source_port}",
            "csrf_token": ctx.csrf_token,
        },
    )


async def types(ctx: Ctx) -> Response:
    return json_response(200, {"types": [spec_json(s) for s in FORM_SPECS.values()]})


async def list_declarations(ctx: Ctx) -> Response:
    limit_text = ctx.query_value("limit")
    limit = MAX_LIST
    if limit_text not in (None, ""):
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIST:
            raise HttpError(400, "bad-limit", f"limit 应为 1 到 {MAX_LIST} 的整数")
        limit = int(limit_text)
    decls: list[Declaration] = await ctx.run(
        ctx.app.workflow.list, ctx.actor, status=status_param(ctx), limit=limit
    )
    return json_response(200, {"declarations": [declaration_json(d) for d in decls]})


async def create(ctx: Ctx) -> Response:
    body = _body(ctx, ("type", "payload"))
    spec = _type_of(body)
    payload = _payload(spec, body)
    d: Declaration = await ctx.run(
        ctx.app.workflow.create_draft, ctx.actor, spec.type, payload, now=ctx.now()
    )
    return _created(d)


async def preview(ctx: Ctx) -> Response:
    body = _body(ctx, ("type", "payload"))
    spec = _type_of(body)
    payload = _payload(spec, body)
    normalised, findings = await ctx.run(
        ctx.app.workflow.preview, ctx.actor, spec.type, payload, now=ctx.now()
    )
    findings = tuple(findings)
    return json_response(
        200,
        {
            "type": spec.type.value,
            "payload": plain_json(normalised),
            "findings": [finding_json(f) for f in findings],
            "ok": not any(f.severity == "error" for f in findings),
        },
    )


async def get(ctx: Ctx, id: str) -> Response:
    d: Declaration = await ctx.run(ctx.app.workflow.get, ctx.actor, id)
    return json_response(200, declaration_json(d))


async def update(ctx: Ctx, id: str) -> Response:
    body = _body(ctx, ("payload",))
    current: Declaration = await ctx.run(ctx.app.workflow.get, ctx.actor, id)
    payload = _payload(FORM_SPECS[current.type], body)
    d: Declaration = await ctx.run(
        ctx.app.workflow.update_draft, ctx.actor, id, payload, now=ctx.now()
    )
    return json_response(200, declaration_json(d))


async def submit(ctx: Ctx, id: str) -> Response:
    _body(ctx, (), optional=True)
    d: Declaration = await ctx.run(ctx.app.workflow.submit, ctx.actor, id, now=ctx.now())
    return json_response(200, declaration_json(d))


async def withdraw(ctx: Ctx, id: str) -> Response:
    _body(ctx, (), optional=True)
    d: Declaration = await ctx.run(ctx.app.workflow.withdraw, ctx.actor, id, now=ctx.now())
    return json_response(200, declaration_json(d))


async def resubmit(ctx: Ctx, id: str) -> Response:
    body = _body(ctx, ("payload",))
    current: Declaration = await ctx.run(ctx.app.workflow.get, ctx.actor, id)
    payload = _payload(FORM_SPECS[current.type], body)
    d: Declaration = await ctx.run(ctx.app.workflow.resubmit, ctx.actor, id, payload, now=ctx.now())
    return _created(d)
