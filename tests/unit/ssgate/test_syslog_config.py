"""``[syslog]`` in ssgate.toml: collectors parse into values, a bad key or value is one
line naming the file, the collector and the key, and unusable TLS files stop serve
with a message naming the key (never a key's contents)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ssgate._config import ConfigError, parse_config, render_default_config
from ssgate._syslog import SyslogSetupError, client_tls


def test_the_default_config_documents_syslog_and_forwards_nowhere() -> None:
    text = render_default_config(hostname="gw.example.cn")
    assert "# [syslog]" in text and "# [[syslog.collector]]" in text
    assert parse_config(text, source="ssgate.toml").syslog.collectors == ()


def test_the_documented_example_parses_when_uncommented() -> None:
    text = render_default_config(hostname="gw.example.cn")
    block = text[text.index("# [syslog]") : text.index("[pki]")]
    setting = re.compile(r"^# (\[.*\]|[a-z_]+ = .*)$")
    lines = [m.group(1) for m in map(setting.match, block.splitlines()) if m]
    config = parse_config("\n".join(lines), source="ssgate.toml").syslog
    [collector] = config.collectors
    assert (collector.host, collector.port, collector.tls) == ("logs.example.cn", 6514, True)
    assert collector.key == "soc" and collector.expected_name == "logs.example.cn"


def test_ipv6_and_plain_collectors() -> None:
    config = parse_config(
        '[syslog]\n[[syslog.collector]]\naddress = "[2001:db8::5]:514"\ntls = false\n'
        '[[syslog.collector]]\naddress = "10.0.0.5:6514"\nca_file = "ca.pem"\n',
        source="f",
    ).syslog
    assert [(c.host, c.port, c.tls) for c in config.collectors] == [
        ("2001:db8::5", 514, False),
        ("10.0.0.5", 6514, True),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('address = "logs:6514"', "syslog.collector.ca_file is required with tls = true"),
        ('address = "logs"\ntls = false', "syslog.collector.address = 'logs' is invalid"),
        ('address = "logs:99999"\ntls = false', "syslog.collector.address = 'logs:99999'"),
        ('address = "a:1"\ntls = "yes"', "syslog.collector.tls = 'yes' is invalid"),
        ("tls = false", 'needs syslog.collector.address = "host:port"'),
        ('address = "a:1"\nport = 1', "unknown key syslog.collector.port"),
        ('address = "a:1"\nca_file = "c"\ncert_file = "x"', "cert_file and key_file go together"),
        ('address = "a:1"\ntls = false\nserver_name = "a"', "server_name need tls = true"),
    ],
)
def test_a_bad_collector_is_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f"[syslog]\n[[syslog.collector]]\n{text}\n", source="ssgate.toml")
    assert str(e.value).startswith("ssgate.toml: [[syslog.collector]] #1")
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch = 0", "syslog.batch = 0 is invalid"),
        ('sd_id = "a b"', "syslog.sd_id = 'a b' is invalid"),
        ('hostname = "has space"', "syslog.hostname = 'has space' is invalid"),
        ("facility = 24", "syslog.facility = 24 is invalid"),
        ("interval_seconds = 0", "syslog.interval_seconds = 0 is invalid"),
    ],
)
def test_a_bad_syslog_key_is_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        parse_config(f"[syslog]\n{text}\n", source="ssgate.toml")


def test_two_collectors_with_one_name_are_refused() -> None:
    table = '[[syslog.collector]]\naddress = "a:1"\ntls = false\nname = "soc"\n'
    with pytest.raises(ConfigError, match="collector soc appears twice"):
        parse_config("[syslog]\n" + table + table.replace("a:1", "b:1"), source="f")


def test_missing_or_bad_tls_files_name_the_collector_and_key(tmp_path: Path) -> None:
    collector = parse_config(
        '[syslog]\n[[syslog.collector]]\naddress = "logs:6514"\nca_file = "ca.pem"\n'
        'cert_file = "c.pem"\nkey_file = "k.pem"\n',
        source="f",
    ).syslog.collectors[0]
    with pytest.raises(SyslogSetupError, match=r"logs:6514: ca_file .*ca\.pem"):
        client_tls(collector, tmp_path)
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(SyslogSetupError, match=r"ca_file ca\.pem: not a PEM certificate"):
        client_tls(collector, tmp_path)


def test_an_unusable_key_is_named_without_its_contents(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import certs

    now = datetime.now(UTC)
    ca = certs.CertificateAuthority.create("syslog CA", now=now)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "c.pem").write_bytes(ca.issue_client("33068212345678@sxlss", now=now).cert_pem())
    (tmp_path / "k.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nU0VDUkVU\n-----END PRIVATE KEY-----\n"
    )
    collector = parse_config(
        '[syslog]\n[[syslog.collector]]\naddress = "logs:6514"\nca_file = "ca.pem"\n'
        'cert_file = "c.pem"\nkey_file = "k.pem"\n',
        source="f",
    ).syslog.collectors[0]
    with pytest.raises(SyslogSetupError) as e:
        client_tls(collector, tmp_path)
    assert "logs:6514: key_file k.pem: not an unencrypted PEM private key" in str(e.value)
    assert "U0VDUkVU" not in str(e.value)
