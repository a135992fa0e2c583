"""``ssgate connect``: read the profile and secrets, then run the channel client.

Secrets come from files (``--password-file``, ``--p12-password-file``) or from a
prompt without echo; with no terminal to prompt on, the command says which option to
give instead of waiting.  Every failure is one sentence in Chinese and English and
an exit status of its own (``ssgate connect --help`` lists them, in both languages:
:func:`configure_parser` is the command's whole command-line face).
"""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from gateway import (
    EXIT_SETUP,
    EXIT_UNREACHABLE,
    ClientSetupError,
    ConnectClient,
    Reason,
    load_identity,
    load_profile,
    parse_listen,
)

DEFAULT_LISTEN = "127.0.0.1:8080"


DESCRIPTION = (
    "单位端安全专网客户端：连接网关、登录（密码 + 动态口令），在本机回环地址上提供申报页面。\n"
    "The employer's secure-channel client: dial the gateway, log in (password + "
    "one-time code), serve the declaration pages on a loopback address."
)


def exit_status_help() -> str:
    """The exit-status table for ``--help``, in Chinese and English."""
    lines = [
        "退出状态 / exit status:",
        f"  {0:>3}  您关闭了安全通道（Ctrl-C）。 You closed the channel (Ctrl-C).",
        f"  {EXIT_SETUP:>3}  配置文件、证书包、证书密码或选项有误（含 --profile 路径不存在或不是"
        "配置文件），或本机监听地址被占用；此时尚未登录。"
        " Bad profile, bundle, passphrase or option (a missing or wrong --profile path "
        "included), or the --listen address is busy; no login was made.",
        f"  {EXIT_UNREACHABLE:>3}  无法连接网关，或网关证书不对。"
        " The gateway cannot be reached or its certificate is wrong.",
        "  其余为会话结束或登录被拒绝的原因代码 / otherwise the reason the session ended "
        "or the login was refused:",
    ]
    lines += [f"  {r.code:>3}  {r.slug}: {r.chinese} {r.english}" for r in Reason if r.code != 10]
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The options, help and exit-status list of ``ssgate connect``."""
    parser.description = DESCRIPTION
    parser.epilog = exit_status_help()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser._optionals.title = "选项 / options"  # argparse's own words, in both languages too
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            action.help = "显示本帮助并退出。 Show this help and exit"
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="开通包中的 profile.toml（client.p12 与 ca.pem 在同一目录）。"
        " profile.toml from the enrolment bundle (client.p12 and ca.pem beside it)",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"供浏览器访问的本机回环地址（默认 {DEFAULT_LISTEN}；端口 0：任一空闲端口）；"
        "登录前先监听，端口被占用时立即退出，不消耗动态口令。"
        f" Loopback address for the browser (default {DEFAULT_LISTEN}; port 0: any "
        "free one); bound before the login, so a busy port fails at once without "
        "spending the code",
    )
    parser.add_argument(
        "--password-file",
        metavar="F",
        help="从文件第一行读取密码；默认在终端提示输入。"
        " Password (first line of F); default: prompt",
    )
    parser.add_argument(
        "--otp",
        metavar="CODE",
        help="当前的动态口令（每个口令只能使用一次）；默认在终端提示输入。"
        " The current one-time code (each works once); default: prompt",
    )
    parser.add_argument(
        "--p12-password-file",
        metavar="F",
        help="从文件第一行读取 client.p12 的证书密码；默认在终端提示输入。"
        " client.p12 passphrase (first line of F); default: prompt",
    )


def _secret(path: str | None, prompt: str, option: str, stdin: TextIO) -> str:
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.readline().rstrip("\r\n")
        except OSError as e:
            raise ClientSetupError(
                f"{option} {path}: 无法读取（{e.strerror}）。 Cannot read ({e.strerror})."
            ) from None
        except UnicodeDecodeError:
            raise ClientSetupError(f"{option} {path}: 不是 UTF-8 文本。 Not UTF-8 text.") from None
        if not value:
            raise ClientSetupError(
                f"{option} {path}: 文件为空（使用第一行）。 Empty (the first line is used)."
            )
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
    profile_path: str | None,
    listen: str,
    password_file: str | None,
    otp: str | None,
    p12_password_file: str | None,
    out: TextIO,
    stdin: TextIO = sys.stdin,
    reactor: Any = None,
    err: TextIO | None = None,
) -> int:
    """Run the client until its session ends; the exit status (``--help`` lists them).

    A setup problem is one line on *err* (default stderr) and status 2, before any
    connection; what the running client says goes to *out*."""
    err = err if err is not None else sys.stderr
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    try:
        if not profile_path:
            raise ClientSetupError(
                "缺少 --profile：请指定开通包中的 profile.toml。"
                " --profile is missing: name the profile.toml of your enrolment bundle."
            )
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
        err.write(f"ssgate connect: {e}\n")
        return EXIT_SETUP
    except (EOFError, KeyboardInterrupt):
        err.write("\nssgate connect: cancelled / 已取消\n")
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
