"""``ssgate demo``'s banner and state (issue 11): short and readable, the logins in their
file rather than on the terminal, live numbers, a connect command that works from a
shell without the venv, and a gateway that listens on loopback only."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest

from ssgate._app import App
from ssgate._demo import LOGINS_FILE, run_demo
from ssgate._state import StateDir


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[StateDir, str]:
    state = StateDir(tmp_path_factory.mktemp("demo") / "state")
    out = io.StringIO()
    assert run_demo(state, out, serve=False) == 0
    return state, out.getvalue()


def test_the_demo_gateway_listens_on_loopback_only(demo: tuple[StateDir, str]) -> None:
    state, _ = demo
    app = App(state)
    try:
        assert app.config.gateway.listen == "tcp:8443:interface=127.0.0.1"
        assert "interface=127.0.0.1" in app.config.console.listen
    finally:
        app.close()


def test_the_banner_names_the_logins_file_and_prints_no_secret(
    demo: tuple[StateDir, str],
) -> None:
    state, banner = demo
    assert str(state.path.absolute() / LOGINS_FILE) in banner
    logins = (state.path / LOGINS_FILE).read_text(encoding="utf-8")
    secrets = re.findall(r"(?:password|passphrase|URI):\s+(\S+)", logins)
    assert len(secrets) == 5  # two passwords, two TOTP URIs, the p12 passphrase
    for secret in secrets:
        assert secret not in banner
    assert len(banner.splitlines()) < 20


def test_the_banner_counts_persons_and_declarations_in_the_database(
    demo: tuple[StateDir, str],
) -> None:
    state, banner = demo
    app = App(state)
    try:
        with app.engine.connect() as conn:
            persons = conn.exec_driver_sql(
                "SELECT count(DISTINCT person_number) FROM enrolments WHERE unit_code = '12345678'"
            ).scalar_one()
            declarations = conn.exec_driver_sql(
                "SELECT count(*) FROM declarations WHERE unit_code = '12345678'"
            ).scalar_one()
    finally:
        app.close()
    m = re.search(r"demo data:\s+(\d+) persons \((\d+) insured now\), (\d+) declarations", banner)
    assert m is not None, banner
    assert (int(m.group(1)), int(m.group(3))) == (persons, declarations)


def test_the_connect_command_starts_with_the_absolute_path_of_ssgate(
    demo: tuple[StateDir, str],
) -> None:
    _, banner = demo
    line = next(line.strip() for line in banner.splitlines() if " connect --profile " in line)
    words = shlex.split(line)
    script = Path(words[0])
    assert script.is_absolute() and script.name == "ssgate" and script.is_file()
    otp = next(w for w in words if w.startswith("$("))
    assert otp.startswith(f"$({script} --state ")


def test_a_state_that_listens_beyond_loopback_is_pointed_out(tmp_path: Path) -> None:
    """A state made by plain ``ssgate init`` (gateway on every interface) keeps its
    configuration, and the demo says so; once it listens on loopback, it says nothing."""
    import time

    from ssgate._init import init_state

    state = init_state(tmp_path / "state", hostname="localhost", clock=time.time, actor="os:t")
    out = io.StringIO()
    assert run_demo(state, out, serve=False) == 0
    assert "listens on 'tcp:8443', not loopback only" in out.getvalue()

    config = state.path / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    loopback = 'listen = "tcp:8443:interface=127.0.0.1"'
    config.write_text(text.replace('listen = "tcp:8443"', loopback, 1), encoding="utf-8")
    again = io.StringIO()
    assert run_demo(state, again, serve=False) == 0
    assert "not loopback" not in again.getvalue()


def test_the_demo_installs_its_own_unverified_figures(demo: tuple[StateDir, str]) -> None:
    """``init`` installs no figures (issue 14); the demo installs the demo file and
    says so, and an operator's own figures would be kept (it installs only into a file
    without any)."""
    import declare_app

    state, out = demo
    assert (state.path / "rates.toml").read_text(encoding="utf-8") == declare_app.DEMO_330682
    assert "installed the demo rates (rates_330682_demo.toml, none verified)" in out
