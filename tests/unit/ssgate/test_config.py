"""ssgate.toml validation: every problem names the file, the key and the allowed form."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssgate._config import ConfigError, load_config, parse_config, render_default_config


def test_the_template_init_writes_is_valid_and_carries_the_hostname() -> None:
    config = parse_config(render_default_config(hostname="gw.example.cn"), source="ssgate.toml")
    assert config.gateway.public_host == "gw.example.cn"
    assert config.accounts.realms == ("sxlss",)
    assert config.lockout.threshold == 5 and config.lockout.hard_cap == 20
    assert config.console.idle_timeout_seconds == 900
    assert config.console.max_lifetime_seconds == 8 * 3600


def test_the_display_zone_is_shanghai_unless_another_iana_zone_is_named() -> None:
    assert parse_config("", source="ssgate.toml").display.time_zone == "Asia/Shanghai"
    config = parse_config('[display]\ntime_zone = "Europe/Berlin"', source="ssgate.toml")
    assert str(config.display.zone) == "Europe/Berlin"
    template = parse_config(render_default_config(hostname="h"), source="ssgate.toml")
    assert template.display.time_zone == "Asia/Shanghai"


def test_an_empty_file_means_all_defaults() -> None:
    config = parse_config("", source="ssgate.toml")
    assert config.gateway.listen == "tcp:8443"
    assert config.database.url == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[nosuch]\nx = 1", "unknown section [nosuch]"),
        ("[gateway]\nlisten_port = 1", "unknown key gateway.listen_port"),
        (
            "[gateway]\nlisten = 8443",
            "gateway.listen = 8443 is invalid; expected a Twisted endpoint",
        ),
        (
            "[lockout]\nhard_cap = 101",
            "lockout.hard_cap = 101 is invalid; expected an integer from 1 to 100",
        ),
        ("[lockout]\nthreshold = true", "lockout.threshold = True is invalid"),
        (
            "[lockout]\nthreshold = 10\nhard_cap = 5",
            "hard_cap (5) must be at least lockout.threshold (10)",
        ),
        ("[passwords]\nargon2_memory_kib = 1024", "passwords.argon2_memory_kib = 1024 is invalid"),
        ("[accounts]\nrealms = []", "accounts.realms = [] is invalid; expected a non-empty list"),
        ("[accounts]\nregions = ['33068']", "accounts.regions = ['33068'] is invalid"),
        ("[database]\nurl = 'mysql://x'", "database.url = 'mysql://x' is invalid"),
        (
            "[console]\nidle_timeout_seconds = 3600\nmax_lifetime_seconds = 1800",
            "console.max_lifetime_seconds (1800) must be at least "
            "console.idle_timeout_seconds (3600)",
        ),
        ("[console]\nidle_timeout_seconds = 5", "console.idle_timeout_seconds = 5 is invalid"),
        ("[display]\ntime_zone = 'Beijing'", "display.time_zone = 'Beijing' is invalid"),
        ("[display]\ntime_zone = '../etc/passwd'", "expected an IANA time zone name"),
        ("[display]\ntime_zone = 8", "display.time_zone = 8 is invalid"),
        ("gateway = 3", "gateway must be a table"),
        ("[gateway", "not valid TOML"),
    ],
)
def test_bad_configuration_is_refused_naming_file_key_and_form(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="/etc/ssgate/ssgate.toml")
    assert str(info.value).startswith("/etc/ssgate/ssgate.toml: ")
    assert expected in str(info.value)


def test_a_missing_file_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run 'ssgate init' first"):
        load_config(tmp_path / "ssgate.toml")


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ssgate.toml"
    path.write_bytes(b"\xff\xfe[gateway]")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)


def test_audit_retention_defaults_to_the_legal_minimum_of_180_days() -> None:
    assert parse_config("", source="ssgate.toml").audit.retention_days == 180
    template = parse_config(render_default_config(hostname="gw"), source="ssgate.toml")
    assert template.audit.retention_days == 180
    assert parse_config("[audit]\nretention_days = 400", source="s").audit.retention_days == 400


@pytest.mark.parametrize("value", ["179", "0", "-1", "180.0", "true", '"180"'])
def test_audit_retention_below_180_days_or_not_an_integer_names_the_law(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f"[audit]\nretention_days = {value}", source="ssgate.toml")
    message = str(raised.value)
    assert message.startswith("ssgate.toml: audit.retention_days = ")
    assert "an integer from 180 to 36500 days" in message
    assert "网络安全法 (Cybersecurity Law) Art. 21" in message
