"""GitHubClient against the fake GitHub over real HTTP: pagination, retries, rate limits,
ETags, App auth, token hygiene, and asset reads that never carry credentials to storage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from ghapt.core.errors import ConfigError, RateLimited, UpstreamError
from ghapt.github.auth import AppAuth, TokenAuth
from ghapt.github.client import GitHubClient, GitHubError, RangeIgnored

from tests.support.clock import T0, Clock
from tests.support.fakegithub import FakeGitHub


@pytest.fixture
def gh_clock(clock: Clock) -> Clock:
    """The fake and the client share one hand-moved clock: no real waiting anywhere."""
    return clock


def make_client(gh: FakeGitHub, clock: Clock, sleeps: list[float] | None = None, **kw: Any) -> GitHubClient:
    sleep = sleeps.append if sleeps is not None else _no_sleep
    return GitHubClient(gh.api_url, TokenAuth(gh.token), sleep=sleep, clock=clock, **kw)


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


# --- pagination -------------------------------------------------------------------------------
def test_paginate_follows_link_to_repositories_id_across_three_pages(gh: FakeGitHub, clock: Clock) -> None:
    for i in range(250):
        gh.add_release("acme/tools", f"v{i}")
    client = make_client(gh, clock)

    releases = client.paginate("repos/acme/tools/releases")

    assert sorted(r["tag_name"] for r in releases) == sorted(f"v{i}" for i in range(250))
    calls = gh.calls("GET", "releases")
    repo_id = gh.add_repo("acme/tools").id
    assert [c.path for c in calls] == [
        "/repos/acme/tools/releases",
        f"/repositories/{repo_id}/releases",
        f"/repositories/{repo_id}/releases",
    ]
    assert [c.query for c in calls] == [
        {"per_page": "100"},
        {"per_page": "100", "page": "2"},
        {"per_page": "100", "page": "3"},
    ]


def test_ghes_api_url_with_path_prefix(clock: Clock) -> None:
    with FakeGitHub(prefix="/api/v3", clock=clock) as gh:
        for i in range(120):
            gh.add_release("acme/tools", f"v{i}", assets=[("a.deb", b"x" * i)] if i == 7 else [])
        assert gh.api_url.endswith("/api/v3")
        client = make_client(gh, clock)

        releases = client.paginate("repos/acme/tools/releases")
        assert len(releases) == 120
        assert [c.path.split("/")[1:3] for c in gh.calls("GET")] == [["api", "v3"], ["api", "v3"]]

        asset_id = gh.add_repo("acme/tools").releases[7].assets[0].id
        url = client.asset_url("acme/tools", asset_id)
        assert url.startswith(gh.storage_url)
        with client.open_stream(url) as stream:
            assert stream.read() == b"x" * 7
        # The prefix is really needed: the fake answers 404 without it.
        bare = GitHubClient(gh.api_url.removesuffix("/api/v3"), TokenAuth(gh.token), sleep=_no_sleep)
        with pytest.raises(GitHubError) as err:
            bare.get_json("repos/acme/tools")
        assert err.value.status_code == 404


# --- retries and rate limits --------------------------------------------------------------------
def test_retries_500_with_backoff_then_succeeds(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_repo("acme/tools")
    gh.fail_next(r"/repos/acme/tools$", status=502, count=2)
    sleeps: list[float] = []
    client = make_client(gh, clock, sleeps)

    assert client.get_json("repos/acme/tools")["full_name"] == "acme/tools"
    assert sleeps == [0.5, 1.0]
    assert [c.status for c in gh.calls("GET")] == [502, 502, 200]
    assert client.stats.retries == 2


def test_gives_up_after_bounded_retries(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_repo("acme/tools")
    gh.fail_next(r"/repos/acme/tools$", status=500, count=100)
    sleeps: list[float] = []
    client = make_client(gh, clock, sleeps, max_retries=5, backoff_max=4.0)

    with pytest.raises(GitHubError) as err:
        client.get_json("repos/acme/tools")
    assert err.value.status_code == 500
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert len(gh.calls("GET")) == 6


def test_retries_dropped_connections(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_repo("acme/tools")
    gh.fail_next(r"/repos/acme/tools$", kind="disconnect")
    sleeps: list[float] = []
    client = make_client(gh, clock, sleeps)

    assert client.get_json("repos/acme/tools")["id"] == gh.add_repo("acme/tools").id
    assert sleeps == [0.5]


def test_primary_rate_limit_waits_until_reset(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_repo("acme/tools")
    gh.rate_limit_next(r"/repos/acme/tools$", reset_in=30)
    sleeps: list[float] = []
    client = make_client(gh, clock, sleeps)

    assert client.get_json("repos/acme/tools")["full_name"] == "acme/tools"
    assert sleeps == [31.0]  # until x-ratelimit-reset, plus a second of margin
    first = gh.calls("GET")[0]
    assert first.status == 403


@pytest.mark.parametrize("status", [429, 403])
def test_secondary_rate_limit_honours_retry_after(gh: FakeGitHub, clock: Clock, status: int) -> None:
    gh.add_repo("acme/tools")
    gh.secondary_limit_next(r"/repos/acme/tools$", retry_after=7, status=status)
    sleeps: list[float] = []
    client = make_client(gh, clock, sleeps)

    assert client.get_json("repos/acme/tools")["full_name"] == "acme/tools"
    assert sleeps == [7.0]


def test_rate_limit_beyond_the_cap_raises_rate_limited(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_repo("acme/tools")
    gh.rate_limit_next(r"/repos/acme/tools$", reset_in=1800)
    client = make_client(gh, clock, rate_limit_cap=60)

    with pytest.raises(RateLimited) as err:
        client.get_json("repos/acme/tools")
    assert err.value.retry_after == pytest.approx(1801)
    assert "/repos/acme/tools" in str(err.value)

    gh.secondary_limit_next(r"/repos/acme/tools$", retry_after=120)
    with pytest.raises(RateLimited) as err:
        client.get_json("repos/acme/tools")
    assert err.value.retry_after == 120


def test_plain_403_is_an_error_not_a_rate_limit(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_repo("acme/tools")
    gh.fail_next(r"/repos/acme/tools$", status=403, message="Resource not accessible by integration")
    client = make_client(gh, clock)
    with pytest.raises(GitHubError) as err:
        client.get_json("repos/acme/tools")
    assert err.value.status_code == 403
    assert "Resource not accessible by integration" in str(err.value)


def test_404_names_method_path_status_and_message(gh: FakeGitHub, clock: Clock) -> None:
    client = make_client(gh, clock)
    with pytest.raises(UpstreamError) as err:
        client.get_json("repos/acme/nope/releases")
    assert isinstance(err.value, GitHubError)
    assert err.value.status_code == 404
    assert str(err.value) == "GitHub GET /repos/acme/nope/releases failed with 404: Not Found"
    assert client.get_json("repos/acme/nope", allow_404=True) is None


def test_refuses_to_send_credentials_off_the_api_host(gh: FakeGitHub, clock: Clock) -> None:
    client = make_client(gh, clock)
    with pytest.raises(UpstreamError, match="refusing"):
        client.get_json("http://evil.example/repos/acme/tools")
    assert gh.requests_log == []


# --- conditional requests ------------------------------------------------------------------------
def test_etag_304_returns_the_cached_body(gh: FakeGitHub, clock: Clock) -> None:
    for i in range(150):
        gh.add_release("acme/tools", f"v{i}")
    client = make_client(gh, clock)

    first = client.paginate("repos/acme/tools/releases", cache=True)
    remaining = gh.rate_remaining
    second = client.paginate("repos/acme/tools/releases", cache=True)

    assert second == first
    assert len(second) == 150
    again = gh.calls("GET")[2:]
    assert [c.status for c in again] == [304, 304]
    assert all(c.headers.get("if-none-match") for c in again)
    assert gh.rate_remaining == remaining  # 304s are free
    assert client.stats.not_modified == 2

    gh.add_release("acme/tools", "v-new")
    third = client.paginate("repos/acme/tools/releases", cache=True)
    assert len(third) == 151
    assert third[0]["tag_name"] == "v-new"


def test_uncached_gets_are_not_conditional(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_repo("acme/tools")
    client = make_client(gh, clock)
    client.get_json("repos/acme/tools")
    client.get_json("repos/acme/tools")
    assert [c.status for c in gh.calls("GET")] == [200, 200]
    assert not any("if-none-match" in c.headers for c in gh.calls("GET"))


# --- GitHub App auth -----------------------------------------------------------------------------
def test_app_auth_exchanges_caches_and_refreshes_the_installation_token(gh: FakeGitHub, clock: Clock) -> None:
    pem = gh.add_app(app_id="4242", installation_id="99")
    gh.add_repo("acme/tools")
    auth = AppAuth("4242", "99", pem, clock)
    client = GitHubClient(gh.api_url, auth, sleep=_no_sleep, clock=clock)

    client.get_json("repos/acme/tools")
    client.get_json("repos/acme/tools")
    exchanges = gh.calls("POST", "access_tokens")
    assert [c.path for c in exchanges] == ["/app/installations/99/access_tokens"]
    assert exchanges[0].status == 201
    app_jwt = exchanges[0].headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(app_jwt, options={"verify_signature": False})
    assert claims["iss"] == "4242"
    assert claims["iat"] == int(T0) - 60
    assert int(T0) < claims["exp"] <= int(T0) + 600
    token = next(iter(gh.installation_tokens))
    assert [c.headers["authorization"] for c in gh.calls("GET")] == [f"Bearer {token}"] * 2
    assert auth.token_expires_at == int(T0) + 3600

    clock.now += 3600 - 301  # still more than 5 minutes left: reuse
    client.get_json("repos/acme/tools")
    assert len(gh.calls("POST", "access_tokens")) == 1

    clock.now += 2  # now within 5 minutes of expiry: refresh before it lapses
    client.get_json("repos/acme/tools")
    assert len(gh.calls("POST", "access_tokens")) == 2
    assert gh.calls("GET")[-1].headers["authorization"] != f"Bearer {token}"


def test_app_auth_recovers_once_from_a_revoked_token(gh: FakeGitHub, clock: Clock) -> None:
    pem = gh.add_app(app_id="4242", installation_id="99")
    gh.add_repo("acme/tools")
    client = GitHubClient(gh.api_url, AppAuth("4242", "99", pem, clock), sleep=_no_sleep, clock=clock)
    client.get_json("repos/acme/tools")
    gh.installation_tokens.clear()  # revoked server-side

    assert client.get_json("repos/acme/tools")["full_name"] == "acme/tools"
    assert [c.status for c in gh.calls("GET")] == [200, 401, 200]
    assert len(gh.calls("POST", "access_tokens")) == 2


def test_app_auth_with_the_wrong_key_fails_cleanly(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_app(app_id="4242", installation_id="99")
    other = FakeGitHub(clock=clock).add_app(app_id="4242")
    client = GitHubClient(gh.api_url, AppAuth("4242", "99", other, clock), sleep=_no_sleep, clock=clock)
    with pytest.raises(GitHubError) as err:
        client.get_json("repos/acme/tools")
    assert err.value.status_code == 401
    assert err.value.path == "/app/installations/99/access_tokens"


def test_app_auth_rejects_a_bad_private_key_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as err:
        AppAuth(
            "1", "2", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
        )
    assert "c2VjcmV0" not in str(err.value)


def test_tokens_never_reach_logs_or_errors(
    gh: FakeGitHub, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pem = gh.add_app(app_id="4242", installation_id="99")
    rel = gh.add_release("acme/tools", "v1", assets=[("a.deb", b"abc")])
    messages: list[str] = []

    token_client = make_client(gh, clock, [])
    app_client = GitHubClient(
        gh.api_url, AppAuth("4242", "99", pem, clock), sleep=lambda s: None, clock=clock
    )
    wrong = GitHubClient(gh.api_url, TokenAuth("ghp_wrongwrongwrong"), sleep=lambda s: None, clock=clock)
    for client in (token_client, app_client, wrong):
        gh.fail_next(r"/repos/acme/tools$", status=500)
        gh.rate_limit_next(r"/releases$", reset_in=5)
        calls: tuple[Callable[[GitHubClient], object], ...] = (
            lambda c: c.get_json("repos/acme/tools"),
            lambda c: c.paginate("repos/acme/tools/releases", cache=True),
            lambda c: c.get_json("repos/acme/missing"),
            lambda c: c.open_stream(c.asset_url("acme/tools", rel.assets[0].id)).__enter__().read(),
        )
        for call in calls:
            try:
                call(client)
            except UpstreamError as exc:
                messages.append(f"{exc!s} {exc!r}")
        messages.append(repr(client.auth))

    secrets = [gh.token, "ghp_wrongwrongwrong", *gh.installation_tokens]
    app_jwts = [c.headers["authorization"].split()[1] for c in gh.calls("POST", "access_tokens")]
    assert app_jwts
    assert len(secrets) >= 3
    text = caplog.text + "\n".join(messages)
    assert any("401" in m for m in messages)
    assert "GitHub GET" in caplog.text  # the client does log at DEBUG
    for secret in [*secrets, *app_jwts]:
        assert secret not in text
    # ghapt logs signed storage URLs without their query string.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ghapt"))
    assert "/github-production-release-asset/" in ours
    assert "sig=" not in ours


# --- asset bytes ----------------------------------------------------------------------------------
def test_asset_url_returns_the_redirect_without_following_it(gh: FakeGitHub, clock: Clock) -> None:
    rel = gh.add_release("acme/tools", "v1", assets=[("hello_1.0_all.deb", b"0123456789" * 100)])
    client = make_client(gh, clock)

    url = client.asset_url("acme/tools", rel.assets[0].id)

    assert url.startswith(gh.storage_url + "/github-production-release-asset/")
    assert "sig=" in url
    assert "se=" in url
    assert gh.calls(server="storage") == []
    (call,) = gh.calls("GET")
    assert call.headers["accept"] == "application/octet-stream"
    assert call.status == 302


def test_storage_reads_carry_no_authorization(
    gh: FakeGitHub, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytes(range(256)) * 40
    rel = gh.add_release("acme/tools", "v1", assets=[("x.deb", data)])
    # A .netrc entry for the storage host must not sneak credentials in either.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    monkeypatch.setenv("NETRC", str(netrc))
    seen: list[tuple[str, str, int]] = []
    client = make_client(gh, clock, on_call=lambda m, u, s: seen.append((m, u, s)))
    url = client.asset_url("acme/tools", rel.assets[0].id)

    # The fake storage host really rejects Authorization, like GitHub's, and plain requests
    # would add the .netrc credentials on its own.
    assert requests.get(url, headers={"Authorization": f"Bearer {gh.token}"}, timeout=5).status_code == 400
    assert requests.get(url, timeout=5).status_code == 400
    gh.clear_log()

    with client.open_stream(url) as stream:
        assert stream.read(100) == data[:100]
        assert stream.read() == data[100:]
    assert client.fetch_range(url, 0, 9) == data[:10]
    assert client.fetch_range(url, 5000, 5123) == data[5000:5124]
    assert client.fetch_range(url, len(data) - 3, len(data) + 100) == data[-3:]

    storage = gh.calls(server="storage")
    assert [c.status for c in storage] == [200, 206, 206, 206]
    assert all("authorization" not in c.headers for c in storage)
    assert [c.headers.get("range") for c in storage[1:]] == [
        "bytes=0-9",
        "bytes=5000-5123",
        f"bytes={len(data) - 3}-{len(data) + 100}",
    ]
    assert gh.storage_bytes_served == len(data) + 10 + 124 + 3
    assert client.stats.storage_calls == 4
    assert client.stats.bytes_downloaded >= gh.storage_bytes_served
    # on_call saw every exchange; storage URLs without their signed query string.
    assert [s for _, _, s in seen] == [302, 200, 206, 206, 206]
    assert all("?" not in u for _, u, _ in seen[1:])


def test_fetch_range_reports_a_host_that_ignores_range(gh: FakeGitHub, clock: Clock) -> None:
    rel = gh.add_release("acme/tools", "v1", assets=[("x.deb", b"z" * 5000)])
    gh.storage_ignores_range = True
    client = make_client(gh, clock)
    url = client.asset_url("acme/tools", rel.assets[0].id)
    with pytest.raises(RangeIgnored):
        client.fetch_range(url, 0, 99)


def test_asset_served_directly_with_200_streams_from_the_api_with_auth(gh: FakeGitHub, clock: Clock) -> None:
    rel = gh.add_release("acme/tools", "v1", assets=[("x.deb", b"payload" * 10)])
    gh.asset_mode = "direct"
    client = make_client(gh, clock)

    url = client.asset_url("acme/tools", rel.assets[0].id)
    assert url == f"{gh.api_url}/repos/acme/tools/releases/assets/{rel.assets[0].id}"
    with client.open_stream(url) as stream:
        assert stream.read() == b"payload" * 10
    last = gh.calls("GET")[-1]
    assert last.headers["authorization"] == f"Bearer {gh.token}"
    assert last.headers["accept"] == "application/octet-stream"


def test_expired_storage_url_is_an_upstream_error(gh: FakeGitHub, clock: Clock) -> None:
    rel = gh.add_release("acme/tools", "v1", assets=[("x.deb", b"z" * 50)])
    client = make_client(gh, clock)
    url = client.asset_url("acme/tools", rel.assets[0].id)
    clock.now += 301
    with pytest.raises(GitHubError) as err:
        client.fetch_range(url, 0, 9)
    assert err.value.status_code == 403
    assert "sig=" not in str(err.value)
