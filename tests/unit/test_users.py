"""Basic Auth users: hashing, the users file, and the secret store over a fake Secrets port.

The store over Secrets Manager (moto) is in integration/test_secrets_manager.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from unittest import mock

import ghapt.auth.passwords as users
import pytest
from ghapt.auth.passwords import generate_password, hash_password, verify_password
from ghapt.auth.userfile import UserFile
from ghapt.aws.usersecret import SecretUsers
from ghapt.core.errors import ConfigError
from ghapt.core.ports import UserStore


class TestHashing:
    def test_right_password_verifies_and_wrong_does_not(self) -> None:
        stored = hash_password("correct horse")
        assert verify_password(stored, "correct horse")
        assert not verify_password(stored, "correct hors")
        assert not verify_password(stored, "correct horse ")
        assert not verify_password(stored, "")

    def test_hash_is_self_describing_and_salted(self) -> None:
        a, b = hash_password("same"), hash_password("same")
        assert a != b
        scheme, n, r, p, _salt, _digest = a.split("$")
        assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
        assert a.split("$")[4] != b.split("$")[4]
        assert "same" not in a

    def test_verification_uses_constant_time_compare(self) -> None:
        stored = hash_password("pw")
        with mock.patch("ghapt.auth.passwords.hmac.compare_digest", wraps=hmac.compare_digest) as spy:
            assert verify_password(stored, "pw")
            assert not verify_password(stored, "other")
        assert spy.call_count == 2

    def test_unicode_passwords(self) -> None:
        stored = hash_password("pässwörd✓")
        assert verify_password(stored, "pässwörd✓")
        assert not verify_password(stored, "passwortd")

    @pytest.mark.parametrize(
        "stored",
        [
            "",
            "plain",
            "bcrypt$2b$12$abc",
            "scrypt$16384$8$1$c2FsdA==",
            "scrypt$1048576$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44,  # n beyond the memory bound
            "scrypt$1000$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44,  # n not a power of two
            "scrypt$16384$8$1$!!!$" + "A" * 44,
            "scrypt$x$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44,
        ],
    )
    def test_malformed_stored_hash_never_matches_and_still_costs_a_scrypt(self, stored: str) -> None:
        with mock.patch("ghapt.auth.passwords.hashlib.scrypt", wraps=hashlib.scrypt) as spy:
            assert verify_password(stored, "anything") is False
        assert spy.call_count == 1

    def test_unknown_user_check_costs_one_scrypt(self) -> None:
        with mock.patch("ghapt.auth.passwords.hashlib.scrypt", wraps=hashlib.scrypt) as spy:
            assert users.verify_unknown("pw") is False
        assert spy.call_count == 1

    def test_empty_password_cannot_be_hashed(self) -> None:
        with pytest.raises(ValueError, match="the password is empty"):
            hash_password("")

    def test_generated_passwords_are_strong_and_url_safe(self) -> None:
        pws = {generate_password() for _ in range(20)}
        assert len(pws) == 20
        for pw in pws:
            assert len(pw) >= 32
            assert all(c.isalnum() or c in "-_" for c in pw)


class TestUserFile:
    def test_add_verify_remove(self, tmp_path: Path) -> None:
        f = UserFile(tmp_path / "users.json")
        assert f.names() == []
        f.add("alice", "pw-a")
        f.add("bob", "pw-b")
        assert f.names() == ["alice", "bob"]
        assert verify_password(f.load()["alice"], "pw-a")
        assert f.remove("alice") is True
        assert f.remove("alice") is False
        assert f.names() == ["bob"]

    def test_add_replaces_the_password(self, tmp_path: Path) -> None:
        f = UserFile(tmp_path / "users.json")
        f.add("alice", "old")
        f.add("alice", "new")
        assert not verify_password(f.load()["alice"], "old")
        assert verify_password(f.load()["alice"], "new")

    def test_file_is_0600_and_in_the_shared_format(self, tmp_path: Path) -> None:
        path = tmp_path / "state" / "users.json"
        old = os.umask(0o022)
        try:
            UserFile(path).add("alice", "secret-pw")
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        document = json.loads(path.read_text())
        assert list(document) == ["users"]
        assert document["users"]["alice"].startswith("scrypt$")
        assert "secret-pw" not in path.read_text()
        # No temporary files are left behind by the atomic replace.
        assert [p.name for p in path.parent.iterdir()] == ["users.json"]

    @pytest.mark.parametrize(
        ("name", "reason"),
        [
            ("", "is empty"),
            ("a:b", "contains ':'"),
            ("with space", "whitespace or control"),
            ("tab\there", "whitespace or control"),
            ("new\nline", "whitespace or control"),
            ("nul\0", "whitespace or control"),
            ("bell\x07", "whitespace or control"),
            ("x" * 65, "longer than 64 characters"),
        ],
    )
    def test_bad_names_are_refused(self, tmp_path: Path, name: str, reason: str) -> None:
        f = UserFile(tmp_path / "users.json")
        with pytest.raises(ValueError, match=reason):
            f.add(name, "pw")
        assert not (tmp_path / "users.json").exists()

    def test_longest_name_is_accepted(self, tmp_path: Path) -> None:
        f = UserFile(tmp_path / "users.json")
        f.add("x" * 64, "pw")
        assert f.names() == ["x" * 64]

    @pytest.mark.parametrize(
        "text",
        [
            "not json",
            "[]",
            '{"users": []}',
            '{"users": {"a": 1}}',
            '{"users": {"a:b": "scrypt$1"}}',
            '{"users": {"a": "plaintext"}}',
        ],
    )
    def test_broken_file_is_a_config_error_naming_it(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "users.json"
        path.write_text(text)
        with pytest.raises(ConfigError, match=r"users\.json"):
            UserFile(path).load()


class TestFileUsers:
    def test_is_a_user_store(self, tmp_path: Path) -> None:
        assert isinstance(UserFile(tmp_path / "u.json"), UserStore)

    def test_missing_file_means_no_users(self, tmp_path: Path) -> None:
        assert UserFile(tmp_path / "absent.json").lookup("alice") is None

    def test_changes_take_effect_without_restart(self, tmp_path: Path) -> None:
        path = tmp_path / "users.json"
        store = UserFile(path)
        assert store.lookup("alice") is None
        UserFile(path).add("alice", "pw")
        assert verify_password(store.lookup("alice") or "", "pw")
        UserFile(path).remove("alice")
        assert store.lookup("alice") is None

    def test_reads_the_file_only_when_it_changed(self, tmp_path: Path) -> None:
        path = tmp_path / "users.json"
        UserFile(path).add("alice", "pw")
        store = UserFile(path)
        with mock.patch.object(UserFile, "load", autospec=True, side_effect=UserFile.load) as spy:
            store.lookup("alice")
            store.lookup("bob")
            store.lookup("alice")
        assert spy.call_count == 1


class TestSecretUsers:
    def test_reads_through_a_secrets_port(self) -> None:
        calls = []

        def fetch(name: str) -> str:
            calls.append(name)
            return users.dump_users({"alice": hash_password("pw")})

        store = SecretUsers("my-secret", fetch=fetch, clock=lambda: 0.0)
        assert store.lookup("alice") is not None
        assert store.lookup("alice") is not None
        assert calls == ["my-secret"]
