"""``ssgate connect``: read the profile and secrets, then run the channel client.

Secrets come from files (``--password-file``, ``--p12-password-file``) or from a
prompt without echo; with no terminal to prompt on, the command says which option to
give instead of waiting.  Every failure is one sentence in Chinese and English and
an exit status of its own (``ssgate connect --help`` lists them).
"""

from __future__ import annotations

import getpass
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from gateway import (
    EXIT_SETUP,
    ClientSetupError,
    ConnectClient,
    Reason,
    load_identity,
    load_profile,
    parse_listen,
)

DEFAULT_LISTEN = "127.0.0.1:8080"


def exit_status_help() -> str:
    """The exit-status table for ``--help``."""
    lines = [
        "exit status: 0 you closed the channel (Ctrl-C); "
        f"{EXIT_SETUP} bad profile, bundle, passphrase or option; "
        "3 the gateway cannot be reached or its certificate is wrong;",
        "otherwise the reason the session ended or the login was refused:",
    ]
    lines += [f"  {r.code:>3}  {r.slug}: {r.english}" for r in Reason if r.code != 10]
    return "\n".join(lines)


def _secret(path: str | None, prompt: str, option: str, stdin: TextIO) -> str:
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.readline().rstrip("\r\n")
        except OSError as e:
            raise ClientSetupError(f"{option} {path}: cannot read ({e.strerror})") from None
        except UnicodeDecodeError:
            raise ClientSetupError(f"{option} {path}: not UTF-8 text") from None
        if not value:
            raise ClientSetupError(f"{option} {path}: empty (the first line is used)")
        return value
    if not stdin.isatty():
        raise ClientSetupError(
            f"no terminal to ask for it: give {option} / 非交互方式运行时请使用 {option}"
        )
    value = getpass.getpass(prompt)
    if not value:
        raise ClientSetupError("nothing entered / 未输入")
    return value


def run_connect(
    *,
    profile_path: str,
    listen: str,
    password_file: str | None,
    otp: str | None,
    p12_password_file: str | None,
    out: TextIO,
    stdin: TextIO = sys.stdin,
    reactor: Any = None,
) -> int:
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    try:
        listen_at = parse_listen(listen)
        profile = load_profile(Path(profile_path))
        passphrase = _secret(
            p12_password_file,
            "证书密码 / certificate (client.p12) passphrase: ",
            "--p12-password-file",
            stdin,
        )
        identity = load_identity(profile, passphrase.encode())
        password = _secret(
            password_file, f"密码 / password for {profile.account}: ", "--password-file", stdin
        )
        if otp is None:
            if not stdin.isatty():
                raise ClientSetupError(
                    "no terminal to ask for it: give --otp / 非交互方式运行时请使用 --otp"
                )
            otp = getpass.getpass("动态口令 / one-time code: ").strip()
    except ClientSetupError as e:
        out.write(f"ssgate connect: {e}\n")
        return EXIT_SETUP
    except (EOFError, KeyboardInterrupt):
        out.write("\nssgate connect: cancelled / 已取消\n")
        return EXIT_SETUP

    ask_again = None
    if stdin.isatty() and password_file is None:

        def ask_again() -> Deferred[tuple[str, str]]:
            # Prompting blocks: on a thread, so keepalives and deadlines keep running.
            def ask() -> tuple[str, str]:
                again = getpass.getpass(f"密码 / password for {profile.account}: ")
                code = getpass.getpass("动态口令 / one-time code: ").strip()
                return again, code

            d: Deferred[tuple[str, str]] = deferToThread(ask)
            return d

    client = ConnectClient(
        ask_again=ask_again,
        reactor=reactor,
        profile=profile,
        identity=identity,
        password=password,
        otp=otp,
        listen=listen_at,
        out=out,
    )
    status: list[int] = []

    def finished(code: int) -> None:
        status.append(code)
        if reactor.running:
            reactor.stop()

    def give_up() -> None:
        if not status:  # the GOAWAY could not be delivered; leave anyway
            finished(0)

    def interrupted(signum: int, frame: object) -> None:
        reactor.callFromThread(client.quit)
        reactor.callFromThread(reactor.callLater, 3.0, give_up)

    client.start().addCallback(finished)
    # Ctrl-C and SIGTERM end the session with GOAWAY(client-quit), then stop.
    reactor.callWhenRunning(signal.signal, signal.SIGINT, interrupted)
    reactor.callWhenRunning(signal.signal, signal.SIGTERM, interrupted)
    if not status:
        reactor.run(installSignalHandlers=False)
    return status[0] if status else 0
