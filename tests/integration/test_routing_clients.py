"""Clients naming their suite in a routed repository: the runner action (dash, real apt),
``ghapt doctor`` over every published suite, and ``ghapt client-config --suite``."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.layout import SUITES_FILE
from ghapt.core.settings import Settings
from samtranslator.yaml_helper import yaml_parse

from tests.e2e.test_action import ACTION, AUDIENCE, TokenEndpoint, run_setup
from tests.support.aptclient import AptClient
from tests.support.cli import run
from tests.support.debbuild import build_deb
from tests.support.oidcissuer import OWNER_ID, OidcIssuer
from tests.support.servers import RunningServer, serve

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("gpgv") is None, reason="needs curl and gpgv"
)

USER, PASSWORD = "fleet", "fleet-pass-1234"
Repo = tuple[Services, RunningServer, dict[str, bytes]]
ROUTES = "version=*~jammy* -> jammy; version=*+deb12* -> bookworm"


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience=AUDIENCE) as iss:
        yield iss


@pytest.fixture
def endpoint(issuer: OidcIssuer) -> Iterator[TokenEndpoint]:
    ep = TokenEndpoint(issuer)
    yield ep
    ep.close()


@pytest.fixture
def repo(tmp_path: Path, issuer: OidcIssuer) -> Iterator[Repo]:
    releases = tmp_path / "releases"
    debs = {
        "jammy": build_deb(releases / "v1.0", "tool", "1.0-1~jammy1", "amd64").read_bytes(),
        "bookworm": build_deb(releases / "v1.0", "tool", "1.0-1+deb12u1", "amd64").read_bytes(),
        "stable": build_deb(releases / "v1.0", "tool-data", "1.0-1", "all").read_bytes(),
    }
    UserFile(tmp_path / "state" / "users.json").add(USER, PASSWORD)
    settings = Settings.from_env(
        {"GHAPT_ROUTES": ROUTES},
        releases_dir=releases,
        state_dir=tmp_path / "state",
        architectures="amd64",
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_owner_ids=OWNER_ID,
    )
    services = Services(settings, {})
    assert services.indexer.rebuild().skipped == []
    with serve(services) as server:
        yield services, server, debs


def _os_release(tmp_path: Path, codename: str) -> str:
    path = tmp_path / "os-release"
    path.write_text(f'PRETTY_NAME="Test"\nID=ubuntu\nVERSION_CODENAME={codename}\nUBUNTU_CODENAME=x\n')
    return str(path)


def _sources(root: Path) -> str:
    return (root / "etc/apt/sources.list.d/ghapt.sources").read_text()


# --- the runner action ------------------------------------------------------------------------
@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_the_action_defaults_to_the_runners_codename_and_apt_gets_that_build(
    repo: Repo, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    _, server, debs = repo
    apt = AptClient(tmp_path / "apt")
    res = run_setup(
        apt.root, server.url, endpoint, GHAPT_OS_RELEASE=_os_release(tmp_path, '"jammy"'), GHAPT_SUITES=""
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "\nSuites: jammy\n" in _sources(apt.root)
    assert apt.run("update").returncode == 0
    download = apt.run("download", "tool")
    assert download.returncode == 0, download.output
    (got,) = (apt.root / "downloads").glob("tool_*.deb")
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(debs["jammy"]).digest()
    assert "Candidate" not in apt.cache("policy", "tool-data").output  # stable is not enabled
    assert "bookworm" not in apt.cache("policy", "tool").output


def test_the_codename_comes_first_and_the_default_suites_follow(
    repo: Repo, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    _, server, _ = repo
    res = run_setup(
        tmp_path / "root", server.url, endpoint, GHAPT_OS_RELEASE=_os_release(tmp_path, "bookworm")
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "\nSuites: bookworm stable\n" in _sources(tmp_path / "root")


def test_a_codename_the_repository_lacks_falls_back_with_a_notice(
    repo: Repo, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    _, server, _ = repo
    res = run_setup(
        tmp_path / "root",
        server.url,
        endpoint,
        GHAPT_OS_RELEASE=_os_release(tmp_path, "noble"),
        GITHUB_ACTIONS="true",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "\nSuites: stable\n" in _sources(tmp_path / "root")
    assert "::notice title=ghapt apt-setup::the repository has no suite 'noble'" in res.stdout


def test_an_explicit_suite_wins_and_a_missing_one_fails_before_writing(
    repo: Repo, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    _, server, _ = repo
    os_release = _os_release(tmp_path, "bookworm")
    res = run_setup(tmp_path / "a", server.url, endpoint, GHAPT_OS_RELEASE=os_release, GHAPT_SUITE="jammy")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "\nSuites: jammy stable\n" in _sources(tmp_path / "a")
    res = run_setup(tmp_path / "b", server.url, endpoint, GHAPT_OS_RELEASE=os_release, GHAPT_SUITE="noble")
    assert res.returncode != 0 and "the repository has no suite 'noble'" in res.stderr, res.stderr
    assert not (tmp_path / "b/etc/apt/sources.list.d").exists()
    assert not (tmp_path / "b/etc/apt/auth.conf.d").exists()
    res = run_setup(tmp_path / "c", server.url, endpoint, GHAPT_SUITE="jammy\nSigned-By: /evil")
    assert res.returncode != 0
    assert "suites and components are names" in res.stderr


def test_action_yml_has_a_suite_input_passed_as_a_variable() -> None:
    action = yaml_parse((ACTION / "action.yml").read_text())
    assert action["inputs"]["suite"]["default"] == ""
    assert action["inputs"]["suite"]["required"] is False
    assert "VERSION_CODENAME" in action["inputs"]["suite"]["description"]
    (step,) = action["runs"]["steps"]
    assert step["env"]["GHAPT_SUITE"] == "${{ inputs.suite }}"


# --- doctor and client-config ----------------------------------------------------------------
def _doctor(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("doctor", url, "--user", USER, "--password-stdin", *extra, input=PASSWORD + "\n")


def test_doctor_checks_every_suite_the_repository_lists(repo: Repo) -> None:
    _, server, _ = repo
    res = _doctor(server.url)
    assert res.returncode == 0, res.stdout + res.stderr
    for suite in ("stable", "bookworm", "jammy"):
        assert f"PASS  [{suite}] InRelease signature" in res.stdout
        assert f"PASS  [{suite}] pool redirect" in res.stdout
    assert "all 17 checks passed" in res.stdout  # key, credentials, 5 per suite
    res = _doctor(server.url, "--suite", "jammy")
    assert res.returncode == 0
    assert "[stable]" not in res.stdout
    assert "[jammy] Packages" in res.stdout


def test_doctor_falls_back_to_the_default_suite_without_a_listing(repo: Repo) -> None:
    services, server, _ = repo
    store = services.store
    store.commit_files(store.head(), {SUITES_FILE: None}, "an index from before suites were listed")
    services.branch_cache.invalidate()
    res = _doctor(server.url)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[stable] Packages" in res.stdout
    assert "[jammy]" not in res.stdout


def test_client_config_names_the_suite_and_refuses_a_malformed_one(repo: Repo) -> None:
    _, server, _ = repo
    res = run(
        "client-config",
        "--url",
        server.url,
        "--user",
        USER,
        "--password-stdin",
        "--suite",
        "jammy",
        input=PASSWORD + "\n",
    )
    assert res.returncode == 0, res.stderr
    assert "\nSuites: jammy\n" in res.stdout
    res = run(
        "client-config",
        "--url",
        server.url,
        "--user",
        USER,
        "--password-stdin",
        "--suite",
        "jammy\nSigned-By: /tmp/evil.asc",
        input=PASSWORD + "\n",
    )
    assert res.returncode == 2
    assert "--suite" in res.stderr
    assert "Signed-By" not in res.stdout


def test_rebuild_takes_routes_from_the_flag_and_reports_idle_rules(tmp_path: Path) -> None:
    releases, state = tmp_path / "releases", tmp_path / "state"
    build_deb(releases / "v1", "tool", "1.0-1~jammy1", "amd64")
    routes = "version=*~jammy* -> jammy; version=*~noble* -> noble"
    res = run("rebuild", "--releases", str(releases), "--state", str(state), "--routes", routes)
    assert res.returncode == 0, res.stderr
    assert "added" in res.stdout
    assert "routing rule matched no asset: version=*~noble* -> noble" in res.stdout
    res = run(
        "rebuild", "--releases", str(releases), "--state", str(state), "--routes", "asset=*~jammy* -> x"
    )
    assert res.returncode == 2
    assert "GHAPT_ROUTES" in res.stderr
    assert "GitHub renames" in res.stderr
    res = run(
        "rebuild", "--releases", str(releases), "--state", str(state), env={"GHAPT_ROUTES": "version=1"}
    )
    assert res.returncode == 2
    assert "has no '->'" in res.stderr
