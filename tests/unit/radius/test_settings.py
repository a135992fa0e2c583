"""``[radius]`` in ssgate.toml and the NAS it names: off until a client is configured,
every problem a one-line error naming the key, secrets never in a message or a repr."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from radius import NasClient, NasDirectory, NasSettingsError, parse_networks
from ssgate import cli
from ssgate._config import ConfigError, parse_config, render_default_config
from ssgate._radius import RadiusSetupError, radius_clients

CLIENT = (
    '[[radius.client]]\nname = "bras-1"\nsources = ["10.1.2.3/32"]\nsecret_file = "bras-1.secret"\n'
)


def test_radius_is_off_by_default_and_in_the_template_listens_on_loopback() -> None:
    for text in ("", render_default_config(hostname="h")):
        radius = parse_config(text, source="ssgate.toml").radius
        assert not radius.enabled
        assert (radius.interface, radius.auth_port, radius.accounting_port) == (
            "127.0.0.1",
            1812,
            1813,
        )


def test_a_client_turns_it_on_and_must_send_message_authenticator_by_default() -> None:
    radius = parse_config("[radius]\n" + CLIENT, source="ssgate.toml").radius
    assert radius.enabled
    [client] = radius.clients
    assert (client.name, client.sources, client.secret_file) == (
        "bras-1",
        ("10.1.2.3/32",),
        "bras-1.secret",
    )
    assert client.require_message_authenticator is True
    assert client.disconnect_port == 3799


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[radius]\nauth_port = 70000",
            "radius.auth_port = 70000 is invalid; expected an integer from 0 to 65535",
        ),
        (
            "[radius]\ninterface = 'localhost'",
            "radius.interface = 'localhost' is invalid; expected an IP address",
        ),
        ("[radius]\nshared_secret = 'x'", "unknown key radius.shared_secret"),
        (
            "[radius]\nduplicate_window_seconds = 1",
            "radius.duplicate_window_seconds = 1 is invalid",
        ),
        (
            '[[radius.client]]\nname = "bras-1"\nsources = ["10.1.2.3/32"]',
            "[[radius.client]] #1 (bras-1): radius.client.secret_file is required",
        ),
        (
            '[[radius.client]]\nname = "bras-1"\nsources = []\nsecret_file = "f"',
            "radius.client.sources = [] is invalid; expected a non-empty list of CIDR networks",
        ),
        (
            '[[radius.client]]\nname = "bras-1"\nsources = ["10.1.2.300/32"]\nsecret_file = "f"',
            "radius.client.sources = ['10.1.2.300/32'] is invalid",
        ),
        (
            '[[radius.client]]\nname = "BRAS 1"\nsources = ["10.0.0.1/32"]\nsecret_file = "f"',
            "radius.client.name = 'BRAS 1' is invalid; expected a NAS name",
        ),
        (
            '[[radius.client]]\nname = "bras-1"\nsources = ["10.0.0.1/32"]\nsecret_file = "f"\nsecret = "x"',
            "unknown key radius.client.secret;",
        ),
        (
            '[[radius.client]]\nname = "b"\nsources = ["10.0.0.1/32"]\nsecret_file = "f"\nrequire_message_authenticator = "no"',
            "radius.client.require_message_authenticator = 'no' is invalid; expected true or false",
        ),
        (CLIENT + CLIENT, "radius.client.name 'bras-1' appears twice"),
        ("[radius]\naccounting_port = -1", "radius.accounting_port = -1 is invalid"),
        (
            CLIENT + "disconnect_port = 0\n",
            "radius.client.disconnect_port = 0 is invalid; expected an integer from 1 to 65535",
        ),
    ],
)
def test_bad_radius_settings_are_refused_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="/etc/ssgate/ssgate.toml")
    assert str(info.value).startswith("/etc/ssgate/ssgate.toml: ")
    assert expected in str(info.value)


def _state(tmp_path: Path, text: str) -> Path:
    (tmp_path / "ssgate.toml").write_text(text)
    return tmp_path


def test_secret_files_are_read_relative_to_the_state_directory_without_the_newline(
    tmp_path: Path,
) -> None:
    (tmp_path / "bras-1.secret").write_bytes(b"a-shared-secret-of-24-by\n")
    (tmp_path / "bras-1.secret").chmod(0o600)
    config = parse_config("[radius]\n" + CLIENT, source="ssgate.toml").radius
    [client] = radius_clients(tmp_path, config)
    assert client.secret == b"a-shared-secret-of-24-by"
    assert "a-shared" not in repr(client)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (None, "radius.client.secret_file {path}: no such file"),
        (b"short\n", "the shared secret must be 16 to 128 bytes (it is 5)"),
        (b"a-shared-secret-of-24-by", "mode 0644 lets other users read the secret; run: chmod 600"),
    ],
)
def test_an_unusable_secret_file_names_the_key_and_never_the_secret(
    tmp_path: Path, secret: bytes | None, expected: str
) -> None:
    if secret is not None:
        (tmp_path / "bras-1.secret").write_bytes(secret)
        (tmp_path / "bras-1.secret").chmod(0o600 if b"short" in secret else 0o644)
    config = parse_config("[radius]\n" + CLIENT, source="ssgate.toml").radius
    with pytest.raises(RadiusSetupError) as info:
        radius_clients(tmp_path, config)
    assert expected.format(path=tmp_path / "bras-1.secret") in str(info.value)
    assert "[[radius.client]] bras-1" in str(info.value)
    assert "short" not in str(info.value) and "a-shared" not in str(info.value)


def test_two_nas_whose_sources_overlap_are_refused() -> None:
    a = NasClient("a", parse_networks(["10.0.0.0/8"]), b"x" * 16)
    b = NasClient("b", parse_networks(["10.1.0.0/16"]), b"y" * 16)
    with pytest.raises(
        NasSettingsError, match=r"NAS a \(10.0.0.0/8\) and NAS b \(10.1.0.0/16\) overlap"
    ):
        NasDirectory([a, b])


def test_a_nas_is_found_by_source_address_and_ipv4_mapped_addresses_count() -> None:
    nas = NasDirectory([NasClient("a", parse_networks(["10.0.0.0/8"]), b"x" * 16)])
    assert nas.for_source("10.2.3.4").name == "a"  # type: ignore[union-attr]
    assert nas.for_source("::ffff:10.2.3.4").name == "a"  # type: ignore[union-attr]
    assert nas.for_source("192.0.2.1") is None and nas.for_source("not an address") is None


def _radius_test(state: Path, *argv: str) -> tuple[int, str, str]:
    out = io.StringIO()
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = cli.main(["--state", str(state), "radius", "test", *argv], out=out)
    return status, out.getvalue(), err.getvalue()


def test_ssgate_radius_test_without_clients_says_radius_is_off(tmp_path: Path) -> None:
    status, _, err = _radius_test(_state(tmp_path, ""), "33068212345678@sxlss")
    assert status == 2
    assert err.startswith("ssgate: ") and "[radius] has no [[radius.client]]" in err
    assert "Traceback" not in err


def test_ssgate_radius_test_names_an_unknown_client(tmp_path: Path) -> None:
    status, _, err = _radius_test(
        _state(tmp_path, "[radius]\n" + CLIENT), "33068212345678@sxlss", "--client", "nope"
    )
    assert status == 2
    assert "--client nope: no such [[radius.client]]; configured: bras-1" in err
