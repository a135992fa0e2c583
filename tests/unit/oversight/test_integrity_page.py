"""The integrity page, in memory: an officer starts the chain verification (audited),
watches its progress batch by batch (the clock moves only when the test says), and
reads the verdict — intact, or the first bad record after someone edited one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs

import audit
import auth
import gateway
import oversight
from auth.testing import SynchronousRunner
from certs._schema import metadata as certs_metadata
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, enrol_staff
from ssgate._db import make_engine

NOW = 1_767_225_600.0
PASSWORD = "Correct-Horse-9-battery"


class World:
    def __init__(
        self,
        engine: Engine,
        clock: MemoryReactorClock,
        secrets: dict[str, str],
        *,
        verify_at_start: bool = False,
    ):
        self.engine = engine
        self.clock = clock
        self.secrets = secrets
        self.site = console_site(
            login_form_key=bytes(range(32)),
            authenticator=auth.Authenticator(engine, *_crypto()),
            runner=SynchronousRunner(engine),
            workflow=None,
            clock=clock,
            secure=False,
            refusal_delay=0,
            verify_audit_at_start=verify_at_start,
        )

    def login(self, name: str) -> ConsoleClient:
        c = ConsoleClient(self.site, clock=self.clock)
        code = auth.current_code(self.secrets[name], self.clock.seconds())
        assert c.login(name, PASSWORD, code).status == 303
        self.clock.advance(30)
        return c

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions={action})]


_HASHER = auth.PasswordHasher(auth.Argon2Params())
_BOX = auth.SecretBox(auth.SecretBox.generate_key())


def _crypto() -> tuple[auth.PasswordHasher, auth.SecretBox]:
    return _HASHER, _BOX


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = make_engine(f"sqlite:///{tmp_path}/integrity.db")
    for metadata in (auth.metadata, audit.metadata, certs_metadata, gateway.metadata):
        metadata.create_all(engine)
    with engine.begin() as conn:
        members = [("olga", "officer"), ("carl", "carrier")]
        secrets = enrol_staff(conn, members, password=PASSWORD, hasher=_HASHER, box=_BOX, now=NOW)
        for i in range(30):
            audit.append(
                conn,
                audit.AuditEvent(at=NOW + i, actor="system", action="x", subject="y", outcome="ok"),
            )
    clock = MemoryReactorClock()
    clock.advance(NOW + 3600)
    yield World(engine, clock, secrets)
    engine.dispose()


def test_before_any_run_the_page_offers_a_start_and_does_not_refresh(world: World) -> None:
    page = world.login("olga").get("/integrity")
    assert page.status == 200
    assert "尚未进行校验" in page.text and 'id="start-verify"' in page.text
    assert page.header("refresh") is None


def test_a_started_verification_is_audited_then_reports_intact(world: World) -> None:
    c = world.login("olga")
    started = c.submit("/integrity", "/integrity")
    assert (started.status, started.location) == (303, "/integrity")
    [start] = world.events("audit.verify")
    assert (start.actor, start.outcome, start.reason) == ("staff:olga", "ok", "started")
    running = c.get("/integrity")
    assert running.header("refresh") == "3"
    assert "正在校验" in running.text and "<progress" in running.text
    for _ in range(10):
        world.clock.advance(0)
    done = c.get("/integrity")
    assert done.header("refresh") is None
    assert "完整" in done.text and "审计日志未被篡改" in done.text
    result = world.events("audit.verify")[-1]
    assert (result.actor, result.outcome, result.reason) == ("system", "ok", "chain-intact")
    with world.engine.begin() as conn:
        whole = audit.verify(conn)
    assert whole.ok and result.details["checked"] == whole.checked - 1  # all but itself


def test_progress_moves_batch_by_batch(world: World) -> None:
    with world.engine.begin() as conn:
        total = audit.begin_verify(conn).total
    runner = SynchronousRunner(world.engine)
    job = oversight.ChainVerification(runner, world.clock, batch=10, pause=1.0)
    assert job.start("staff:olga")
    assert job.state.running and job.state.total == total and job.state.checked == 0
    assert not job.start("staff:olga")  # one at a time
    seen = []
    while job.state.running:
        world.clock.advance(1.0)
        seen.append(job.state.checked)
    assert seen[:3] == [10, 20, 30]
    assert job.state.report == audit.VerifyReport(True, total, None, "")


def test_an_edited_record_is_reported_with_its_seq_and_problem(world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET subject = 'edited' WHERE seq = 7"))
    c = world.login("olga")
    c.submit("/integrity", "/integrity")
    for _ in range(10):
        world.clock.advance(0)
    page = c.get("/integrity")
    assert "已损坏" in page.text
    assert '<td id="first-bad">7</td>' in page.text
    assert "audit record 7 was altered: its hash does not match its contents" in page.text
    result = world.events("audit.verify")[-1]
    assert (result.outcome, result.reason, result.details["first_bad_seq"]) == (
        "failed",
        "chain-broken",
        7,
    )


def test_a_second_start_while_running_is_refused_and_audited(world: World) -> None:
    c = world.login("olga")
    c.submit("/integrity", "/integrity")
    token = c.get("/").csrf_token()
    again = c.post("/integrity", {"csrf_token": token})
    assert again.status == 409 and "已有一次校验正在进行" in again.text
    refused = world.events("audit.verify")[-1]
    assert (refused.outcome, refused.reason) == ("refused", "already-running")


def test_a_carrier_may_not_start_one(world: World) -> None:
    c = world.login("carl")
    token = c.get("/").csrf_token()
    assert c.post("/integrity", {"csrf_token": token}).status == 403
    assert c.get("/integrity").status == 403
    assert world.events("audit.verify") == []


def test_a_console_built_to_verify_at_start_verifies_the_chain_by_itself(tmp_path: Path) -> None:
    """``serve``'s console starts a verification as ``system`` at the reactor's first
    turn (audited before it starts), so a restart shows a verdict unasked."""
    engine = make_engine(f"sqlite:///{tmp_path}/start.db")
    for metadata in (auth.metadata, audit.metadata, certs_metadata, gateway.metadata):
        metadata.create_all(engine)
    with engine.begin() as conn:
        secrets = enrol_staff(
            conn, [("olga", "officer")], password=PASSWORD, hasher=_HASHER, box=_BOX, now=NOW
        )
    clock = MemoryReactorClock()
    clock.advance(NOW + 3600)
    world = World(engine, clock, secrets, verify_at_start=True)
    assert world.events("audit.verify") == []  # built, not yet running
    for _ in range(5):
        clock.advance(0)
    started, verdict = world.events("audit.verify")
    assert (started.actor, started.reason, started.details["trigger"]) == (
        "system",
        "started",
        "console-start",
    )
    assert (verdict.actor, verdict.reason) == ("system", "chain-intact")
    page = world.login("olga").get("/integrity")
    assert page.status == 200 and "system" in page.text
    engine.dispose()


class _ClosingRunner:
    """A runner that closes (the process stops) after *left* transactions."""

    def __init__(self, runner: SynchronousRunner, left: int) -> None:
        self._runner = runner
        self.left = left

    def run(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        from twisted.internet.defer import fail

        if self.left == 0:
            return fail(auth.RunnerClosed("ssgate-db: stopped, the process is stopping"))
        self.left -= 1
        return self._runner.run(fn, *args, **kwargs)


def test_a_verification_cut_short_by_the_process_stopping_ends_quietly(world: World) -> None:
    """Shutdown closes the database pool under a running job: that is no fault, so no
    ``critical`` log line (a stopping ``ssgate serve`` would print one), and the job
    is simply over."""
    runner = _ClosingRunner(SynchronousRunner(world.engine), left=2)
    job = oversight.ChainVerification(runner, world.clock, batch=10)  # type: ignore[arg-type]
    with capturedLogs() as events:
        assert job.start("system")
        for _ in range(5):
            world.clock.advance(0)
    assert [e["log_level"] for e in events] == [LogLevel.info]
    assert "cut short" in events[0]["log_format"]
    assert not job.state.running and job.state.error == "校验中断：服务正在停止。"
