"""The serving path fails fast: rate limits, hanging connections and a 200 asset download.

The metadata and pool functions have ``Timeout: 20``. Their GitHub client (the SERVING
profile) never sleeps on a rate limit, retries once, and spends at most its budget on one
request; past that it answers 503 with ``Retry-After``, never a Lambda timeout (which API
Gateway turns into a 502). Clocks and sleeps are injected: nothing here waits for real except
for tiny configured timeouts against a connection that never answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings
from ghapt.github.auth import TokenAuth
from ghapt.github.client import PATIENT, SERVING, ClientProfile, GitHubClient

from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.servers import RunningServer, serve

META = "acme/apt-meta"
AUTH = ("alice", "serving-pw")
ROOT = Path(__file__).resolve().parents[2]
INRELEASE = "/dists/stable/InRelease"
POOL = "/pool/main/h/hello/hello_1.0-1_all.deb"


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml has no type information here
    """Reads template.yaml's short-form intrinsics (!Ref, !Sub, ...) as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _function_timeout(name: str) -> int:
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    return int(template["Resources"][name]["Properties"]["Timeout"])


class Clock:
    """A monotonic clock that only moves when the test (or a sleep) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Env:
    gh: FakeGitHub
    services: Services
    server: RunningServer
    clock: Clock


def _serving_client(
    gh: FakeGitHub, clock: Clock, profile: ClientProfile = SERVING, **kw: object
) -> GitHubClient:
    return GitHubClient(
        gh.api_url,
        TokenAuth(gh.token),
        sleep=clock.sleep,
        monotonic=clock,
        **{**profile.client_kwargs(), **kw},
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with FakeGitHub() as gh:
        gh.add_repo(META)
        deb = build_deb(tmp_path / "debs", "hello", "1.0-1", "all").read_bytes()
        gh.add_release("acme/hello", "v1.0", [("hello_1.0-1_all.deb", deb)])
        state = tmp_path / "state"
        UserFile(state / "users.json").add(*AUTH)
        settings = Settings.from_env(
            {"GITHUB_TOKEN": gh.token},
            backend="github",
            api_url=gh.api_url,
            github_repos=["acme/hello"],
            metadata_repo=META,
            state_dir=state,
            architectures="amd64",
            cache_seconds="0",
        )
        services = Services(settings, {})
        assert services.indexer.rebuild().changed
        clock = Clock()
        services.__dict__["serving_github"] = _serving_client(gh, clock)
        with serve(services) as server:
            gh.clear_log()
            yield Env(gh, services, server, clock)


def _get(env: Env, path: str) -> requests.Response:
    return requests.get(f"{env.server.url}{path}", auth=AUTH, allow_redirects=False, timeout=30)


def test_the_serving_profile_fits_well_inside_the_functions_timeout() -> None:
    for function in ("MetadataFunction", "PoolFunction"):
        timeout = _function_timeout(function)
        assert SERVING.budget is not None and SERVING.budget <= timeout / 2, function
    assert SERVING.rate_limit_cap == 0
    assert SERVING.max_rate_limit_waits == 0
    assert SERVING.max_retries <= 1
    # One attempt's own timeouts fit in the budget; the budget cuts them further when it runs low.
    assert SERVING.budget is not None
    assert SERVING.connect_timeout + SERVING.read_timeout <= SERVING.budget
    # The indexer keeps its patience.
    assert PATIENT.budget is None
    assert PATIENT.rate_limit_cap >= 60
    assert PATIENT.max_retries >= 3


def test_services_give_the_serving_path_the_serving_profile(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"GITHUB_TOKEN": "t"}, backend="github", github_repos=["a/b"], metadata_repo="a/meta"
    )
    services = Services(settings, {})
    assert services.serving_github.budget == SERVING.budget
    assert services.serving_github.max_retries == SERVING.max_retries
    assert services.github.budget is None
    assert services.github.rate_limit_cap == PATIENT.rate_limit_cap
    assert services.branch_cache.store.client is services.serving_github  # type: ignore[attr-defined]
    assert services.pool.source.client is services.serving_github  # type: ignore[attr-defined]
    assert services.store.client is services.github  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["primary", "secondary"])
@pytest.mark.parametrize("path", [INRELEASE, POOL])
def test_a_rate_limit_is_a_503_with_retry_after_at_once(env: Env, kind: str, path: str) -> None:
    if kind == "primary":
        env.gh.rate_limit_next(r"/git/ref/heads/", reset_in=1800)
    else:
        env.gh.secondary_limit_next(r"/git/ref/heads/", retry_after=60)
    r = _get(env, path)
    assert r.status_code == 503, r.text
    assert "Location" not in r.headers
    assert int(r.headers["Retry-After"]) >= 60
    assert env.clock.sleeps == [], "no waiting on a rate limit on the serving path"
    assert len(env.gh.calls("GET", r"/git/ref/heads/")) == 1
    # The limit lifted: the next request is served.
    assert _get(env, path).status_code in (200, 302)


def test_a_hanging_github_is_a_503_after_one_retry(env: Env) -> None:
    client = _serving_client(env.gh, env.clock, timeout=(0.2, 0.2))
    env.services.__dict__["serving_github"] = client
    env.services.branch_cache.store.client = client  # type: ignore[attr-defined]
    env.gh.hang_next(r"/git/ref/heads/", count=5)
    try:
        r = _get(env, INRELEASE)
    finally:
        env.gh.release_hangs()
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == str(int(SERVING.budget_retry_after))
    assert len(env.gh.calls("GET", r"/git/ref/heads/")) == 2, "one attempt and one retry"
    assert sum(env.clock.sleeps) <= SERVING.budget  # type: ignore[operator]


def test_the_budget_covers_every_github_call_of_one_request(env: Env) -> None:
    """A slow GitHub (each answer takes 3 s on the injected clock) runs the 8 s budget out on the
    third call: 503, and no call starts after the budget is spent."""
    started: list[float] = []

    def slow(method: str, url: str, status: int) -> None:
        started.append(env.clock.now)
        env.clock.now += 3.0

    client = env.services.serving_github
    client.on_call = slow
    r = _get(env, INRELEASE)
    assert r.status_code == 503, r.text
    assert "Retry-After" in r.headers
    assert started
    assert SERVING.budget is not None
    assert all(t - started[0] < SERVING.budget for t in started)
    assert len(started) == 3  # ref, commit, tree: the blob read would start past the budget


def test_each_request_gets_its_own_budget(env: Env) -> None:
    client = env.services.serving_github
    assert _get(env, INRELEASE).status_code == 200
    env.clock.now += 3600  # long after: a new request has a whole budget again
    assert _get(env, INRELEASE).status_code == 200
    assert client.budget == SERVING.budget


# --- the pool never hands out an API URL ----------------------------------------------------------
def test_a_200_asset_download_is_asked_again_then_a_503_never_a_location(env: Env) -> None:
    env.gh.asset_mode = "direct"
    r = _get(env, POOL)
    assert r.status_code == 503, r.text
    assert "Location" not in r.headers
    assert "Retry-After" in r.headers
    downloads = [
        c
        for c in env.gh.calls("GET", r"/releases/assets/\d+$")
        if "octet-stream" in c.headers.get("accept", "")
    ]
    assert len(downloads) == 2, "asked once more, then gave up"
    assert env.clock.sleeps == []
    # GitHub redirects again: so does the pool, to the storage host only.
    env.gh.asset_mode = "redirect"
    r = _get(env, POOL)
    assert r.status_code == 302
    assert r.headers["Location"].startswith(env.gh.storage_url)


def test_a_200_then_a_302_redirects_to_storage(env: Env) -> None:
    env.gh.asset_mode = "direct"

    def back_to_redirects() -> None:
        env.gh.asset_mode = "redirect"

    def arm() -> None:  # the first download is answered 200; the retry sees a 302
        env.gh.before_next(r"/releases/assets/\d+$", back_to_redirects)

    env.gh.before_next(r"/releases/assets/\d+$", arm)
    r = _get(env, POOL)
    assert r.status_code == 302, r.text
    assert [c.status for c in env.gh.calls("GET", r"/releases/assets/\d+$")] == [200, 302]
    location = r.headers["Location"]
    assert location.startswith(env.gh.storage_url)
    assert not re.match(re.escape(env.gh.api_url), location)


def test_a_github_server_error_is_a_503_with_retry_after_after_one_retry(env: Env) -> None:
    env.gh.fail_next(r"/git/ref/heads/", status=502, count=5)
    r = _get(env, INRELEASE)
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == str(int(SERVING.budget_retry_after))
    assert [c.status for c in env.gh.calls("GET", r"/git/ref/heads/")] == [502, 502]
    assert env.clock.sleeps == [SERVING.backoff_base]
