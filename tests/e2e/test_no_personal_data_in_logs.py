"""Issue 11, acceptance 6: no ID number, name, 个人编号 or password in any log line.

A real ``ssgate serve`` and a real ``ssgate connect``; through the tunnel the employer
declares a person, previews a wrong ID number, runs queries whose search terms are an
ID number and a name (GET forms, so they travel in the URL), asks for paths that carry
them, changes the channel password, and a second client fails to log in with a wrong
one.  Then every log of the run — the serve process's, both clients', every file in
``STATE/logs/`` (the access log) — is searched for each of those values, as written and
as a log could encode them (JSON ``\\u`` escapes, percent-encoding): zero hits.
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from declare_app._person_id import person_id_check_char

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel

pytestmark = [pytest.mark.slow]

NAME = "欧阳明珠"
OTHER_NAME = "司马青云"
NEW_PASSWORD = "Quiet-Lantern-9173!"
WRONG_PASSWORD = "Wrong-Pass-4402!"


def _id(birth: date, sequence: int) -> str:
    body = f"330682{birth:%Y%m%d}{sequence:03d}"
    return body + person_id_check_char(body)


def _today() -> date:
    return datetime.now(timezone(timedelta(hours=8))).date()


class Browser:
    """Plain HTTP to the local end of the tunnel, as a browser or a script would."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        headers = {"X-CSRF-Token": self.token} if self.token else {}
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def _forms_of(value: str) -> set[str]:
    """*value* as a log line could carry it."""
    return {
        value,
        json.dumps(value)[1:-1],  # \uXXXX for non-ASCII, as JSON log lines escape it
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
    }


def test_no_id_number_name_person_number_or_password_in_any_log(channel: Channel) -> None:
    serve = channel.start()
    account = channel.open_account()
    password = account.password_file.read_text(encoding="utf-8").strip()
    p12_passphrase = account.p12_password_file.read_text(encoding="utf-8").strip()
    client = channel.connect(account)
    _, port = channel.connected(client)
    browser = Browser(port)

    status, body = browser.call("GET", "/api/v1/whoami")
    assert status == 200
    browser.token = json.loads(body)["csrf_token"]

    today = _today()
    id_number = _id(date(1990, 5, 17), 123)
    other_id = _id(date(1988, 11, 2), 456)
    wrong_id = id_number[:-1] + ("0" if id_number[-1] != "0" else "1")
    person = {
        "name": NAME,
        "gender": "1",
        "birth_month": "1990-05",
        "id_type": "01",
        "id_number": id_number,
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "employment_form": "1",
        "hire_date": (today - timedelta(days=3)).isoformat(),
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": f"{today:%Y-%m}",
        "monthly_wage": "6000",
    }
    status, body = browser.call(
        "POST", "/api/v1/declarations", json_body={"type": "person-add", "payload": person}
    )
    assert status == 201, body
    declaration = json.loads(body)
    status, body = browser.call("POST", f"/api/v1/declarations/{declaration['id']}/submit")
    assert status in (200, 422), body
    status, body = browser.call(
        "POST",
        "/api/v1/declarations/preview",
        json_body={
            "type": "person-add",
            "payload": {**person, "name": OTHER_NAME, "id_number": wrong_id},
        },
    )
    assert status == 200 and not json.loads(body)["ok"], body  # the check character

    searches = [
        f"/queries/roster?{urllib.parse.urlencode({'id_number': id_number, 'name': NAME})}",
        f"/queries/changes?{urllib.parse.urlencode({'name': OTHER_NAME})}",
        f"/queries/person-payments?{urllib.parse.urlencode({'id_number': other_id})}",
        f"/api/v1/queries/roster?{urllib.parse.urlencode({'id_number': id_number})}",
        f"/queries/roster.csv?{urllib.parse.urlencode({'name': NAME})}",
    ]
    for path in searches:
        status, _ = browser.call("GET", path)
        assert status in (200, 404, 422), path
    # Paths that carry them (mistyped or probing): answered 404, and not logged either.
    for path in (f"/declarations/{id_number}", f"/persons/{urllib.parse.quote(NAME)}"):
        assert browser.call("GET", path)[0] == 404

    status, body = browser.call(
        "POST",
        "/password",
        form={
            "csrf_token": browser.token,
            "old_password": password,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
            "otp": account.code(1),
        },
    )
    assert status in (200, 303), body

    wrong = channel.tmp / "wrong-password"
    wrong.write_text(WRONG_PASSWORD + "\n", encoding="utf-8")
    refused = channel.connect(account, otp=account.code(2), password_file=wrong)
    assert refused.wait_exit() == 20, refused.output

    # The employer ends the session (Ctrl-C), then the node stops: a client still
    # connected when its only node drains would wait to resume elsewhere.
    client.popen.send_signal(signal.SIGINT)
    assert client.wait_exit() == 0, client.output
    serve.popen.send_signal(signal.SIGTERM)
    assert serve.wait_exit() == 0, serve.output

    # Off a terminal, the process log is plain JSON lines (after the banner on stdout).
    banner_end = serve.lines.index("Ctrl-C stops the gateway.")
    for line in serve.lines[banner_end + 1 :]:
        assert isinstance(json.loads(line), dict), line

    logs: dict[str, str] = {
        "serve": serve.output,
        "connect": client.output,
        "connect (refused)": refused.output,
    }
    log_dir = channel.state / "logs"
    for path in sorted(log_dir.rglob("*")):
        if path.is_file():
            logs[str(path.relative_to(channel.state))] = path.read_text("utf-8", "replace")
    access = logs.get("logs/access.log", "")
    assert "GET /queries/roster?id_number=*&name=* 200" in access, access
    assert "POST /password " in access and "/api/v1/declarations " in access

    person_numbers = _person_numbers(channel.state)
    needles: dict[str, str] = {
        "ID number": id_number,
        "second ID number": other_id,
        "wrong ID number": wrong_id,
        "name": NAME,
        "second name": OTHER_NAME,
        "channel password": password,
        "new password": NEW_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "p12 passphrase": p12_passphrase,
        **{f"个人编号 {n}": n for n in person_numbers},
    }
    hits = [
        f"{what} in {log}"
        for what, value in needles.items()
        for form in _forms_of(value)
        for log, text in logs.items()
        if form in text
    ]
    assert hits == [], hits


def _person_numbers(state: Path) -> list[str]:
    """Every 个人编号 in the run's database (applied declarations would add some)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{state / 'ssgate.db'}")
    try:
        with engine.connect() as conn:
            rows: list[Any] = list(conn.execute(text("SELECT person_number FROM persons")))
    finally:
        engine.dispose()
    return [row[0] for row in rows]
