"""The REQUEST authorizer: Basic users and OIDC tokens in, an API-wide Allow or a 401 out."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, cast
from unittest import mock

import boto3
import ghapt.auth.passwords as users
import pytest
from aws_lambda_powertools import Logger, Metrics
from ghapt.auth.authenticator import (
    MAX_HEADER_BYTES,
    Authenticator,
    Principal,
    authorization_header,
)
from ghapt.auth.oidc import OidcRules, OidcVerifier
from ghapt.auth.userfile import UserFile
from ghapt.aws.authorizer import handle_event
from ghapt.aws.usersecret import SecretUsers
from ghapt.bootstrap import settings_authenticator
from ghapt.core.errors import ConfigError, Unauthorized
from ghapt.core.settings import Settings

from tests.support.clock import Clock
from tests.support.oidcissuer import AUDIENCE, OWNER_ID, REPOSITORY, OidcIssuer
from tests.support.paths import CANNED_EVENTS

PASSWORD = "s3cret-apt-pass"  # alice's password in the canned events


LogSink = tuple[Logger, io.StringIO]
"""A Powertools Logger of its own and the stream it writes to."""


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((CANNED_EVENTS / f"authorizer_{name}.json").read_text())
    return event


def with_header(event: dict[str, Any], value: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    for key in list(event["headers"]):
        if key.lower() == "authorization":
            event["headers"][key] = value
            event["multiValueHeaders"][key] = [value]
    return event


@pytest.fixture(scope="module")
def users_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state") / "users.json"
    UserFile(path).add("alice", PASSWORD)
    UserFile(path).add("bob", "bobs-password")
    return path


@pytest.fixture
def verifier(issuer: OidcIssuer, clock: Clock) -> OidcVerifier:
    return OidcVerifier(issuer.url, AUDIENCE, OidcRules.build(owner_ids=[OWNER_ID]), clock=clock)


@pytest.fixture
def auth(users_path: Path, verifier: OidcVerifier, clock: Clock) -> Authenticator:
    return Authenticator(UserFile(users_path), verifier, "github-action", clock=clock)


@pytest.fixture
def log() -> LogSink:
    stream = io.StringIO()
    return Logger(service=f"authorizer-test-{uuid.uuid4().hex}", stream=stream), stream


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics(namespace="ghapt-test", service="authorizer")
    m.clear_metrics()
    yield m
    m.clear_metrics()


def count_scrypt() -> AbstractContextManager[Any]:
    """Count the scrypt calls ghapt.users makes (wrapping the real one)."""
    return mock.patch("ghapt.auth.passwords.hashlib.scrypt", wraps=hashlib.scrypt)


# --- Basic --------------------------------------------------------------------------------


class TestBasic:
    def test_right_password(self, auth: Authenticator) -> None:
        assert auth.authenticate(basic("alice", PASSWORD)) == Principal("basic", "alice")

    @pytest.mark.parametrize("scheme", ["basic", "BASIC", "bAsIc"])
    def test_scheme_is_case_insensitive(self, auth: Authenticator, scheme: str) -> None:
        header = basic("alice", PASSWORD).replace("Basic", scheme)
        assert auth.authenticate(header).name == "alice"

    def test_password_with_colons_and_unicode(self, tmp_path: Path, verifier: OidcVerifier) -> None:
        path = tmp_path / "users.json"
        UserFile(path).add("carol", "a:b:ç✓")
        auth = Authenticator(UserFile(path), verifier)
        assert auth.authenticate(basic("carol", "a:b:ç✓")).name == "carol"

    def test_wrong_password(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthorized, match="wrong password for user 'alice'"):
            auth.authenticate(basic("alice", PASSWORD + "x"))

    def test_other_users_password(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthorized):
            auth.authenticate(basic("alice", "bobs-password"))

    def test_unknown_user_costs_a_scrypt_and_is_not_named(self, auth: Authenticator) -> None:
        with count_scrypt() as spy, pytest.raises(Unauthorized) as info:
            auth.authenticate(basic("mallory", PASSWORD))
        assert spy.call_count == 1
        assert str(info.value) == "unknown user"

    def test_no_user_store(self, verifier: OidcVerifier) -> None:
        with pytest.raises(Unauthorized, match="not configured"):
            Authenticator(None, verifier).authenticate(basic("alice", PASSWORD))

    def test_users_added_later_take_effect(self, tmp_path: Path, verifier: OidcVerifier) -> None:
        path = tmp_path / "users.json"
        auth = Authenticator(UserFile(path), verifier)
        with pytest.raises(Unauthorized):
            auth.authenticate(basic("dave", "pw-d"))
        UserFile(path).add("dave", "pw-d")
        assert auth.authenticate(basic("dave", "pw-d")).name == "dave"


B64 = base64.b64encode


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no Authorization header"),
        ("", "no Authorization header"),
        ("Basic", "malformed"),
        ("Basic ", "malformed"),
        ("Basic  " + B64(b"alice:" + PASSWORD.encode()).decode(), "malformed"),
        (" " + basic("alice", PASSWORD), "malformed"),
        (basic("alice", PASSWORD) + " ", "malformed"),
        (basic("alice", PASSWORD).replace(" ", "\t"), "malformed"),
        (basic("alice", PASSWORD) + "\r\nX-Evil: 1", "malformed"),
        ("Basic " + B64(b"alice:" + PASSWORD.encode()).decode() + " extra", "malformed"),
        (PASSWORD, "malformed"),  # a bare secret, no scheme
        ("Basic !!!!", "malformed"),
        ("Basic ÿÿÿÿ", "malformed"),
        ("Basic " + B64(b"alice:pw").decode().rstrip("="), "base64"),
        ("Basic YWxpY2U6cHc=YWxpY2U=", "malformed|base64"),
        ("Basic " + base64.urlsafe_b64encode(b"alice:\xfb\xff\xfepw").decode(), "base64"),
        ("Basic " + B64(b"alice" + PASSWORD.encode()).decode(), "no ':'"),
        ("Basic " + B64(b"\xff\xfe:" + PASSWORD.encode()).decode(), "not UTF-8"),
        ("Basic " + B64(b"alice:\xc3\x28").decode(), "not UTF-8"),
        ("Basic " + B64(b":" + PASSWORD.encode()).decode(), "empty login"),
        ("Basic " + B64(b"alice:").decode(), "empty login or password"),
        ("Basic " + B64(b":").decode(), "empty"),
        ("Basic " + B64(b"al ice:pw").decode(), "whitespace or control"),
        ("Basic " + B64(b"alice\x00:pw").decode(), "whitespace or control"),
        ("Basic " + B64(b"alice\n:pw").decode(), "whitespace or control"),
        ("Digest username=alice, realm=ghapt", "malformed"),
        ("Digest " + B64(b"alice:" + PASSWORD.encode()).decode(), "unsupported Authorization scheme"),
        ("Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag", "unsupported Authorization scheme"),
        ("Bearer", "malformed"),
        ("Bearer a b", "malformed"),
        ("Basic " + "A" * MAX_HEADER_BYTES, "longer than"),
        ("Bearer " + "a." * (MAX_HEADER_BYTES // 2), "longer than"),
    ],
)
def test_malformed_headers_are_unauthorized(auth: Authenticator, header: str | None, reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason) as info:
        auth.authenticate(header)
    message = str(info.value)
    assert PASSWORD not in message
    for word in (header or "").split():
        if len(word) >= 6:
            assert word not in message


class TestCache:
    def test_success_is_cached_briefly(self, auth: Authenticator, clock: Clock) -> None:
        header = basic("alice", PASSWORD)
        with count_scrypt() as spy:
            auth.authenticate(header)
            auth.authenticate(header)
            auth.authenticate(header)
            assert spy.call_count == 1
            clock.now += auth.cache_seconds
            auth.authenticate(header)
            assert spy.call_count == 2

    def test_failures_are_not_cached(self, auth: Authenticator) -> None:
        with count_scrypt() as spy:
            for _ in range(3):
                with pytest.raises(Unauthorized):
                    auth.authenticate(basic("alice", "guess"))
        assert spy.call_count == 3

    def test_cache_never_holds_the_password(self, auth: Authenticator) -> None:
        auth.authenticate(basic("alice", PASSWORD))
        dump = repr(auth._cache) + repr(vars(auth))
        assert PASSWORD not in dump
        assert PASSWORD.encode().hex() not in dump
        assert B64(PASSWORD.encode()).decode() not in dump
        assert B64(f"alice:{PASSWORD}".encode()).decode() not in dump
        for key in auth._cache:
            assert PASSWORD.encode() not in key

    def test_password_change_beats_the_cache(
        self, tmp_path: Path, verifier: OidcVerifier, clock: Clock
    ) -> None:
        path = tmp_path / "users.json"
        UserFile(path).add("erin", "old-pw")
        auth = Authenticator(UserFile(path), verifier, clock=clock)
        auth.authenticate(basic("erin", "old-pw"))
        UserFile(path).add("erin", "new-pw")
        with pytest.raises(Unauthorized):
            auth.authenticate(basic("erin", "old-pw"))
        assert auth.authenticate(basic("erin", "new-pw")).name == "erin"

    def test_removal_beats_the_cache(self, tmp_path: Path, verifier: OidcVerifier, clock: Clock) -> None:
        path = tmp_path / "users.json"
        UserFile(path).add("erin", "pw")
        auth = Authenticator(UserFile(path), verifier, clock=clock)
        auth.authenticate(basic("erin", "pw"))
        UserFile(path).remove("erin")
        with pytest.raises(Unauthorized, match="unknown user"):
            auth.authenticate(basic("erin", "pw"))

    def test_cache_is_bounded(self, tmp_path: Path, verifier: OidcVerifier, clock: Clock) -> None:
        path = tmp_path / "users.json"
        UserFile(path).add("frank", "pw")
        auth = Authenticator(UserFile(path), verifier, clock=clock, cache_size=2)
        for i in range(4):
            path_user = f"u{i}"
            UserFile(path).add(path_user, "pw")
            auth.authenticate(basic(path_user, "pw"))
        assert len(auth._cache) == 2


# --- OIDC ---------------------------------------------------------------------------------


class TestOidc:
    def test_token_as_basic_password(self, auth: Authenticator, issuer: OidcIssuer) -> None:
        principal = auth.authenticate(basic("github-action", issuer.mint()))
        assert (principal.kind, principal.name) == ("oidc", REPOSITORY)
        assert principal.oidc is not None
        assert principal.oidc.owner_id == OWNER_ID

    def test_token_as_bearer(self, auth: Authenticator, issuer: OidcIssuer) -> None:
        assert auth.authenticate("Bearer " + issuer.mint()) == Principal("oidc", REPOSITORY)

    def test_custom_login(self, users_path: Path, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        auth = Authenticator(UserFile(users_path), verifier, "ci-bot")
        assert auth.authenticate(basic("ci-bot", issuer.mint())).kind == "oidc"
        with pytest.raises(Unauthorized, match="unknown user"):
            auth.authenticate(basic("github-action", issuer.mint()))

    def test_hostile_token_via_basic(self, auth: Authenticator, issuer: OidcIssuer) -> None:
        with pytest.raises(Unauthorized, match="algorithm"):
            auth.authenticate(basic("github-action", issuer.mint(alg="none")))

    def test_garbage_token(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthorized, match="OIDC"):
            auth.authenticate(basic("github-action", "not-a-jwt"))

    def test_oidc_login_never_checks_basic_users(self, auth: Authenticator, issuer: OidcIssuer) -> None:
        with count_scrypt() as spy, pytest.raises(Unauthorized):
            auth.authenticate(basic("github-action", "a-password"))
        assert spy.call_count == 0

    def test_oidc_disabled(self, users_path: Path, issuer: OidcIssuer) -> None:
        auth = Authenticator(UserFile(users_path), None)
        for header in ("Bearer " + issuer.mint(), basic("github-action", issuer.mint())):
            with pytest.raises(Unauthorized, match="OIDC is not enabled"):
                auth.authenticate(header)

    def test_no_rules_denies(self, users_path: Path, issuer: OidcIssuer, clock: Clock) -> None:
        verifier = OidcVerifier(issuer.url, AUDIENCE, OidcRules.build(), clock=clock)
        with pytest.raises(Unauthorized, match="no OIDC owner or repository rule"):
            Authenticator(None, verifier).authenticate("Bearer " + issuer.mint())


# --- the Lambda event ---------------------------------------------------------------------


def iam_match(pattern: str, arn: str) -> bool:
    """IAM resource matching: ``*`` spans any characters, ``/`` included."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), arn) is not None


def allows(policy: dict[str, Any], arn: str) -> bool:
    statements = policy["policyDocument"]["Statement"]
    if any(s["Effect"] == "Deny" and any(iam_match(r, arn) for r in s["Resource"]) for s in statements):
        return False
    return any(
        s["Effect"] == "Allow"
        and s["Action"] == "execute-api:Invoke"
        and any(iam_match(r, arn) for r in s["Resource"])
        for s in statements
    )


def denied(event: dict[str, Any], auth: Authenticator, logger: Logger, **kw: object) -> Exception:
    with pytest.raises(Exception, match=r"^Unauthorized$") as info:
        handle_event(event, auth, logger=logger, **kw)
    assert type(info.value) is Exception
    assert str(info.value) == "Unauthorized"
    assert info.value.__cause__ is None
    return info.value


def emf(metrics: Metrics) -> dict[str, Any]:
    """The EMF blob Powertools would print (metric names and dimensions are its keys)."""
    return cast("dict[str, Any]", metrics.serialize_metric_set())


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


class TestHandleEvent:
    def test_basic_allows_the_whole_api(self, auth: Authenticator, log: LogSink) -> None:
        logger, stream = log
        event = load("basic")
        policy = handle_event(event, auth, logger=logger)
        assert policy["principalId"] == "basic:alice"
        assert policy["policyDocument"]["Version"] == "2012-10-17"
        (statement,) = policy["policyDocument"]["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "execute-api:Invoke"
        assert statement["Resource"] == ["arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/*/*"]
        assert event["methodArn"] not in statement["Resource"]
        assert policy["context"] == {"kind": "basic", "name": "alice"}
        base = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5"
        for arn in (
            event["methodArn"],
            f"{base}/prod/GET/pool/main/h/hello/hello_2.10-3_amd64.deb",
            f"{base}/prod/HEAD/dists/stable/main/binary-arm64/Packages.xz",
            f"{base}/prod/GET/dists/stable/by-hash/SHA256/00ff",
        ):
            assert allows(policy, arn), arn
        for arn in (
            f"{base}/dev/GET/dists/stable/InRelease",
            "arn:aws:execute-api:eu-west-1:123456789012:otherapi99/prod/GET/dists/stable/InRelease",
            "arn:aws:execute-api:eu-west-1:999999999999:a1b2c3d4e5/prod/GET/dists/stable/InRelease",
        ):
            assert not allows(policy, arn), arn
        (line,) = log_lines(stream)
        assert line["level"] == "INFO"
        assert line["method"] == "basic"
        assert PASSWORD not in stream.getvalue()

    def test_lower_case_header_names(self, auth: Authenticator, log: LogSink) -> None:
        policy = handle_event(load("lowercase"), auth, logger=log[0])
        assert policy["principalId"] == "basic:alice"

    def test_partition_is_kept(self, auth: Authenticator, log: LogSink) -> None:
        policy = handle_event(load("china"), auth, logger=log[0])
        (statement,) = policy["policyDocument"]["Statement"]
        assert statement["Resource"] == ["arn:aws-cn:execute-api:cn-north-1:210987654321:f6g7h8i9j0/v1/*/*"]

    def test_bearer_token(self, auth: Authenticator, issuer: OidcIssuer, log: LogSink) -> None:
        logger, stream = log
        token = issuer.mint()
        policy = handle_event(with_header(load("bearer"), "Bearer " + token), auth, logger=logger)
        assert policy["principalId"] == f"oidc:{REPOSITORY}"
        assert policy["context"]["kind"] == "oidc"
        assert policy["context"]["ref"] == "refs/heads/main"
        assert all(isinstance(v, str) for v in policy["context"].values())
        assert allows(policy, "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/dists/x")
        assert token not in stream.getvalue()

    def test_token_as_basic_password(self, auth: Authenticator, issuer: OidcIssuer, log: LogSink) -> None:
        header = basic("github-action", issuer.mint())
        policy = handle_event(with_header(load("basic"), header), auth, logger=log[0])
        assert policy["principalId"] == f"oidc:{REPOSITORY}"

    def test_missing_header(self, auth: Authenticator, log: LogSink) -> None:
        logger, stream = log
        denied(load("no_header"), auth, logger)
        (line,) = log_lines(stream)
        assert line["level"] == "WARNING"
        assert line["reason"] == "no Authorization header"
        assert line["method"] == "none"

    def test_headers_null(self, auth: Authenticator, log: LogSink) -> None:
        event = load("no_header")
        event["headers"] = event["multiValueHeaders"] = None
        denied(event, auth, log[0])

    def test_only_multi_value_headers(self, auth: Authenticator, log: LogSink) -> None:
        event = load("basic")
        event["headers"] = None
        assert handle_event(event, auth, logger=log[0])["principalId"] == "basic:alice"

    def test_two_different_authorization_headers(self, auth: Authenticator, log: LogSink) -> None:
        logger, stream = log
        event = load("basic")
        event["multiValueHeaders"]["Authorization"].append(basic("bob", "bobs-password"))
        denied(event, auth, logger)
        assert "more than one Authorization header" in stream.getvalue()

    def test_wrong_password_logs_reason_not_credential(self, auth: Authenticator, log: LogSink) -> None:
        logger, stream = log
        header = basic("alice", "hunter2-not-it")
        denied(with_header(load("basic"), header), auth, logger)
        text = stream.getvalue()
        (line,) = log_lines(stream)
        assert line["reason"] == "wrong password for user 'alice'"
        assert line["method"] == "basic"
        assert "hunter2-not-it" not in text
        assert header.split()[1] not in text

    def test_password_never_logged_on_any_path(
        self, auth: Authenticator, log: LogSink, issuer: OidcIssuer
    ) -> None:
        logger, stream = log
        secrets = ["Zx9-very-secret", PASSWORD]
        headers = [
            basic("alice", secrets[0]),
            basic("nobody", secrets[0]),
            basic("al ice", secrets[0]),
            secrets[0],
            f"Digest {secrets[0]}",
            f"Basic {secrets[0]}",
            "Basic " + B64(b"\xff:" + secrets[0].encode()).decode(),
        ]
        for header in headers:
            denied(with_header(load("basic"), header), auth, logger)
        handle_event(load("basic"), auth, logger=logger)
        text = stream.getvalue()
        for secret in secrets:
            assert secret not in text
        for header in headers:
            assert header.split(" ")[-1] not in text
        assert len(log_lines(stream)) == len(headers) + 1

    @pytest.mark.parametrize(
        ("mint", "reason"),
        [
            ({"alg": "none"}, "algorithm"),
            ({"overrides": {"aud": "https://github.com/octo-org"}}, "audience"),
            ({"overrides": {"repository_owner_id": "666"}}, "not allowed"),
            ({"kid": "unknown"}, "unknown OIDC key id"),
        ],
    )
    def test_hostile_token_logs_reason_not_token(
        self, auth: Authenticator, issuer: OidcIssuer, log: LogSink, mint: dict[str, Any], reason: str
    ) -> None:
        logger, stream = log
        token = issuer.mint(**mint)
        denied(with_header(load("bearer"), "Bearer " + token), auth, logger)
        (line,) = log_lines(stream)
        assert re.search(reason, line["reason"])
        assert line["method"] == "oidc"
        assert token not in stream.getvalue()
        for part in token.split("."):
            if len(part) > 8:
                assert part not in stream.getvalue()

    def test_bad_method_arn_fails_closed(self, auth: Authenticator, log: LogSink) -> None:
        logger, stream = log
        event = load("basic")
        event["methodArn"] = "arn:aws:lambda:eu-west-1:123456789012:function:x"
        denied(event, auth, logger)
        assert "ValueError" in stream.getvalue()

    def test_store_failure_fails_closed_and_says_why(self, verifier: OidcVerifier, log: LogSink) -> None:
        logger, stream = log

        def broken(name: str) -> str:
            raise ConfigError(f"secret {name!r} is not set")

        auth = Authenticator(SecretUsers("users-secret", fetch=broken), verifier)
        denied(load("basic"), auth, logger)
        (line,) = log_lines(stream)
        assert line["level"] == "ERROR"
        assert "users-secret" in line["reason"]
        assert PASSWORD not in stream.getvalue()

    def test_metrics(self, auth: Authenticator, log: LogSink, metrics: Metrics) -> None:
        handle_event(load("basic"), auth, logger=log[0], metrics=metrics)
        blob = emf(metrics)
        assert blob["AuthAllowed"] == [1.0]
        assert blob["method"] == "basic"
        (dimensions,) = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        assert "method" in dimensions
        metrics.clear_metrics()
        denied(with_header(load("basic"), basic("alice", "nope")), auth, log[0], metrics=metrics)
        blob = emf(metrics)
        assert blob["AuthDenied"] == [1.0]
        assert blob["method"] == "basic"
        assert "AuthAllowed" not in blob

    def test_denied_oidc_metric_dimension(self, auth: Authenticator, log: LogSink, metrics: Metrics) -> None:
        denied(with_header(load("bearer"), "Bearer x.y.z"), auth, log[0], metrics=metrics)
        blob = emf(metrics)
        assert (blob["AuthDenied"], blob["method"]) == ([1.0], "oidc")


@pytest.mark.parametrize(
    ("header", "method"),
    [
        (None, "none"),
        ("", "none"),
        (basic("alice", "pw"), "basic"),
        ("Basic !!!", "basic"),
        (basic("github-action", "x.y.z"), "oidc"),
        ("Bearer x.y.z", "oidc"),
        ("bearer  x", "oidc"),
        ("Digest x", "malformed"),
        ("a-bare-secret", "malformed"),
    ],
)
def test_method_of(auth: Authenticator, header: str | None, method: str) -> None:
    assert auth.method_of(header) == method


class TestAuthorizationHeader:
    def test_case_insensitive(self) -> None:
        assert authorization_header({"headers": {"AUTHORIZATION": "x"}}) == "x"

    def test_absent(self) -> None:
        assert authorization_header({}) is None
        assert authorization_header({"headers": None, "multiValueHeaders": None}) is None

    def test_same_value_twice_is_fine(self) -> None:
        event = {"headers": {"Authorization": "x"}, "multiValueHeaders": {"authorization": ["x"]}}
        assert authorization_header(event) == "x"

    def test_conflict(self) -> None:
        with pytest.raises(Unauthorized):
            authorization_header({"headers": {"Authorization": "x", "authorization": "y"}})


# --- wiring from settings -----------------------------------------------------------------


@pytest.fixture
def aws(moto_aws: None) -> Any:
    return boto3.client("secretsmanager")


class TestSettingsAuthenticator:
    def test_local_users_file(self, users_path: Path) -> None:
        auth = settings_authenticator(Settings(users_file=users_path))
        assert isinstance(auth.users, UserFile)
        assert auth.oidc is None
        assert auth.authenticate(basic("alice", PASSWORD)).name == "alice"

    def test_users_file_defaults_to_the_state_dir(self, tmp_path: Path) -> None:
        UserFile(tmp_path / "users.json").add("gina", "pw-g")
        auth = settings_authenticator(Settings(state_dir=tmp_path))
        assert auth.authenticate(basic("gina", "pw-g")).name == "gina"

    def test_nothing_configured_denies_everyone(self, issuer: OidcIssuer) -> None:
        auth = settings_authenticator(Settings())
        for header in (basic("alice", PASSWORD), "Bearer " + issuer.mint()):
            with pytest.raises(Unauthorized):
                auth.authenticate(header)

    def test_oidc_from_settings(self, issuer: OidcIssuer) -> None:
        settings = Settings(
            oidc_issuer=issuer.url,
            oidc_audience=AUDIENCE,
            oidc_login="ci",
            oidc_repositories=(REPOSITORY,),
            oidc_ref_pattern="refs/heads/main",
        )
        auth = settings_authenticator(settings)
        assert auth.oidc is not None
        assert auth.oidc_login == "ci"
        now = time.time()  # the verifier built from settings runs on the real clock
        assert auth.authenticate(basic("ci", issuer.mint(now=now))).name == REPOSITORY
        with pytest.raises(Unauthorized, match="ref"):
            auth.authenticate("Bearer " + issuer.mint({"ref": "refs/heads/dev"}, now=now))

    def test_secret_users_through_the_secrets_port(self) -> None:
        class Port:
            def __init__(self) -> None:
                self.names: list[str] = []

            def get(self, name: str) -> str:
                self.names.append(name)
                return users.dump_users({"hank": users.hash_password("pw-h")})

        port = Port()
        arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ghapt-users-AbCdEf"
        auth = settings_authenticator(Settings(users_secret_arn=arn), port)
        assert isinstance(auth.users, SecretUsers)
        assert auth.authenticate(basic("hank", "pw-h")).name == "hank"
        assert port.names == [arn]

    def test_secret_users_with_secrets_manager(self, aws: Any, log: LogSink) -> None:
        arn = aws.create_secret(
            Name="ghapt/users", SecretString=users.dump_users({"alice": users.hash_password(PASSWORD)})
        )["ARN"]
        auth = settings_authenticator(Settings(users_secret_arn=arn, users_file=Path("/nonexistent")))
        assert isinstance(auth.users, SecretUsers)
        policy = handle_event(load("basic"), auth, logger=log[0])
        assert policy["principalId"] == "basic:alice"
        denied(with_header(load("basic"), basic("alice", "wrong")), auth, log[0])
