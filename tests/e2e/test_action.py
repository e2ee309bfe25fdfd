"""The runner action's script (.github/actions/apt-setup/setup.sh), run for real with dash.

A tiny local "Actions token endpoint" plays GitHub's ACTIONS_ID_TOKEN_REQUEST_URL (it checks the
request token and mints, with the local OIDC issuer, a token for the requested audience); the
local ghapt server trusts that issuer. The script writes into a temp root, and the real apt-get
then updates and downloads with exactly the files it wrote.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.support.aptclient import AptClient
from tests.support.oidcissuer import OidcIssuer
from tests.support.paths import ROOT
from tests.support.repos import ServedRepo

ACTION = ROOT / ".github/actions/apt-setup"
SCRIPT = ACTION / "setup.sh"
AUDIENCE = "https://apt.example.test/ghapt"  # needs URL-encoding in the query
REQUEST_TOKEN = "actions-request-token-0123456789"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


class TokenEndpoint:
    """GitHub's ID-token endpoint: ``GET ...?api-version=2.0&audience=A`` with the request token."""

    def __init__(self, issuer: OidcIssuer) -> None:
        self.issuer = issuer
        self.requests: list[dict[str, Any]] = []
        self.minted: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                scheme, _, value = auth.partition(" ")
                ok = scheme.lower() == "bearer" and value == REQUEST_TOKEN
                endpoint.requests.append({"path": self.path, "query": query, "ok": ok})
                if not ok or query.get("api-version") != ["2.0"] or len(query.get("audience", [])) != 1:
                    self.send_response(401 if not ok else 400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token = endpoint.issuer.mint({"aud": query["audience"][0]})
                endpoint.minted.append(token)
                data = json.dumps({"count": 1, "value": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02})
        self.thread.daemon = True
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/_apis/idtoken?api-version=2.0"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def oidc_audience() -> str:
    return AUDIENCE


@pytest.fixture
def endpoint(issuer: OidcIssuer) -> Iterator[TokenEndpoint]:
    ep = TokenEndpoint(issuer)
    yield ep
    ep.close()


def run_setup(
    root: Path, url: str, endpoint: TokenEndpoint, *, path: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    for name in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "SUDO"):
        base.pop(name, None)
    full = {
        **base,
        "GHAPT_URL": url,
        "GHAPT_AUDIENCE": AUDIENCE,
        "GHAPT_ROOT": str(root),
        "SUDO": "",
        "ACTIONS_ID_TOKEN_REQUEST_URL": endpoint.url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
        **env,
    }
    if path is not None:
        full["PATH"] = path
    return subprocess.run(
        ["/bin/sh", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def _secrets(root: Path, endpoint: TokenEndpoint) -> list[str]:
    auth = (root / "etc/apt/auth.conf.d/ghapt.conf").read_text().split()
    return [REQUEST_TOKEN, *endpoint.minted, auth[auth.index("password") + 1]]


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_setup_writes_what_apt_needs_and_apt_downloads(
    oidc_repo: ServedRepo, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    server, deb = oidc_repo.server, oidc_repo.deb
    apt = AptClient(tmp_path / "apt")
    res = run_setup(apt.root, server.url + "/", endpoint)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ghapt configured" in res.stdout
    assert "valid until 20" in res.stdout
    # The endpoint got the audience (URL-encoded by curl) after GitHub's own query.
    (request,) = endpoint.requests
    assert request["ok"]
    assert request["query"]["audience"] == [AUDIENCE]

    etc = apt.root / "etc/apt"
    key = etc / "keyrings/ghapt.asc"
    assert key.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert (etc / "sources.list.d/ghapt.sources").read_text() == (
        f"Types: deb\nURIs: {server.url}/\nSuites: stable\nComponents: main\nSigned-By: {key}\n"
    )
    auth_file = etc / "auth.conf.d/ghapt.conf"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    machine, host, login, name, password, secret = auth_file.read_text().split()
    assert (machine, host, login, name, password) == (
        "machine",
        server.url,
        "login",
        "ghapt-token",
        "password",
    )
    assert secret.startswith("ghapt1.")
    for value in _secrets(apt.root, endpoint):
        assert value not in res.stdout + res.stderr  # no token in the log

    update = apt.run("update")
    assert update.returncode == 0, update.output
    assert not re.search(r"\b401\s+Unauthorized", update.output), update.output  # not the port's digits
    assert "NO_PUBKEY" not in update.output
    download = apt.run("download", "hello-ghapt")
    assert download.returncode == 0, download.output
    got = next((apt.root / "downloads").glob("hello-ghapt_1.0-1_all.deb"))
    assert got.read_bytes() == deb.read_bytes()
    # apt used the exchanged token, not the short-lived OIDC one.
    assert any(p.startswith("/pool/") for p in server.paths(302))


def test_in_actions_tokens_are_masked_and_the_expiry_is_an_output(
    oidc_repo: ServedRepo, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    server = oidc_repo.server
    root, outputs = tmp_path / "root", tmp_path / "github_output"
    outputs.touch()
    res = run_setup(
        root,
        server.url,
        endpoint,
        GITHUB_ACTIONS="true",
        GITHUB_OUTPUT=str(outputs),
        GHAPT_NAME="acme",
        GHAPT_SUITES="stable prerelease",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    for value in _secrets_named(root, "acme", endpoint):
        assert f"::add-mask::{value}" in lines
        # A token appears only in its mask command, which the runner swallows.
        assert [ln for ln in lines if value in ln] == [f"::add-mask::{value}"]
        assert value not in res.stderr
    (expires,) = [ln for ln in outputs.read_text().splitlines() if ln.startswith("expires-at=")]
    assert expires.endswith("Z")
    assert "T" in expires
    assert "Suites: stable prerelease\n" in (root / "etc/apt/sources.list.d/acme.sources").read_text()
    assert (root / "etc/apt/keyrings/acme.asc").is_file()


def _secrets_named(root: Path, name: str, endpoint: TokenEndpoint) -> list[str]:
    auth = (root / f"etc/apt/auth.conf.d/{name}.conf").read_text().split()
    return [REQUEST_TOKEN, *endpoint.minted, auth[auth.index("password") + 1]]


def test_without_python3_the_sed_fallback_parses_the_json(
    oidc_repo: ServedRepo, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    server = oidc_repo.server
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).iterdir():
            target = bin_dir / tool.name
            if not tool.name.startswith("python") and not target.exists():
                target.symlink_to(tool)
    root = tmp_path / "root"
    res = run_setup(root, server.url, endpoint, path=str(bin_dir))
    assert res.returncode == 0, res.stdout + res.stderr
    assert (root / "etc/apt/auth.conf.d/ghapt.conf").read_text().split()[5].startswith("ghapt1.")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "not-the-request-token"}, "could not get an OIDC token"),
        ({"ACTIONS_ID_TOKEN_REQUEST_TOKEN": ""}, "id-token: write"),
        ({"GHAPT_AUDIENCE": "https://github.com/octo-org"}, "token exchange at"),
        ({"GHAPT_URL": "ftp://example.test"}, "url must start with https://"),
        ({"GHAPT_NAME": "../evil"}, "name may only contain"),
    ],
)
def test_failures_say_why_and_write_no_credentials(
    oidc_repo: ServedRepo, endpoint: TokenEndpoint, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    server = oidc_repo.server
    root = tmp_path / "root"
    res = run_setup(root, server.url, endpoint, **env)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert not (root / "etc/apt/auth.conf.d").exists() or not any((root / "etc/apt/auth.conf.d").iterdir())
    assert not (root / "etc/apt/sources.list.d").exists()
    for value in (REQUEST_TOKEN, *endpoint.minted):
        assert value not in res.stdout + res.stderr


def test_action_yml_runs_the_script_with_inputs_as_environment() -> None:
    action = yaml_parse((ACTION / "action.yml").read_text())
    inputs = action["inputs"]
    assert inputs["url"]["required"] is True
    assert inputs["audience"]["required"] is True
    assert {k: inputs[k].get("default") for k in ("suites", "components", "name")} == {
        "suites": "stable",
        "components": "main",
        "name": "ghapt",
    }
    assert action["runs"]["using"] == "composite"
    (step,) = action["runs"]["steps"]
    assert step["shell"] == "sh"
    assert step["run"].strip() == '"$GITHUB_ACTION_PATH/setup.sh"'
    # No expression is spliced into the script: inputs arrive as variables.
    assert "${{" not in step["run"]
    for name in ("url", "audience", "suites", "components", "name"):
        assert step["env"][f"GHAPT_{name.upper()}"] == "${{ inputs." + name + " }}"
    assert os.access(SCRIPT, os.X_OK)
    assert (ACTION / "README.md").is_file()
