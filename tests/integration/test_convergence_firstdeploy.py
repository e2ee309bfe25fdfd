"""Issue 9, first deploy: ``ghapt rebuild`` signs with the stack's KMS key, refuses to re-sign a
published index with another key (unless ``--rekey``), and ``ghapt doctor`` says "no index yet".

KMS is moto, with Sign patched to honour ``MessageType=DIGEST`` as AWS does (see test_kms.py);
signatures are checked with the real gpgv against a keyring holding only the expected key.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from ghapt.auth.userfile import UserFile
from ghapt.aws.kms import kms_signer
from ghapt.bootstrap import Services
from ghapt.cli.main import main
from ghapt.core.settings import Settings
from ghapt.local.gitstore import LocalGitStore
from ghapt.signing.localkey import local_signer
from moto import mock_aws
from moto.kms.responses import KmsResponse

from tests.support import motokms
from tests.support.cli import run
from tests.support.debbuild import build_deb
from tests.support.servers import serve

pytestmark = pytest.mark.skipif(shutil.which("gpgv") is None, reason="needs gpgv")

REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def _cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` sets these with ``os.environ.setdefault``; keep them from leaking into other tests."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto KMS client whose Sign treats a DIGEST as AWS does."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("kms", region_name=REGION)
        if not motokms.honours_digest(client):
            monkeypatch.setattr(KmsResponse, "sign", motokms.sign_like_aws)
        yield client


def verifies(inrelease: bytes, public_key: bytes, tmp: Path) -> bool:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "key.gpg").write_bytes(public_key)
    (tmp / "InRelease").write_bytes(inrelease)
    proc = subprocess.run(
        ["gpgv", "--keyring", str(tmp / "key.gpg"), str(tmp / "InRelease")], capture_output=True, text=True
    )
    return proc.returncode == 0


def inrelease(state: Path) -> tuple[str | None, bytes | None]:
    store = LocalGitStore(state / "metadata.git")
    head = store.head()
    return head, store.read_file(head, "dists/stable/InRelease") if head else None


def test_rebuild_signs_with_kms_and_refuses_another_key_unless_told_to_rekey(
    kms: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    releases, state = tmp_path / "releases", tmp_path / "state"
    build_deb(releases / "v1", "hello", "1.0-1", "all")
    key_arn = kms.create_key(KeySpec="RSA_3072", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    base = ["rebuild", "--releases", str(releases), "--state", str(state), "--architectures", "amd64"]

    assert main([*base, "--kms-key-id", key_arn], {}) == 0
    head, signed = inrelease(state)
    assert signed is not None
    kms_key = kms_signer(kms, key_arn)
    assert verifies(signed, kms_key.public_key(), tmp_path / "kms")
    assert not verifies(signed, local_signer(tmp_path / "other").public_key(), tmp_path / "other-check")

    # The local key of the state dir is another key: a rebuild would break every client.
    build_deb(releases / "v2", "hello", "2.0-1", "all")
    capsys.readouterr()
    assert main(base, {}) == 2
    err = capsys.readouterr().err
    assert kms_key.fingerprint in err
    assert "--rekey" in err
    assert "--kms-key-id" in err
    assert inrelease(state) == (head, signed), "the refused rebuild left the branch untouched"

    # Switching keys on purpose works, and the result verifies with the new key only.
    assert main([*base, "--rekey"], {}) == 0
    new_head, resigned = inrelease(state)
    assert new_head != head
    assert resigned is not None
    assert verifies(resigned, local_signer(state).public_key(), tmp_path / "local")
    assert not verifies(resigned, kms_key.public_key(), tmp_path / "kms-again")


def test_rebuild_with_a_time_budget_says_what_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    releases, state = tmp_path / "releases", tmp_path / "state"
    for i in range(3):
        build_deb(releases / f"v{i}", "hello", f"1.{i}-1", "all")
    # A budget this small stops after the first read (one read always starts).
    assert (
        main(["rebuild", "--releases", str(releases), "--state", str(state), "--time-budget", "1e-9"], {})
        == 0
    )
    out = capsys.readouterr().out
    assert "incomplete: 2 assets left" in out
    assert main(["rebuild", "--releases", str(releases), "--state", str(state)], {}) == 0
    out = capsys.readouterr().out
    assert "incomplete" not in out
    assert "2 read, 1 reused" in out
    with pytest.raises(SystemExit) as refused:
        main(["rebuild", "--releases", str(releases), "--state", str(state), "--time-budget", "0"], {})
    assert refused.value.code == 2
    assert "more than 0 seconds" in capsys.readouterr().err


def test_doctor_on_a_repository_without_an_index_says_no_index_yet(tmp_path: Path) -> None:
    releases, state = tmp_path / "releases", tmp_path / "state"
    releases.mkdir()
    UserFile(state / "users.json").add("doc", "doctor-pass-123")
    settings = Settings.from_env({}, releases_dir=releases, state_dir=state, architectures="amd64")
    with serve(Services(settings, {})) as server:
        res = run("doctor", server.url, "--user", "doc", "--password-stdin", input="doctor-pass-123\n")
    assert res.returncode == 1
    line = next(ln for ln in res.stdout.splitlines() if "InRelease signature" in ln)
    assert line.startswith("FAIL")
    assert "no index yet" in line
    assert "make first-index" in line
    assert "ghapt rebuild" in line
    assert any(ln.startswith("PASS  credentials") for ln in res.stdout.splitlines()), res.stdout
