"""The TOTP replay guard holds across processes (gateway nodes) sharing one database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from auth import (
    AccountName,
    Argon2Params,
    PasswordHasher,
    SecretBox,
    create_account,
    generate_password,
    new_totp_secret,
    totp_secret_context,
)

WORKER = Path(__file__).with_name("login_race_worker.py")
NOW = 1_767_225_615.0
PRINCIPAL = "33068212345678@sxlss"


@pytest.mark.slow
def test_two_processes_with_the_same_code_at_the_same_moment_get_exactly_one_login(
    db: Engine,
) -> None:
    key = SecretBox.generate_key()
    password, secret = generate_password(), new_totp_secret()
    with db.begin() as conn:
        create_account(
            conn,
            AccountName(region="330682", unit_code="12345678", realm="sxlss"),
            password_hash=PasswordHasher(Argon2Params()).hash(password),
            totp_secret_sealed=SecretBox(key).seal(secret, context=totp_secret_context(PRINCIPAL)),
            now=0.0,
        )
    job = {
        "url": db.url.render_as_string(hide_password=False),
        "key": key.hex(),
        "principal": PRINCIPAL,
        "password": password,
        "secret": secret,
        "source": "203.0.113.7",
        "now": NOW,
    }
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdin is not None
            assert worker.stdout is not None
            worker.stdin.write(json.dumps(job) + "\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # both are waiting: release them together
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [w.returncode for w in workers] == [0, 0]
    assert sorted(r["reason"] for r in results) == ["ok", "otp-reused"]
