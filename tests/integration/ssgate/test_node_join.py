"""``ssgate node export`` and ``ssgate init --join`` (issue 13): a second node's state
directory from a passphrase-sealed export — the same CA, keys and configuration, the
same database, never the database file, sockets or locks; a wrong passphrase or a
changed file is refused with one clear line and nothing created."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from ssgate import cli
from ssgate._nodes import open_export

PASSPHRASE = "join-me-please-42"


def ssgate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def node_a(tmp_path: Path) -> Path:
    """A state directory whose database lives outside it (as a shared one does)."""
    state = tmp_path / "node-a"
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    code, out = ssgate(
        "--state", str(state), "init", "--hostname", "gw.example.cn", "--database-url", url
    )
    assert code == 0, out
    # What a running node leaves beside its files: none of it may travel.
    (state / "declare.sock").write_bytes(b"")
    (state / "serve.lock").write_bytes(b"123")
    (state / ".ssgate.toml.abc.tmp").write_bytes(b"half")
    return state


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_text(PASSPHRASE + "\n", encoding="utf-8")
    return path


def export(node_a: Path, passphrase_file: Path, out: Path) -> None:
    code, text = ssgate(
        "--state", str(node_a), "node", "export", "--out", str(out),
        "--passphrase-file", str(passphrase_file),
    )  # fmt: skip
    assert code == 0, text
    assert "init --join" in text


def test_export_then_join_gives_a_node_with_the_same_ca_keys_and_database(
    node_a: Path, passphrase_file: Path, tmp_path: Path
) -> None:
    sealed = tmp_path / "node.export"
    export(node_a, passphrase_file, sealed)
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    raw = sealed.read_bytes()
    assert b"PRIVATE KEY" not in raw and b"[policy]" not in raw  # sealed, not encoded

    node_b = tmp_path / "node-b"
    code, text = ssgate(
        "--state", str(node_b), "init", "--join", str(sealed),
        "--passphrase-file", str(passphrase_file),
    )  # fmt: skip
    assert code == 0, text
    assert stat.S_IMODE(node_b.stat().st_mode) == 0o700
    names = {p.name for p in node_b.iterdir()}
    assert {"ssgate.toml", "ca.pem", "ca-key.pem", "server.pem", "server-key.pem"} <= names
    assert {"totp.key", "identity.key", "resume.key", "audit.key", "rates.toml"} <= names
    assert not names & {"declare.sock", "serve.lock", "ssgate.db", ".ssgate.toml.abc.tmp"}
    for name in ("ca-key.pem", "server-key.pem", "totp.key", "identity.key", "ssgate.toml"):
        assert (node_b / name).read_bytes() == (node_a / name).read_bytes(), name
        assert stat.S_IMODE((node_b / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((node_b / "ca.pem").stat().st_mode) == 0o644
    # The same database: B sees the CRL A's init stored, and both exports are audited.
    code, text = ssgate("--state", str(node_b), "pki", "crl")
    assert code == 0 and "CRL from:     the database" in text, text
    code, text = ssgate("--state", str(node_b), "audit", "actions", "--format", "json")
    actions = [json.loads(line)["action"] for line in text.splitlines()]
    assert code == 0 and "node.export" in actions and "node.join" in actions, text


def test_a_wrong_passphrase_is_refused_and_creates_nothing(
    node_a: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sealed = tmp_path / "node.export"
    export(node_a, passphrase_file, sealed)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-passphrase\n", encoding="utf-8")
    node_b = tmp_path / "node-b"
    code, _ = ssgate(
        "--state", str(node_b), "init", "--join", str(sealed), "--passphrase-file", str(wrong)
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "wrong passphrase" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not node_b.exists()
    assert not list(tmp_path.glob(".node-b.*"))


def test_a_changed_export_is_refused_whatever_was_changed(
    node_a: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One flipped bit of the ciphertext, or a weakened key-derivation parameter in
    the header (authenticated with it): both refused; and a file that is not an
    export at all says so."""
    sealed = tmp_path / "node.export"
    export(node_a, passphrase_file, sealed)
    document = json.loads(sealed.read_text(encoding="utf-8"))
    ciphertext = bytearray(document["ciphertext"].encode())
    ciphertext[40] = ord("A") if ciphertext[40] != ord("A") else ord("B")
    flipped = tmp_path / "flipped.export"
    flipped.write_text(json.dumps({**document, "ciphertext": ciphertext.decode()}), "utf-8")
    weakened = tmp_path / "weakened.export"
    weakened.write_text(json.dumps({**document, "n": 2**14}), encoding="utf-8")
    garbage = tmp_path / "garbage.export"
    garbage.write_bytes(b"\x00not json")

    for path, words in (
        (flipped, "or the file was changed"),
        (weakened, "or the file was changed"),
        (garbage, "not a node export"),
    ):
        node_b = tmp_path / f"node-{path.stem}"
        code, _ = ssgate(
            "--state", str(node_b), "init", "--join", str(path),
            "--passphrase-file", str(passphrase_file),
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and words in err, (path.name, err)
        assert not node_b.exists()
    assert "ssgate.toml" in open_export(sealed, PASSPHRASE)  # the original still opens


def test_export_is_refused_for_a_database_inside_the_state_directory(
    tmp_path: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "alone"
    assert ssgate("--state", str(state), "init")[0] == 0
    code, _ = ssgate(
        "--state", str(state), "node", "export", "--out", str(tmp_path / "x"),
        "--passphrase-file", str(passphrase_file),
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "which another node cannot share" in err, err
    assert not (tmp_path / "x").exists()


def test_join_refuses_a_state_directory_already_in_use(
    node_a: Path, passphrase_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sealed = tmp_path / "node.export"
    export(node_a, passphrase_file, sealed)
    before = sorted(p.name for p in node_a.iterdir())
    code, _ = ssgate(
        "--state", str(node_a), "init", "--join", str(sealed),
        "--passphrase-file", str(passphrase_file),
    )  # fmt: skip
    assert code == 1 and "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in node_a.iterdir()) == before


def test_node_policy_compares_this_file_with_the_shared_copy_and_replace_stores_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "alone"
    assert ssgate("--state", str(state), "init")[0] == 0
    code, text = ssgate("--state", str(state), "node", "policy")
    assert code == 0 and "no policy stored yet" in text
    code, text = ssgate("--state", str(state), "node", "policy", "--replace")
    assert code == 0 and "the one every node shares" in text
    config = state / "ssgate.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("max_sessions = 2", "max_sessions = 5"),
        encoding="utf-8",
    )
    code, text = ssgate("--state", str(state), "node", "policy")
    assert code == 1 and "policy.max_sessions: here 5, shared 2" in text, text
    code, text = ssgate("--state", str(state), "node", "policy", "--replace")
    assert code == 0 and "changed: policy.max_sessions" in text
    assert ssgate("--state", str(state), "node", "policy")[0] == 0
