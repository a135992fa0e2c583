"""Nothing happens without its record (issue 12), on the in-memory channel.

A session row and its ``login`` event commit in one transaction before AUTH_OK goes
out; RESUME_OK likewise waits for the reattachment and its ``login.resume`` event; a
session end commits with its ``session.end`` event, and one the database refused is
written again at the next poll, with its own reason and time.

Faults are injected the way a full disk shows itself to SQL: a trigger that aborts
every insert into ``audit_events`` (or into ``sessions``), dropped to "free space".
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import Engine, text
from twisted.internet.protocol import Factory, Protocol

from gateway import _sessions
from gateway._machine import AuthAccepted, AuthRejected, ClientMachine
from gateway._reasons import Reason
from gateway._service import GatewayNode, GatewayTunnel
from gateway.testing import TESTBED_ACCOUNT, ChannelTestbed, MemoryTransport


@pytest.fixture
def bed(sqlite_engine: Engine) -> ChannelTestbed:
    return ChannelTestbed(sqlite_engine)


class DiskFull:
    """Make inserts into *table* fail as a full disk would, until :meth:`freed`."""

    def __init__(self, engine: Engine, table: str = "audit_events") -> None:
        self.engine = engine
        self.table = table
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE TRIGGER disk_full BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                )
            )

    def freed(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER disk_full"))


class RawLogin:
    """A raw client connection: HELLO + AUTH, then whatever the gateway answers."""

    def __init__(self, bed: ChannelTestbed, *, token: bytes | None = None) -> None:
        self.machine = ClientMachine()
        self.events: list[object] = []
        if token is None:
            self.machine.authenticate(TESTBED_ACCOUNT, bed.password, bed.otp())
        else:
            self.machine.resume(token)
        outer = self

        class Raw(Protocol):
            def connectionMade(self) -> None:
                self.flush()

            def flush(self) -> None:
                assert self.transport is not None
                self.transport.writeSequence(outer.machine.data_to_send())

            def dataReceived(self, data: bytes) -> None:
                outer.events += outer.machine.receive(data)
                self.flush()

        self.protocol = Raw()
        bed.gateway_endpoint.connect(Factory.forProtocol(lambda: self.protocol))
        self.tunnel = bed.tunnels[-1]
        bed.run()

    def quit(self) -> None:
        """GOAWAY(client-quit), as ``ssgate connect`` says it."""
        self.machine.close(Reason.CLIENT_QUIT)
        self.protocol.flush()

    @property
    def accepted(self) -> AuthAccepted | None:
        found = [e for e in self.events if isinstance(e, AuthAccepted)]
        return found[0] if found else None


def watch_accept(tunnel: GatewayTunnel, bed: ChannelTestbed) -> list[tuple[int, int]]:
    """At each AUTH_OK / RESUME_OK the gateway sends: (sessions, login events) committed."""
    seen: list[tuple[int, int]] = []
    accept = tunnel.machine.accept_auth

    def spy(**kwargs: object) -> None:
        with bed.engine.begin() as conn:
            rows = len(_sessions.list_sessions(conn))
        logins = [e for e in bed.audit_events("login", "login.resume") if e.outcome == "ok"]
        seen.append((rows, len(logins)))
        accept(**kwargs)  # type: ignore[arg-type]

    tunnel.machine.accept_auth = spy  # type: ignore[method-assign]
    return seen


def test_auth_ok_goes_out_only_after_the_session_and_its_login_event_are_committed(
    bed: ChannelTestbed,
) -> None:
    bed.runner.hold()  # the database is slow: nothing is committed yet
    login = RawLogin(bed)
    seen = watch_accept(login.tunnel, bed)
    bed.run()
    assert login.accepted is None, "AUTH_OK before the login was recorded"
    bed.runner.release()
    bed.run()
    assert login.accepted is not None
    assert seen == [(1, 1)]
    [event] = bed.audit_events("login")
    assert (event.outcome, event.session_id, event.unit) == (
        "ok",
        login.accepted.session_id,
        "12345678",
    )
    assert event.details["factor_code"] == "ok" and event.details["peer"].startswith("203.0.113.7")


def test_a_login_whose_event_cannot_be_written_is_refused_and_leaves_no_session(
    bed: ChannelTestbed,
) -> None:
    full = DiskFull(bed.engine)
    login = RawLogin(bed)
    bed.run()
    assert login.accepted is None
    [rejected] = [e for e in login.events if isinstance(e, AuthRejected)]
    assert rejected.reason is Reason.INTERNAL_ERROR
    full.freed()
    with bed.engine.begin() as conn:
        assert _sessions.list_sessions(conn) == []  # rolled back with its event
    assert bed.ctx.live == {}


def test_a_login_whose_session_row_cannot_be_written_leaves_no_login_event(
    bed: ChannelTestbed,
) -> None:
    DiskFull(bed.engine, "sessions")
    login = RawLogin(bed)
    assert [e.reason for e in login.events if isinstance(e, AuthRejected)] == [
        Reason.INTERNAL_ERROR
    ]
    assert [e.outcome for e in bed.audit_events("login")] == ["refused"]
    assert bed.audit_events("login")[0].reason == "internal-error"


def test_resume_ok_goes_out_only_after_the_reattachment_and_its_event_are_committed(
    bed: ChannelTestbed,
) -> None:
    first = RawLogin(bed)
    assert first.accepted is not None
    assert isinstance(first.tunnel.transport, MemoryTransport)
    first.tunnel.transport.cut()
    bed.run()
    bed.runner.hold()
    again = RawLogin(bed, token=first.accepted.resume_token)
    seen = watch_accept(again.tunnel, bed)
    bed.run()
    assert again.accepted is None
    bed.runner.release()
    bed.run()
    assert again.accepted is not None and again.accepted.session_id == first.accepted.session_id
    assert seen == [(1, 2)]  # the login and the resume, both committed
    [resume] = bed.audit_events("login.resume")
    assert (resume.outcome, resume.session_id) == ("ok", first.accepted.session_id)


def test_a_resume_whose_event_cannot_be_written_is_refused_and_the_token_still_works(
    bed: ChannelTestbed,
) -> None:
    first = RawLogin(bed)
    assert first.accepted is not None
    assert isinstance(first.tunnel.transport, MemoryTransport)
    first.tunnel.transport.cut()
    bed.run()
    full = DiskFull(bed.engine)
    refused = RawLogin(bed, token=first.accepted.resume_token)
    assert refused.accepted is None
    record = bed.session(first.accepted.session_id)
    assert record is not None and (record.status, record.resume_generation) == ("detached", 0)
    full.freed()
    again = RawLogin(bed, token=first.accepted.resume_token)
    assert again.accepted is not None


def test_a_session_end_the_database_refused_is_written_at_the_next_poll_with_its_reason(
    bed: ChannelTestbed,
) -> None:
    login = RawLogin(bed)
    assert login.accepted is not None
    session_id = login.accepted.session_id
    ended_at = bed.clock.seconds()
    full = DiskFull(bed.engine)
    login.quit()
    bed.run()
    assert list(bed.ctx.unwritten) == [session_id]
    record = bed.session(session_id)
    assert record is not None and record.status == "live"
    bed.elapse(2)  # still full: kept, not lost
    assert list(bed.ctx.unwritten) == [session_id]
    full.freed()
    bed.elapse(1)
    assert bed.ctx.unwritten == {}
    record = bed.session(session_id)
    assert record is not None
    assert (record.status, record.end_reason, record.ended_at) == ("ended", "client-quit", ended_at)
    [end] = bed.audit_events("session.end")
    assert (end.reason, end.session_id, end.at) == ("client-quit", session_id, ended_at)


def test_a_login_that_completes_after_the_connection_dropped_is_recorded_and_ended(
    bed: ChannelTestbed,
) -> None:
    bed.runner.hold()
    login = RawLogin(bed)
    assert isinstance(login.tunnel.transport, MemoryTransport)
    login.tunnel.transport.cut()
    bed.run()
    bed.runner.release()
    bed.run()
    with bed.engine.begin() as conn:
        [record] = _sessions.list_sessions(conn)
    assert (record.status, record.end_reason) == ("ended", "network-lost")
    [event] = bed.audit_events("login")
    [end] = bed.audit_events("session.end")
    assert event.session_id == end.session_id == record.id


def test_stopping_the_node_tries_once_more_to_write_the_ends_the_database_refused(
    bed: ChannelTestbed,
) -> None:
    login = RawLogin(bed)
    assert login.accepted is not None
    full = DiskFull(bed.engine)
    login.quit()
    bed.run()
    assert list(bed.ctx.unwritten) == [login.accepted.session_id]
    full.freed()
    stopped = bed.node.stopService()
    assert stopped.called  # nothing live: only the retry, already done
    assert bed.ctx.unwritten == {}
    [end] = bed.audit_events("session.end")
    assert (end.reason, end.session_id) == ("client-quit", login.accepted.session_id)


def test_a_node_starting_ends_what_its_dead_predecessor_left_live_with_events(
    bed: ChannelTestbed,
) -> None:
    login = RawLogin(bed)
    assert login.accepted is not None
    session_id = login.accepted.session_id
    # kill -9: the process and its tunnels vanish, nothing is written.
    bed.ctx.live.clear()
    bed.clock.advance(5)
    restarted = GatewayNode(replace(bed.ctx, live={}), process_alive=lambda pid: False)
    restarted.startService()
    assert restarted.recovered is not None and restarted.recovered.called
    record = bed.session(session_id)
    assert record is not None and (record.status, record.end_reason) == ("ended", "node-lost")
    [end] = bed.audit_events("session.end")
    assert (end.session_id, end.reason, end.details["ended_by"]) == (
        session_id,
        "node-lost",
        "restart",
    )
    # A session the new process holds itself is not touched by a second start.
    bed.clock.advance(30)  # the next one-time code
    again = RawLogin(bed)
    assert again.accepted is not None
    GatewayNode(bed.ctx).startService()
    record = bed.session(again.accepted.session_id)
    assert record is not None and record.status == "live"


def test_a_start_up_recovery_the_database_refused_is_tried_again_by_the_poll(
    bed: ChannelTestbed,
) -> None:
    login = RawLogin(bed)
    assert login.accepted is not None
    bed.ctx.live.clear()  # kill -9
    bed.node.stopService()
    bed.clock.advance(5)
    full = DiskFull(bed.engine)
    restarted = GatewayNode(replace(bed.ctx, live={}), process_alive=lambda pid: False)
    restarted.startService()
    record = bed.session(login.accepted.session_id)
    assert record is not None and record.status == "live"
    full.freed()
    bed.elapse(30)
    record = bed.session(login.accepted.session_id)
    assert record is not None and (record.status, record.end_reason) == ("ended", "node-lost")
    assert [e.session_id for e in bed.audit_events("session.end")] == [login.accepted.session_id]
