"""The secure channel end to end: real ``ssgate serve``, ``ssgate connect``, curl, openssl.

Each test runs its own state directory and gateway on a free loopback port, and each
login uses a fresh account (the TOTP replay guard would otherwise make a test wait
for the next 30-second step).  Waits are bounded reads of the processes' output,
never sleeps.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from auth import Identity, encode_assertion, new_nonce

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel, Proc

pytestmark = [pytest.mark.slow]

WAIT = 30.0  # seconds any single step may take on a loaded CI machine

CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")
SOCAT = shutil.which("socat")


def curl(port: int, path: str = "/") -> subprocess.CompletedProcess[str]:
    assert CURL is not None, "curl is installed by .ci/run"
    return subprocess.run(
        [CURL, "-sS", "-m", "15", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# A Python process's own start (imports, the p12) on a loaded CI machine, on top of
# the 2 s the acceptance allows connect itself.
PROCESS_START = 8.0


def audit_rows(channel: Channel, *args: str) -> list[dict[str, object]]:
    result = channel.run("audit", "actions", "--format", "json", *args, check_rc=0)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_connect_then_curl_shows_the_unit_and_session(channel: Channel) -> None:
    """Acceptance 1: the page behind the tunnel names the account's unit and the session."""
    channel.start()
    account = channel.open_account("12345678")
    client = channel.connect(account)
    session_id, port = channel.connected(client)

    page = curl(port)
    assert page.returncode == 0, page.stderr
    assert "12345678" in page.stdout
    assert session_id in page.stdout
    whoami = json.loads(curl(port, "/api/v1/whoami").stdout)
    assert (whoami["account"], whoami["unit_code"], whoami["session_id"]) == (
        account.name,
        "12345678",
        session_id,
    )
    live = channel.run("audit", "live", check_rc=0).stdout
    assert session_id in live


def test_ctrl_c_closes_the_tunnel_and_ends_the_session(channel: Channel) -> None:
    """SIGINT sends GOAWAY(client-quit): exit 0 and the session is ended, not live."""
    channel.start()
    account = channel.open_account()
    client = channel.connect(account)
    session_id, _ = channel.connected(client)
    client.popen.send_signal(2)
    assert client.wait_exit() == 0
    assert "You closed the secure channel" in client.output
    sessions = channel.run("audit", "sessions", check_rc=0).stdout
    row = next(line for line in sessions.splitlines() if line.startswith(session_id))
    assert "client-quit" in row


def test_a_code_is_accepted_once(channel: Channel) -> None:
    """Acceptance 2a: the same code for a second login is refused (and audited as reuse)."""
    channel.start()
    account = channel.open_account()
    code = account.code()
    first = channel.connect(account, otp=code)
    channel.connected(first)
    first.popen.send_signal(2)
    assert first.wait_exit() == 0

    again = channel.connect(account, otp=code)
    assert again.wait_exit() == 20  # auth-failed: never says which factor
    assert "one-time code is not correct" in again.output
    reasons = [r["reason"] for r in audit_rows(channel, "--action", "login")]
    assert reasons[-1] == "otp-reused"


def test_a_busy_listen_port_fails_at_once_and_spends_no_code(channel: Channel) -> None:
    """Issue 11, acceptance 2: with the --listen port busy, connect exits 2 within 2 s,
    no login attempt is recorded, and the same code then logs in on another port."""

    channel.start()
    account = channel.open_account()
    code = account.code()
    before = len(audit_rows(channel, "--action", "login"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))  # held and listening for the whole attempt
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        client = channel.connect(account, otp=code, listen=f"127.0.0.1:{port}")
        assert client.wait_exit() == 2, client.output
        assert time.monotonic() - started < 2 + PROCESS_START
    assert f"127.0.0.1:{port}" in client.output and "not used" in client.output
    assert len(audit_rows(channel, "--action", "login")) == before
    again = channel.connect(account, otp=code)
    channel.connected(again)
    again.popen.send_signal(2)
    assert again.wait_exit() == 0


def test_five_wrong_passwords_lock_out_the_right_one(channel: Channel) -> None:
    """Acceptance 2b: after 5 wrong passwords, the right password and a fresh code fail."""
    channel.start()
    account = channel.open_account()
    wrong = channel.tmp / "wrong-password"
    wrong.write_text("Not-The-Password-1!\n", encoding="utf-8")
    for _ in range(5):
        attempt = channel.connect(account, otp=account.code(), password_file=wrong)
        assert attempt.wait_exit() == 20, attempt.output
    right = channel.connect(account, otp=account.code(1))
    assert right.wait_exit() == 23, right.output  # locked
    assert "locked" in right.output

    rows = audit_rows(channel, "--action", "login")
    assert [r["reason"] for r in rows] == ["bad-password"] * 5 + ["locked"]
    assert all(r["outcome"] == "refused" for r in rows)


def _pem_from_p12(channel: Channel, bundle: Path) -> Path:
    out = channel.tmp / f"{bundle.name}.pem"
    assert OPENSSL is not None
    subprocess.run(
        [
            OPENSSL,
            "pkcs12",
            "-in",
            str(bundle / "client.p12"),
            "-nodes",
            "-out",
            str(out),
            "-passin",
            "pass:bundle-pass-123",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out


def s_client(channel: Channel, *args: str) -> subprocess.CompletedProcess[bytes]:
    """One handshake; garbage after it makes a healthy gateway answer GOAWAY and close."""
    assert OPENSSL is not None
    return subprocess.run(
        [
            OPENSSL,
            "s_client",
            "-connect",
            f"127.0.0.1:{channel.port}",
            "-servername",
            "localhost",
            "-ign_eof",
            *args,
        ],
        input=b"\xff" * 64,
        capture_output=True,
        timeout=WAIT,
        check=False,
    )


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_tls_versions_and_client_certificates_with_openssl(channel: Channel) -> None:
    """Acceptance 3: TLS 1.1 fails; 1.2/1.3 with the bundle's certificate succeed;
    no certificate, another CA's certificate or a revoked one fail."""
    channel.start()
    account = channel.open_account()
    pem = _pem_from_p12(channel, account.bundle)
    ca = str(account.bundle / "ca.pem")
    mine = ["-CAfile", ca, "-cert", str(pem), "-key", str(pem)]

    assert s_client(channel, "-tls1_1", *mine).returncode != 0
    for version, name in (("-tls1_2", b"TLSv1.2"), ("-tls1_3", b"TLSv1.3")):
        ok = s_client(channel, version, *mine)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert b"New, " + name in ok.stdout

    none = s_client(channel, "-tls1_3", "-CAfile", ca)
    assert none.returncode != 0
    assert b"certificate required" in none.stderr

    stranger_key = channel.tmp / "stranger.pem"
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(stranger_key),
            "-out",
            str(stranger_key.with_suffix(".crt")),
            "-subj",
            f"/CN={account.name}",
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    other = s_client(
        channel,
        "-tls1_2",
        "-CAfile",
        ca,
        "-cert",
        str(stranger_key.with_suffix(".crt")),
        "-key",
        str(stranger_key),
    )
    assert other.returncode != 0

    # Revoke by reissuing: the old certificate is in the new CRL within 5 seconds.
    channel.run(
        "provision",
        "reissue-cert",
        account.name,
        "--out",
        str(channel.tmp / "reissued"),
        check_rc=0,
    )
    deadline = time.monotonic() + 5.0 + 2.0  # the promise, plus process start-up
    while True:
        revoked = s_client(channel, "-tls1_2", *mine)
        if revoked.returncode != 0:
            break
        assert time.monotonic() < deadline, "revoked certificate still accepted"
    assert b"alert" in revoked.stderr


def _wait_exit_within(proc: Proc, seconds: float) -> int:
    started = time.monotonic()
    status = proc.wait_exit(timeout=WAIT)
    assert time.monotonic() - started <= seconds, proc.output
    return status


def test_officer_kill_reaches_the_client_within_five_seconds(channel: Channel) -> None:
    """Acceptance 4a: ``audit kill SID`` → the client says an officer ended it, exit 13."""
    channel.start()
    account = channel.open_account()
    client = channel.connect(account)
    session_id, _ = channel.connected(client)
    started = time.monotonic()
    channel.run("audit", "kill", session_id, "--reason", "test", check_rc=0)
    assert client.wait_exit() == 13
    assert time.monotonic() - started <= 5.0 + 1.0  # one poll interval of slack
    assert "security officer ended this session" in client.output


def test_suspending_an_account_ends_all_its_sessions(channel: Channel) -> None:
    """Acceptance 4b: ``provision suspend`` ends both live sessions of the account."""
    channel.start()
    account = channel.open_account()
    # One after the other: the replay guard accepts only steps newer than the last used.
    clients = []
    for step in (0, 1):
        clients.append(channel.connect(account, otp=account.code(step)))
        channel.connected(clients[-1])
    started = time.monotonic()
    channel.run("provision", "suspend", account.name, check_rc=0)
    for client in clients:
        assert client.wait_exit() == 14
        assert "suspended" in client.output
    assert time.monotonic() - started <= 5.0 + 1.0


def test_a_service_outside_the_policy_is_refused_and_logged(channel: Channel) -> None:
    """Acceptance 5a: an account whose policy has no ``declare`` gets no stream to it."""
    account_name = "33068210000001@sxlss"
    channel.configure(f'\n[[policy.account]]\nname = "{account_name}"\nservices = []\n')
    channel.start()
    account = channel.open_account("10000001")
    client = channel.connect(account)
    _, port = channel.connected(client)
    page = curl(port)
    assert "12345678" not in page.stdout and "10000001" not in page.stdout
    client.wait_for("service|服务")
    rows = audit_rows(channel, "--action", "stream.refused")
    assert [(r["subject"], r["reason"]) for r in rows] == [(account_name, "service-denied")]


def _raw(port: int, payload: bytes) -> bytes:
    """Send *payload* to the service port; everything it answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        received = b""
        try:
            s.sendall(payload)  # no half-close: twisted.web drops a half-closed request
            while chunk := s.recv(4096):
                received += chunk
        except OSError:
            pass  # the guard aborts (reset, or not connected any more): not a byte
        return received


def test_the_service_answers_only_a_valid_fresh_identity_header(channel: Channel) -> None:
    """Acceptance 5b: raw TCP to the service without, with a forged or a stale header
    gets nothing; with a valid one it gets the page (so the port really is the service)."""
    declare_port = channel.free_port()
    config = channel.state / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    assert text.count('listen = ""') == 1  # the [declare] table's
    config.write_text(
        text.replace('listen = ""', f'listen = "tcp:{declare_port}:interface=127.0.0.1"'),
        encoding="utf-8",
    )
    channel.start()
    key = (channel.state / "identity.key").read_bytes()
    request = b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"

    def header(*, key: bytes, issued_at: float) -> bytes:
        identity = Identity(
            account="33068212345678@sxlss",
            unit_code="12345678",
            session_id="ab" * 16,
            issued_at=issued_at,
            source_host="127.0.0.1",
            source_port=40000,
            dest_host="127.0.0.1",
            dest_port=8443,
            nonce=new_nonce(),
        )
        return encode_assertion(identity, key=key)

    assert _raw(declare_port, request) == b""
    assert _raw(declare_port, header(key=b"x" * len(key), issued_at=time.time()) + request) == b""
    assert _raw(declare_port, header(key=key, issued_at=time.time() - 3600) + request) == b""
    assert b"12345678" in _raw(declare_port, header(key=key, issued_at=time.time()) + request)


@pytest.mark.skipif(SOCAT is None, reason="socat not installed")
def test_the_client_resumes_the_same_session_after_the_path_drops(channel: Channel) -> None:
    """Acceptance 6: stop the relay between client and gateway, start it again: the
    client reconnects by itself with its resume token, same session id, no new code."""
    channel.start()
    account = channel.open_account("12345678")
    relay_port = channel.free_port()
    profile = account.bundle / "profile-relay.toml"
    profile.write_text(
        account.profile.read_text(encoding="utf-8").replace(
            f"gateway_port = {channel.port}", f"gateway_port = {relay_port}"
        ),
        encoding="utf-8",
    )

    def relay() -> Proc:
        assert SOCAT is not None
        proc = channel.spawn(
            [
                SOCAT,
                f"TCP-LISTEN:{relay_port},bind=127.0.0.1,reuseaddr,fork",
                f"TCP:127.0.0.1:{channel.port}",
            ]
        )
        deadline = time.monotonic() + WAIT
        while True:  # socat prints nothing when ready: probe the port
            try:
                socket.create_connection(("127.0.0.1", relay_port), timeout=1).close()
                return proc
            except OSError:
                assert proc.popen.poll() is None, f"socat exited: {proc.output}"
                assert time.monotonic() < deadline, "socat did not listen"
                time.sleep(0.05)  # a port probe, not a timing assumption

    path = relay()
    client = channel.connect(account, profile=profile)
    session_id, port = channel.connected(client)
    assert session_id in curl(port).stdout

    path.stop()  # the TCP path is gone: both ends see the connection drop
    client.wait_for("network lost, reconnecting")
    relay()
    m = client.wait_for(r"reconnected, same session ([0-9a-f]+)", timeout=60)
    assert m.group(1) == session_id
    page = curl(port)
    assert session_id in page.stdout
    resumes = audit_rows(channel, "--action", "login.resume")
    assert [r["outcome"] for r in resumes] == ["ok"]


def test_demo_serves_and_its_printed_connect_command_works(channel: Channel) -> None:
    """``ssgate demo`` prints a connect command that, pasted into a shell, connects."""
    channel.run("demo", "--no-serve", check_rc=0)
    demo = channel.spawn([channel.ssgate, "--state", str(channel.state), "demo"])
    demo.wait_for("Ctrl-C stops the gateway")
    # The absolute path of the script: a second terminal has no activated venv.
    command = demo.wait_for(r"^\s+(/\S*/ssgate connect .*)$").group(1)
    # A shell whose PATH has no ssgate, as in a second terminal without the venv.
    plain_shell = ["env", "PATH=/usr/bin:/bin", "bash", "-c"]
    client = channel.spawn([*plain_shell, f"{command} --listen 127.0.0.1:0"])
    session_id, port = channel.connected(client)
    page = curl(port)
    assert "12345678" in page.stdout and session_id in page.stdout


def test_stopping_the_gateway_tells_the_client_and_records_the_end(channel: Channel) -> None:
    """SIGTERM on ``ssgate serve``: the client is told (exit 17), the session is ended."""
    serve = channel.start()
    account = channel.open_account()
    client = channel.connect(account)
    session_id, _ = channel.connected(client)
    serve.popen.terminate()
    assert serve.wait_exit() == 0, serve.output
    assert client.wait_exit() == 17, client.output
    assert "shutting down" in client.output
    sessions = channel.run("audit", "sessions", check_rc=0).stdout
    row = next(line for line in sessions.splitlines() if line.startswith(session_id))
    assert "gateway-shutdown" in row


def test_a_second_signal_while_stopping_is_harmless(channel: Channel) -> None:
    """Ctrl-C twice (or a supervisor signalling the process group and the process):
    one orderly stop, exit 0, and no ReactorNotRunning error in the log."""
    import signal

    serve = channel.start()
    serve.popen.send_signal(signal.SIGINT)
    serve.popen.send_signal(signal.SIGINT)
    serve.popen.send_signal(signal.SIGTERM)
    assert serve.wait_exit() == 0, serve.output
    assert "received: stopping" in serve.output and '"signal": "SIGINT"' in serve.output
    assert "ReactorNotRunning" not in serve.output
    assert '"critical"' not in serve.output


def test_connect_prompts_without_echo_on_a_terminal_and_ctrl_c_quits(channel: Channel) -> None:
    """On a terminal, ``connect`` asks for passphrase, password and code without echoing
    them; after a wrong password it asks again on the same connection; it connects, and
    Ctrl-C typed at the terminal ends the session cleanly."""
    import os
    import pty
    import select

    channel.start()
    account = channel.open_account()
    pid, fd = pty.fork()
    if pid == 0:  # the child: a real terminal on stdin/stdout/stderr
        os.execv(
            channel.ssgate,
            [
                channel.ssgate,
                "connect",
                "--profile",
                str(account.profile),
                "--listen",
                "127.0.0.1:0",
            ],
        )
    seen = b""

    def expect(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + WAIT
        while text not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in {seen!r}"
            if select.select([fd], [], [], left)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    break
        assert text in seen, seen

    try:
        password = account.password_file.read_text(encoding="utf-8").strip()
        expect(b"passphrase: ")
        os.write(fd, b"bundle-pass-123\n")
        expect(b"password for")
        os.write(fd, b"Wrong-Password-99!\n")
        expect(b"one-time code: ")
        os.write(fd, account.code().encode() + b"\n")
        expect(b"2 attempt(s) left")
        seen = seen[seen.index(b"attempt(s) left") :]
        expect(b"password for")
        os.write(fd, password.encode() + b"\n")
        expect(b"one-time code: ")
        os.write(fd, account.code(1).encode() + b"\n")
        expect(b"connected as")
        assert password.encode() not in seen and b"bundle-pass-123" not in seen
        os.write(fd, b"\x03")  # Ctrl-C at the terminal: SIGINT to the client
        expect(b"You closed the secure channel")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_cancelling_an_account_ends_its_session_and_its_certificate(channel: Channel) -> None:
    """``provision cancel`` revokes the certificate and ends the live session within
    5 s (the client says why); the cancelled account cannot log in again."""
    channel.start()
    account = channel.open_account()
    client = channel.connect(account)
    channel.connected(client)
    started = time.monotonic()
    channel.run("provision", "cancel", account.name, check_rc=0)
    status = client.wait_exit()
    assert time.monotonic() - started <= 5.0 + 1.0
    assert status in (15, 16), client.output  # account-cancelled or cert-revoked
    again = channel.connect(account, otp=account.code(1))
    assert again.wait_exit() != 0
