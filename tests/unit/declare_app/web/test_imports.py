"""Batch import pages and API in memory: multipart upload with the CSRF token, the
per-line result page and its CSV, the templates, the bigger body limit on the import
routes only, and the import run on the runner (never the reactor)."""

from __future__ import annotations

import base64
import json
import re

from declare_app._batch import template_rows
from declare_app.interfaces import DeclarationType, Status
from declare_app.web.testing import (
    ALICE,
    CSRF_KEY,
    PERSON,
    GuardedClient,
    HttpResponse,
    MemoryWorkflow,
    SynchronousRunner,
    csrf_for,
)

BOUNDARY = "----ssgate-test-boundary"


def multipart(fields: dict[str, str], file: bytes | None, filename: str = "a.csv") -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    if file is not None:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: text/csv\r\n\r\n".encode()
            + file
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def upload(
    client: GuardedClient, path: str, file: bytes | None, *, token: str | None = "auto", **more: str
) -> HttpResponse:
    fields = dict(more)
    if token is not None:
        fields["csrf_token"] = csrf_for(ALICE, CSRF_KEY) if token == "auto" else token
    return client.request(
        "POST",
        path,
        body=multipart(fields, file),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


def person_csv(good: int, bad: int) -> bytes:
    header, _ = template_rows(DeclarationType.PERSON_ADD)
    names = ["姓名", "公民身份号码", "人员身份", "本单位入职日期", "参保险种", "增员类型",
             "参保（开始缴费）年月", "月缴费工资（基数）"]  # fmt: skip
    assert set(names) <= set(header)
    rows = [",".join(names)]
    line = [PERSON[k] for k in ("name", "id_number", "staff_kind", "hire_date")]
    rest = ["110 210 310 410 510", PERSON["add_type"], PERSON["start_month"], "6000"]
    rows += [",".join([*line, *rest])] * good
    rows += [",".join(["", *line[1:], *rest])] * bad  # no name
    return "\r\n".join(rows).encode("gb18030")


def test_the_person_add_form_links_to_the_import_and_the_templates(client: GuardedClient) -> None:
    page = client.get("/declarations/new/person-add").text
    assert 'href="/declarations/new/person-add/import"' in page
    assert 'href="/declarations/new/person-add/template.xlsx"' in page
    form = client.get("/declarations/new/annual-base/import")
    assert form.status == 200 and 'enctype="multipart/form-data"' in form.text
    assert 'name="csrf_token"' in form.text and 'name="year"' in form.text
    assert client.get("/declarations/new/unit-change/import").status == 404


def test_templates_download_as_xlsx_and_csv(client: GuardedClient) -> None:
    xlsx = client.get("/declarations/new/person-add/template.xlsx")
    assert xlsx.status == 200 and xlsx.body.startswith(b"PK")
    assert b"attachment" in xlsx.headers[b"content-disposition"]
    text = client.get("/declarations/new/annual-base/template.csv").body.decode("utf-8-sig")
    assert text.splitlines()[0] == "个人编号,姓名,公民身份号码,上年度月平均工资"


def test_an_upload_lists_every_line_and_stores_one_draft_of_the_good_ones(
    client: GuardedClient, workflow: MemoryWorkflow, runner: SynchronousRunner
) -> None:
    reply = upload(client, "/declarations/new/person-add/import", person_csv(3, 2))
    assert reply.status == 200, reply.text
    assert re.search(r'id="accepted">3<', reply.text) and re.search(r'id="refused">2<', reply.text)
    assert reply.text.count("<td>拒绝</td>") == 2 and "请填写" in reply.text
    assert runner.calls == ["recording_refusals"]  # and the workflow refuses calls off the pool
    (draft,) = workflow.declarations.values()
    assert draft.status is Status.DRAFT and len(draft.payload["lines"]) == 3
    assert f'href="/declarations/{draft.id}"' in reply.text
    link = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', reply.text)
    assert link is not None
    csv_text = base64.b64decode(link.group(1)).decode("utf-8-sig")
    assert csv_text.splitlines()[0] == "行号,结果,公民身份号码,姓名,说明"
    assert [row.split(",")[1] for row in csv_text.splitlines()[1:]] == ["接受"] * 3 + ["拒绝"] * 2


def test_nothing_acceptable_is_422_and_nothing_stored(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    reply = upload(client, "/declarations/new/person-add/import", person_csv(0, 2))
    assert reply.status == 422 and "未保存任何内容" in reply.text
    assert not workflow.declarations


def test_an_unreadable_file_is_a_message_not_a_500(client: GuardedClient) -> None:
    reply = upload(client, "/declarations/new/person-add/import", b"\x00\x01binary")
    assert reply.status == 422
    reply = upload(client, "/declarations/new/person-add/import", None)
    assert reply.status == 422 and "请选择" in reply.text


def test_an_upload_needs_the_csrf_token(client: GuardedClient, workflow: MemoryWorkflow) -> None:
    reply = upload(client, "/declarations/new/person-add/import", person_csv(1, 0), token=None)
    assert reply.status == 403
    reply = upload(client, "/declarations/new/person-add/import", person_csv(1, 0), token="x")
    assert reply.status == 403 and not workflow.declarations


def test_multipart_is_refused_on_other_routes(client: GuardedClient) -> None:
    reply = upload(client, "/declarations/new/person-add", person_csv(1, 0))
    assert reply.status == 415


def test_the_import_route_takes_a_file_over_1_mib_other_routes_do_not(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    long_line = b"\r\n" + "长".encode("gb18030") * 300 + b",1,2,3,4,5,6,7"  # refused lines
    big = person_csv(1, 0) + long_line * 2_500
    assert len(big) > 1024 * 1024
    assert upload(client, "/declarations/new/person-add/import", big).status == 200
    too_big = person_csv(1, 0) + b"\r\n" * (9 * 1024 * 1024)
    assert upload(client, "/declarations/new/person-add/import", too_big).status == 413
    reply = client.request(
        "POST",
        "/declarations/new/person-add",
        body=b"a=" + b"x" * 1_200_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 413


def test_the_api_import_answers_json_per_line_and_csv_on_request(
    client: GuardedClient, workflow: MemoryWorkflow
) -> None:
    reply = upload(client, "/api/v1/declarations/import?type=person-add", person_csv(2, 1))
    assert reply.status == 201, reply.text
    body = json.loads(reply.body)
    assert (body["accepted"], body["refused"], body["status"]) == (2, 1, "draft")
    assert [(x["line"], x["accepted"]) for x in body["lines"]] == [(2, True), (3, True), (4, False)]
    assert reply.headers[b"location"] == f"/api/v1/declarations/{body['id']}".encode()
    as_csv = upload(client, "/api/v1/declarations/import?type=person-add&format=csv",
                    person_csv(1, 1))  # fmt: skip
    assert as_csv.status == 201 and as_csv.body.decode("utf-8-sig").startswith("行号,结果")
    refused = upload(client, "/api/v1/declarations/import?type=person-add", person_csv(0, 1))
    assert refused.status == 422 and json.loads(refused.body)["error"] == "batch-refused"
    bad_type = upload(client, "/api/v1/declarations/import?type=unit-change", person_csv(1, 0))
    assert bad_type.status == 404
