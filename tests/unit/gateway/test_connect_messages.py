"""What ``ssgate connect`` says, in Chinese and English (issue 11, the employer's client):
setup failures naming the file and the problem, the exit-status list of ``--help``,
the refusal of a login (a code works once; how long a lock lasts, or call the carrier)
and the officer's note when a session is terminated."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from gateway._client import (
    CODE_ONCE_HINT,
    ClientSetupError,
    load_profile,
    officer_kill_text,
    parse_listen,
    refusal_text,
)
from gateway._frames import RETRY_AFTER_CALL_CARRIER
from gateway._reasons import Reason
from ssgate._connect import exit_status_help, run_connect

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def bilingual(text: str) -> bool:
    """Some Chinese and an English sentence of at least three words."""
    return (
        bool(CHINESE.search(text)) and re.search(r"[A-Za-z]+ [A-Za-z]+ [A-Za-z]+", text) is not None
    )


GOOD_PROFILE = """\
account = "33068212345678@sxlss"
gateway_host = "gw.example.org"
gateway_port = 8443
ca_fingerprint_sha256 = "00"
ca_file = "ca.pem"
client_bundle = "client.p12"
"""


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "No such profile"),
        ("directory", "This is a directory"),
        ("x = = 1", "Not a valid profile"),
        (b"\xff\xfe", "Not a valid profile"),
        (GOOD_PROFILE.replace("gateway_port = 8443\n", ""), "gateway_port missing or not a int"),
        (GOOD_PROFILE + 'colour = "blue"\n', "Unknown keys colour"),
        (GOOD_PROFILE.replace("8443", "70000"), "gateway_port must be 1-65535"),
    ],
)
def test_a_missing_or_wrong_profile_is_named_in_both_languages(
    tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    path = tmp_path / "profile.toml"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ClientSetupError) as e:
        load_profile(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert bilingual(message) and "Traceback" not in message


@pytest.mark.parametrize("listen", ["8080", "localhost:8080", "10.0.0.1:8080", "127.0.0.1:99999"])
def test_a_bad_listen_address_is_refused_in_both_languages(listen: str) -> None:
    with pytest.raises(ClientSetupError) as e:
        parse_listen(listen)
    assert bilingual(str(e.value)) and str(e.value).startswith("--listen ")


def test_a_listen_address_with_control_characters_is_not_echoed_raw() -> None:
    with pytest.raises(ClientSetupError) as e:
        parse_listen("\x1b[2J:80")
    assert "\x1b" not in str(e.value)


def test_connect_without_a_profile_says_so_in_both_languages_and_exits_2() -> None:
    out = io.StringIO()
    status = run_connect(
        profile_path=None,
        listen="127.0.0.1:0",
        password_file=None,
        otp=None,
        p12_password_file=None,
        out=io.StringIO(),
        err=out,
        stdin=io.StringIO(),
        reactor=object(),
    )
    assert status == 2
    assert "--profile is missing" in out.getvalue() and bilingual(out.getvalue())


def test_connect_with_a_wrong_profile_path_exits_2_with_one_line(tmp_path: Path) -> None:
    out = io.StringIO()
    status = run_connect(
        profile_path=str(tmp_path / "nope.toml"),
        listen="127.0.0.1:0",
        password_file=None,
        otp=None,
        p12_password_file=None,
        out=io.StringIO(),
        err=out,
        stdin=io.StringIO(),
        reactor=object(),
    )
    assert status == 2
    assert out.getvalue().count("\n") == 1 and "No such profile" in out.getvalue()


def test_the_exit_status_list_is_in_both_languages_and_names_every_status() -> None:
    text = exit_status_help()
    lines = text.splitlines()
    assert lines[0] == "退出状态 / exit status:"
    for reason in Reason:
        if reason is Reason.CLIENT_QUIT:
            continue
        [line] = [ln for ln in lines if re.match(rf"\s+{reason.code}\s+{reason.slug}:", ln)]
        assert reason.chinese in line and reason.english in line
    for status in (0, 2, 3):
        [line] = [ln for ln in lines if re.match(rf"\s+{status}\s+\D", ln)]
        assert bilingual(line)
    assert "--profile" in text  # a missing or wrong profile path is exit 2


def test_a_refused_code_keeps_the_generic_sentence_and_says_a_code_works_once() -> None:
    text = refusal_text(Reason.AUTH_FAILED)
    first, second = text.splitlines()
    assert first == Reason.AUTH_FAILED.bilingual  # never which factor was wrong
    assert second == CODE_ONCE_HINT
    assert "只能使用一次" in second and "wait for the next code" in second


@pytest.mark.parametrize(
    ("retry_after", "minutes"), [(1, 1), (60, 1), (61, 2), (840, 14), (3600, 60)]
)
def test_a_lock_says_how_many_minutes_rounded_up(retry_after: int, minutes: int) -> None:
    text = refusal_text(Reason.LOCKED, retry_after)
    assert f"请在 {minutes} 分钟后再试" in text
    assert f"try again in {minutes} minute{'s' if minutes != 1 else ''}." in text


def test_a_lock_at_the_hard_cap_says_to_call_the_carrier() -> None:
    text = refusal_text(Reason.LOCKED, RETRY_AFTER_CALL_CARRIER)
    assert "联系电信运营商" in text and "please call the carrier" in text
    assert "minute" not in text


@pytest.mark.parametrize("retry_after", [None, 0])
def test_a_lock_of_unknown_length_keeps_the_standard_sentence(retry_after: int | None) -> None:
    assert refusal_text(Reason.LOCKED, retry_after) == Reason.LOCKED.bilingual


@pytest.mark.parametrize(("retry_after", "minutes"), [(1, 1), (61, 2), (870, 15)])
def test_a_throttled_source_is_told_how_many_minutes_to_wait(
    retry_after: int, minutes: int
) -> None:
    text = refusal_text(Reason.THROTTLED, retry_after)
    assert f"该网络地址登录失败次数过多，请在 {minutes} 分钟后再试。" in text
    assert f"please try again in {minutes} minute{'s' if minutes != 1 else ''}." in text


@pytest.mark.parametrize("retry_after", [None, 0])
def test_a_throttle_of_unknown_length_keeps_the_standard_sentence(retry_after: int | None) -> None:
    assert refusal_text(Reason.THROTTLED, retry_after) == Reason.THROTTLED.bilingual


def test_the_officers_note_is_printed_after_the_fixed_words() -> None:
    assert officer_kill_text("请致电 0575-1234") == (
        "会话已被安全管理员终止 / Terminated by a security officer: 请致电 0575-1234"
    )
    assert officer_kill_text("\x07\n\t\u200b") == Reason.OFFICER_KILL.bilingual
    assert "\x07" not in officer_kill_text("bell\x07")


def test_connect_help_is_in_both_languages_from_options_to_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ssgate.cli import main

    with pytest.raises(SystemExit) as e:
        main(["connect", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "单位端安全专网客户端" in text and "The employer's secure-channel client" in text
    assert "选项 / options:" in text and "显示本帮助并退出" in text
    for option in ("--profile", "--listen", "--password-file", "--otp", "--p12-password-file"):
        [line] = [ln for ln in text.splitlines() if ln.strip().startswith(option)]
        assert CHINESE.search(line) or CHINESE.search(text[text.index(line) :][:200]), option
    assert exit_status_help() in text
