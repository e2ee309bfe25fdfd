"""The operator commands: keys, client-config (+ the real apt-get), users on Secrets Manager, progress."""

from __future__ import annotations

import os
import pty
import select
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings

from tests.support.aptclient import AptClient
from tests.support.cli import GHAPT, run
from tests.support.debbuild import build_deb
from tests.support.servers import RunningServer, serve

USER, PASSWORD = "ops", "ops-pass-4567"
REGION = "eu-west-1"


def _fingerprints(key_file: Path, home: Path) -> list[str]:
    home.mkdir(exist_ok=True, mode=0o700)
    out = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--show-keys", str(key_file)],
        capture_output=True,
        text=True,
        env={**os.environ, "GNUPGHOME": str(home)},
        check=True,
    ).stdout
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]


@pytest.mark.parametrize(
    "args",
    [["keys"], ["client-config"], ["doctor"], ["users", "add"], ["users", "list"], ["users", "remove"]],
)
def test_help(args: list[str]) -> None:
    res = run(*args, "--help")
    assert res.returncode == 0
    assert "usage: ghapt" in res.stdout
    if args[0] == "users":
        assert "--users-secret-arn" in res.stdout
        assert "GHAPT_USERS_SECRET_ARN" in res.stdout


# --- keys ------------------------------------------------------------------------------------------
def test_keys_creates_shows_and_exports_the_local_key(tmp_path: Path) -> None:
    state = tmp_path / "st"
    first = run("keys", "--state", str(state), "--export", str(tmp_path / "k.asc"))
    assert first.returncode == 0, first.stderr
    assert "(created now)" in first.stdout
    fingerprint = first.stdout.split("fingerprint: ")[1].split()[0]
    assert len(fingerprint) == 40
    assert (tmp_path / "k.asc").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert _fingerprints(tmp_path / "k.asc", tmp_path / "gnupg") == [fingerprint]
    again = run("keys", "--export", str(tmp_path / "k.gpg"), "--binary", env={"GHAPT_STATE_DIR": str(state)})
    assert again.returncode == 0
    assert "(created now)" not in again.stdout
    assert f"fingerprint: {fingerprint}" in again.stdout
    assert not (tmp_path / "k.gpg").read_bytes().startswith(b"-----")
    assert _fingerprints(tmp_path / "k.gpg", tmp_path / "gnupg") == [fingerprint]
    stdout = run("keys", "--state", str(state), "--export", "-")
    assert stdout.stdout.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert fingerprint in stdout.stderr


def test_keys_without_a_key_names_both_settings() -> None:
    res = run("keys")
    assert res.returncode == 2
    assert "GHAPT_STATE_DIR" in res.stderr
    assert "GHAPT_KMS_KEY_ID" in res.stderr


# --- client-config ---------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    releases = tmp_path / "releases"
    build_deb(releases / "v1", "hello-ops", "1.0-1", "all")
    UserFile(tmp_path / "state" / "users.json").add(USER, PASSWORD)
    settings = Settings.from_env(
        {}, releases_dir=releases, state_dir=tmp_path / "state", architectures="amd64"
    )
    services = Services(settings, {})
    services.indexer.rebuild()
    with serve(services) as running:
        yield running


def test_client_config_prints_the_three_files(server: RunningServer) -> None:
    res = run("client-config", "--url", server.url, "--user", USER, "--password-stdin", input=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "# ==> /etc/apt/sources.list.d/ghapt.sources (mode 0644) <==" in out
    assert "# ==> /etc/apt/keyrings/ghapt.asc (mode 0644) <==" in out
    assert "# ==> /etc/apt/auth.conf.d/ghapt.conf (mode 0600) <==" in out
    assert (
        f"URIs: {server.url}/\nSuites: stable\nComponents: main\nSigned-By: /etc/apt/keyrings/ghapt.asc"
        in out
    )
    assert "-----BEGIN PGP PUBLIC KEY BLOCK-----" in out
    assert f"machine {server.url} login {USER} password {PASSWORD}" in out


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_client_config_install_then_real_apt_update(server: RunningServer, tmp_path: Path) -> None:
    root = tmp_path / "client"
    res = run(
        "client-config",
        "--url",
        server.url,
        "--user",
        USER,
        "--password-stdin",
        "--install",
        "--root",
        str(root),
        "--name",
        "acme",
        input=PASSWORD + "\n",
    )
    assert res.returncode == 0, res.stderr
    sources = root / "etc/apt/sources.list.d/acme.sources"
    key = root / "etc/apt/keyrings/acme.asc"
    auth = root / "etc/apt/auth.conf.d/acme.conf"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o644
    assert auth.read_text() == f"machine {server.url} login {USER} password {PASSWORD}\n"
    assert "Signed-By: /etc/apt/keyrings/acme.asc\n" in sources.read_text()
    # The apt client lives in the same root; only Signed-By must point into it (not at /etc).
    apt = AptClient(root)
    sources.write_text(sources.read_text().replace("/etc/apt/keyrings/acme.asc", str(key)))
    res_apt = apt.run("update")
    assert res_apt.returncode == 0, res_apt.output
    assert "E:" not in res_apt.output
    res_apt = apt.run("download", "hello-ops")
    assert res_apt.returncode == 0, res_apt.output
    assert list((root / "downloads").glob("hello-ops_1.0-1_all.deb"))


def test_client_config_oidc_writes_a_github_action_login(server: RunningServer, tmp_path: Path) -> None:
    res = run(
        "client-config",
        "--url",
        server.url,
        "--oidc",
        "--token",
        "eyJ.tok.en",
        "--install",
        "--root",
        str(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    auth = tmp_path / "etc/apt/auth.conf.d/ghapt.conf"
    assert auth.read_text() == f"machine {server.url} login github-action password eyJ.tok.en\n"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    from_env = run("client-config", "--url", server.url, "--oidc", env={"GHAPT_OIDC_TOKEN": "eyJ.from.env"})
    assert from_env.returncode == 0
    assert "login github-action password eyJ.from.env" in from_env.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--url", "http://127.0.0.1:9", "--oidc"], "GHAPT_OIDC_TOKEN"),
        (["--url", "http://127.0.0.1:9"], "--user"),
        (["--url", "ftp://x", "--oidc", "--token", "t"], "--url"),
        (["--url", "http://127.0.0.1:9", "--user", "u"], "--password-stdin"),
        (["--url", "http://127.0.0.1:9", "--oidc", "--token", "t"], "public.key"),
        (["--url", "https://127.0.0.1:9", "--oidc", "--token", "t"], "public.key"),
    ],
)
def test_client_config_errors_name_the_fix(args: list[str], needle: str) -> None:
    res = run("client-config", *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_https_machine_line_has_no_scheme() -> None:
    from ghapt.cli.clientconfig import auth_entry

    assert (
        auth_entry("https://apt.example.com/prod", "u", "p")
        == "machine apt.example.com/prod login u password p\n"
    )


# --- rebuild progress on a terminal ----------------------------------------------------------------
def test_rebuild_shows_progress_on_a_tty(tmp_path: Path, seed_signing_key: Callable[[Path], Path]) -> None:
    seed_signing_key(tmp_path / "st")
    seed_signing_key(tmp_path / "st2")
    for i in range(3):
        build_deb(tmp_path / "rel" / f"v{i}", f"p{i}", "1.0-1", "amd64")
    master, slave = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}
    proc = subprocess.Popen(
        [GHAPT, "rebuild", "--releases", str(tmp_path / "rel"), "--state", str(tmp_path / "st")],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        env=clean,
    )
    os.close(slave)
    chunks = []
    deadline = time.time() + 60
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    tty = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "listed 3 assets" in tty
    assert "reading new assets: 3/3" in tty
    assert "MB downloaded" in tty
    assert "3 indexed, 3 added" in out
    assert "commit: " in out
    # Not a terminal: no progress noise at all.
    plain = run("rebuild", "--releases", str(tmp_path / "rel"), "--state", str(tmp_path / "st2"))
    assert "reading new assets" not in plain.stderr
