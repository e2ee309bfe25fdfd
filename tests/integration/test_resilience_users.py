"""``ghapt users remove`` and a password change take effect on the next request of a running
local server (issue 10, item 7), although it caches authorizer decisions for 300 s like API
Gateway. Real server, real HTTP, the real CLI editing the users file; no waiting out the TTL."""

from __future__ import annotations

from pathlib import Path

import requests
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings

from tests.support.debbuild import build_deb
from tests.support.ghaptcli import run
from tests.support.servers import serve


def users(state: Path, *args: str, password: str | None = None) -> None:
    extra = ("--password-stdin",) if password is not None else ()
    res = run("users", *args, "--state", str(state), *extra, input=f"{password}\n" if password else None)
    assert res.returncode == 0, res.stdout + res.stderr


def test_removed_users_and_old_passwords_are_refused_on_the_next_request(tmp_path: Path) -> None:
    rel, state = tmp_path / "rel", tmp_path / "st"
    build_deb(rel / "v1", "tool", "1.0-1", "amd64")
    users(state, "add", "alice", password="alice-pass-1")
    users(state, "add", "bob", password="bob-pass-1")
    settings = Settings.from_env({}, releases_dir=rel, state_dir=state)
    assert settings.auth_cache_seconds == 300  # the default: decisions are cached for 5 minutes
    services = Services(settings, {})
    services.rebuild_now()
    with serve(services) as server:
        url = f"{server.url}/dists/stable/InRelease"
        for _ in range(2):  # the second answer comes from the cached decision
            assert requests.get(url, auth=("alice", "alice-pass-1"), timeout=10).status_code == 200
            assert requests.get(url, auth=("bob", "bob-pass-1"), timeout=10).status_code == 200

        users(state, "remove", "alice")
        assert requests.get(url, auth=("alice", "alice-pass-1"), timeout=10).status_code == 401

        users(state, "add", "bob", password="bob-pass-2")
        assert requests.get(url, auth=("bob", "bob-pass-1"), timeout=10).status_code == 401
        assert requests.get(url, auth=("bob", "bob-pass-2"), timeout=10).status_code == 200

        # While the file does not change, decisions stay cached: the entry is made once, then reused.
        users(state, "add", "carol", password="carol-pass-1")
        assert requests.get(url, auth=("carol", "carol-pass-1"), timeout=10).status_code == 200
        made = dict(server.app._policies)
        for _ in range(3):
            assert requests.get(url, auth=("carol", "carol-pass-1"), timeout=10).status_code == 200
        assert server.app._policies == made
        assert len(made) == 1
