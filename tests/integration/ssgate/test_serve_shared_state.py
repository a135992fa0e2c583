"""``serve`` start-up with the state nodes share (issue 13): a node whose [policy]
differs from the stored one stops before listening, naming the keys; a database
without a stored CRL (one from before it was shared) gets one signed at start."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import certs
from ssgate import cli
from ssgate._app import App
from ssgate._nodes import check_policy
from ssgate._serve import ServeError, _shared_state_at_start, start
from ssgate._state import StateDir


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    assert cli.main(["--state", str(path), "init"], out=io.StringIO()) == 0
    return path


def test_a_node_whose_policy_differs_refuses_to_start_naming_the_keys(state: Path) -> None:
    from twisted.internet import reactor

    app = App(StateDir(state))
    try:
        stored = app.config.policy
        changed = type(stored)(
            default=type(stored.default)(max_sessions=9),
            handshake_timeout_seconds=stored.handshake_timeout_seconds,
            auth_timeout_seconds=stored.auth_timeout_seconds,
        )
        with app.engine.begin() as conn:
            check_policy(conn, changed, now=1.0, actor="gateway:other")
        before = set(reactor.getReaders())  # type: ignore[attr-defined]
        with pytest.raises(ServeError) as refused:
            start(app, reactor)
        assert "at: policy.max_sessions;" in str(refused.value)
        assert "ssgate node policy --replace" in str(refused.value)
        assert set(reactor.getReaders()) <= before  # type: ignore[attr-defined]
    finally:
        app.close()


def test_a_database_without_a_stored_crl_gets_one_at_start_and_keeps_it(state: Path) -> None:
    from twisted.internet import reactor

    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            conn.execute(certs._schema.crls.delete())
        first = _shared_state_at_start(app, reactor, "gw:1")
        again = _shared_state_at_start(app, reactor, "gw:2")
        with app.engine.connect() as conn:
            stored = certs.current_crl(conn)
        assert stored is not None and first.number == again.number == stored.crl_number
        assert first.crl.is_signature_valid(app.ca.certificate.public_key())  # type: ignore[arg-type]
    finally:
        app.close()
