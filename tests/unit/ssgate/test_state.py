"""The state directory: atomic writes with the right modes, and refusing unsafe secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ssgate._state import StateDir, StateError, atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_creates_the_file_with_the_requested_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret.key"
    atomic_write(target, b"k" * 32, mode=0o600)
    assert target.read_bytes() == b"k" * 32
    assert _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temporary left


def test_atomic_write_replaces_content_whole(tmp_path: Path) -> None:
    target = tmp_path / "crl.pem"
    atomic_write(target, b"old", mode=0o644)
    atomic_write(target, b"new content", mode=0o644)
    assert target.read_bytes() == b"new content"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "ssgate.toml"
    atomic_write(target, b"old", mode=0o600)

    class Boom(bytes):
        pass

    with pytest.raises(TypeError):
        atomic_write(target, "not bytes", mode=0o600)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ssgate.toml"]


def test_secret_files_readable_by_others_are_refused(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.write_secret("totp.key", b"k" * 32)
    assert state.key("totp.key") == b"k" * 32
    os.chmod(tmp_path / "totp.key", 0o644)
    with pytest.raises(StateError, match="readable by others; run: chmod 600"):
        state.key("totp.key")


def test_a_key_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.write_secret("totp.key", b"short")
    with pytest.raises(StateError, match="expected a 32-byte key"):
        state.key("totp.key")


def test_a_directory_without_config_is_not_a_state_directory(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="not an ssgate state directory"):
        StateDir(tmp_path).require()


def test_a_state_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ssgate.toml").write_text("")
    os.chmod(tmp_path, 0o755)
    with pytest.raises(StateError, match="chmod 700"):
        StateDir(tmp_path).require()


def test_the_audit_key_is_created_once_mode_0600_with_its_public_key_beside_it(
    tmp_path: Path,
) -> None:
    os.chmod(tmp_path, 0o700)
    state = StateDir(tmp_path)
    key = state.audit_signing_key()
    assert stat.S_IMODE((tmp_path / "audit.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "audit-key.pub.pem").stat().st_mode) == 0o644
    again = state.audit_signing_key()  # read back, not made anew
    assert again.private_bytes_raw() == key.private_bytes_raw()
    assert b"BEGIN PUBLIC KEY" in (tmp_path / "audit-key.pub.pem").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit-key.pub.pem", "audit.key"]


def test_an_audit_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.audit_signing_key()
    os.chmod(tmp_path / "audit.key", 0o644)
    with pytest.raises(StateError, match="chmod 600"):
        state.audit_signing_key()
