"""Token exchange: mint/verify, the keys, the settings and the authenticator's token login.

POST /token is in integration/test_token_endpoint.py, the real apt-get with an exchanged token
in e2e/test_apt_token_exchange.py."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ghapt.auth.tokens as tokens_module
import pytest
from ghapt.auth.authenticator import Authenticator
from ghapt.auth.oidc import OidcRules
from ghapt.auth.tokens import TokenService, file_key, secret_key
from ghapt.bootstrap import Services, settings_authenticator, settings_tokens
from ghapt.core.errors import ConfigError, Forbidden, Unauthorized
from ghapt.core.settings import Settings

from tests.support.clock import Clock
from tests.support.oidcissuer import OWNER_ID, REPOSITORY, REPOSITORY_ID

NOW = 1_760_000_000.0
KEY = b"k" * 32
ISSUER = "https://token.actions.githubusercontent.com"
AUD = "ghapt-test"
IDENTITY = {
    "sub": f"repo:{REPOSITORY}:ref:refs/heads/main",
    "repository": REPOSITORY,
    "repository_id": REPOSITORY_ID,
    "repository_owner": "octo-org",
    "repository_owner_id": OWNER_ID,
    "ref": "refs/heads/main",
    "run_id": "10000000001",
}


def service(clock: Clock, key: bytes = KEY, **kwargs: Any) -> TokenService:
    return TokenService(lambda: key, issuer=ISSUER, audience=AUD, clock=clock, **kwargs)


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


# --- mint and verify ------------------------------------------------------------------------------
def test_round_trip_carries_the_identity_and_expiry() -> None:
    clock = Clock(NOW)
    svc = service(clock, ttl=3600)
    exchanged = svc.mint(IDENTITY)
    assert exchanged.login == "ghapt-token"
    assert exchanged.expires_at == int(NOW) + 3600
    assert exchanged.as_json()["expires_at"] == "2025-10-09T09:53:20Z"
    assert datetime.fromisoformat(exchanged.as_json()["expires_at"]) == datetime.fromtimestamp(
        NOW + 3600, UTC
    )
    assert not any(c.isspace() for c in exchanged.password)
    assert ":" not in exchanged.password
    claims = svc.verify(exchanged.password)
    for name, value in IDENTITY.items():
        assert claims[name] == value
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUD
    assert claims["exp"] == int(NOW) + 3600
    # Each mint is unique (jti), even within one second.
    assert svc.mint(IDENTITY).password != exchanged.password


def test_expired_token_is_denied_with_its_expiry() -> None:
    clock = Clock(NOW)
    svc = service(clock, ttl=600)
    token = svc.mint(IDENTITY).password
    clock.now = NOW + 599
    svc.verify(token)
    clock.now = NOW + 600
    with pytest.raises(Unauthorized, match="expired at 2025-10-09T09:03:20Z"):
        svc.verify(token)


def _tamper(token: str, **changes: Any) -> str:
    prefix, payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{prefix}.{raw}.{mac}"


@pytest.mark.parametrize(
    "change",
    [
        {"exp": NOW + 10**9},
        {"repository": "evil/repo"},
        {"repository_owner_id": "1"},
    ],
)
def test_tampered_claims_fail_the_mac(change: dict[str, Any]) -> None:
    svc = service(Clock(NOW))
    token = svc.mint(IDENTITY).password
    with pytest.raises(Unauthorized, match="MAC does not verify"):
        svc.verify(_tamper(token, **change))
    # A flipped MAC byte, too.
    prefix, payload, mac = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)))
    raw[0] ^= 1
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(Unauthorized, match="MAC does not verify"):
        svc.verify(f"{prefix}.{payload}.{flipped}")


def test_another_key_or_another_oidc_configuration_is_denied() -> None:
    clock = Clock(NOW)
    token = service(clock).mint(IDENTITY).password
    with pytest.raises(Unauthorized, match="another key"):
        service(clock, key=b"z" * 32).verify(token)
    other_audience = TokenService(lambda: KEY, issuer=ISSUER, audience="other", clock=clock)
    with pytest.raises(Unauthorized, match="MAC does not verify"):
        other_audience.verify(token)  # the binding is part of the MAC


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "a.b.c", "ghapt1.", "ghapt1.e30.", "ghapt1.!!!.!!!", "ghapt1.e30.AAAA", "é" * 10, "g" * 5000],
)
def test_garbage_is_denied(garbage: str) -> None:
    with pytest.raises(Unauthorized):
        service(Clock(NOW)).verify(garbage)


def test_current_rules_are_applied_at_verification() -> None:
    clock = Clock(NOW)
    token = service(clock).mint(IDENTITY).password
    service(clock, rules=OidcRules.build(owner_ids=[OWNER_ID])).verify(token)
    with pytest.raises(Unauthorized, match="not allowed"):
        service(clock, rules=OidcRules.build(owner_ids=["1"])).verify(token)


def test_exchange_is_only_for_oidc_principals() -> None:
    svc = service(Clock(NOW))
    context = {"kind": "oidc", "name": REPOSITORY, "owner_id": OWNER_ID, "run_id": "7", "subject": "s"}
    claims = svc.verify(svc.exchange(context).password)
    assert claims["repository"] == REPOSITORY
    assert claims["run_id"] == "7"
    assert claims["sub"] == "s"
    for kind in ("basic", "token", None):
        with pytest.raises(Forbidden, match="needs a GitHub Actions OIDC token"):
            svc.exchange({"kind": kind, "name": "alice"} if kind else None)


# --- keys -------------------------------------------------------------------------------------------
def test_file_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    first = file_key(path)()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert file_key(path)() == first
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        file_key(path)()


def test_secret_key_reads_the_secret_and_refuses_short_ones() -> None:
    secrets = {"arn:token": "s" * 48, "arn:short": "abc"}
    assert secret_key("arn:token", secrets.__getitem__)() == b"s" * 48
    with pytest.raises(ConfigError, match="shorter than 32"):
        secret_key("arn:short", secrets.__getitem__)()


def test_settings_choose_the_key_and_ttl(tmp_path: Path) -> None:
    base = {"oidc_issuer": ISSUER, "oidc_audience": AUD}
    assert settings_tokens(Settings.from_env({}, state_dir=tmp_path)) is None  # OIDC off
    assert settings_tokens(Settings.from_env({}, **base)) is None  # no key source
    local = settings_tokens(Settings.from_env({}, state_dir=tmp_path, **base))
    assert local is not None
    assert local.ttl == 6 * 3600
    assert local.login == "ghapt-token"
    local.mint(IDENTITY)
    assert (tmp_path / tokens_module.KEY_FILE).is_file()
    env = {
        "GHAPT_TOKEN_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:t",
        "GHAPT_TOKEN_TTL_SECONDS": "60",
    }
    aws = settings_tokens(
        Settings.from_env(env, **base), {env["GHAPT_TOKEN_SECRET_ARN"]: "q" * 40}.__getitem__
    )
    assert aws is not None
    assert aws.ttl == 60
    assert aws.verify(aws.mint(IDENTITY).password)["repository"] == REPOSITORY
    for bad in ("59", "86401"):
        with pytest.raises(ConfigError, match="GHAPT_TOKEN_TTL_SECONDS"):
            Settings.from_env({"GHAPT_TOKEN_TTL_SECONDS": bad})
    with pytest.raises(ConfigError, match="differ"):
        Settings.from_env({"GHAPT_TOKEN_LOGIN": "github-action"})


def test_authenticator_accepts_the_token_login_and_says_why_not() -> None:
    clock = Clock(NOW)
    rules = OidcRules.build(owner_ids=[OWNER_ID])
    svc = service(clock, rules=rules)
    auth = Authenticator(None, None, tokens=svc)
    token = svc.mint(IDENTITY).password
    principal = auth.authenticate(basic("ghapt-token", token))
    assert principal.kind == "token"
    assert principal.name == REPOSITORY
    context = principal.context()
    assert context["kind"] == "token"
    assert context["run_id"] == "10000000001"
    assert context["expires"] == str(int(NOW) + 6 * 3600)
    assert auth.method_of(basic("ghapt-token", "x")) == "token"
    with pytest.raises(Unauthorized, match="Basic Auth users are not configured"):
        auth.authenticate(basic("alice", token))  # the wrong login is an ordinary user
    with pytest.raises(Unauthorized, match="not a ghapt1 token"):
        auth.authenticate(basic("ghapt-token", "hunter2"))
    clock.now += 6 * 3600
    with pytest.raises(Unauthorized, match="expired") as info:
        auth.authenticate(basic("ghapt-token", token))
    assert token not in str(info.value)


def test_settings_authenticator_verifies_tokens_the_exchange_minted(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {}, state_dir=tmp_path, oidc_issuer=ISSUER, oidc_audience=AUD, oidc_owner_ids=OWNER_ID
    )
    minted = Services(settings, {}).tokens
    assert minted is not None
    auth = settings_authenticator(settings)
    principal = auth.authenticate(basic("ghapt-token", minted.mint(IDENTITY).password))
    assert principal.kind == "token"
