"""SITEWATCH_PERSONAL_DATA_KEY_FILE: the SM4 key may live outside the data directory, so a
copy of the data directory carries ciphertext without its key (docs/security.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import Settings
from stack.up import KeyFileError, personal_data_key


def test_without_a_file_the_key_is_made_once_in_the_data_directory(tmp_path: Path) -> None:
    first = personal_data_key(Settings(), tmp_path)
    assert personal_data_key(Settings(), tmp_path) == first
    kept = tmp_path / "secrets" / "personal-data.key"
    assert kept.read_text() == first and kept.stat().st_mode & 0o777 == 0o600


def test_a_key_file_outside_the_data_directory(tmp_path: Path) -> None:
    data, vault = tmp_path / "data", tmp_path / "vault"
    key_file = vault / "sm4.key"
    settings = Settings(personal_data_key_file=str(key_file))
    key = personal_data_key(settings, data)  # made on first use, owner-only
    assert key_file.read_text() == key and len(key) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert personal_data_key(settings, data) == key
    assert not (data / "secrets" / "personal-data.key").exists()  # nothing left in the data dir


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "sm4.key"
    key_file.write_text("00112233445566778899aabbccddeeff")
    key_file.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        personal_data_key(Settings(personal_data_key_file=str(key_file)), tmp_path / "data")


def test_a_malformed_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "sm4.key"
    key_file.write_text("not a key")
    key_file.chmod(0o600)
    with pytest.raises(KeyFileError, match="32 hexadecimal"):
        personal_data_key(Settings(personal_data_key_file=str(key_file)), tmp_path / "data")


def test_a_key_file_inside_the_data_directory_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "keys" / "sm4.key"
    with caplog.at_level(logging.WARNING, logger="sitewatch.stack"):
        personal_data_key(Settings(personal_data_key_file=str(key_file)), tmp_path)
    assert "inside the data directory" in caplog.text


def test_the_environment_variable_wins(tmp_path: Path) -> None:
    settings = Settings(
        personal_data_key=SecretStr("ffeeddccbbaa99887766554433221100"),
        personal_data_key_file=str(tmp_path / "unused.key"),
    )
    assert personal_data_key(settings, tmp_path) == "ffeeddccbbaa99887766554433221100"
    assert not (tmp_path / "unused.key").exists()
