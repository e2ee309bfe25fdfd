"""GitHub Actions OIDC verification against a real local issuer: every hostile token is denied."""

from __future__ import annotations

import json
from typing import Protocol

import pytest
from ghapt.auth.oidc import (
    MAX_TOKEN_BYTES,
    OidcIdentity,
    OidcRules,
    OidcVerifier,
    requests_get_json,
)
from ghapt.core.errors import Unauthorized
from ghapt.core.settings import Settings

from tests.support.clock import T0, Clock
from tests.support.oidcissuer import (
    AUDIENCE,
    OWNER,
    OWNER_ID,
    REPOSITORY,
    REPOSITORY_ID,
    OidcIssuer,
    b64url,
    encode,
    tamper,
)

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
OWNER_RULE = OidcRules.build(owner_ids=[OWNER_ID])


class MakeVerifier(Protocol):
    """The ``make`` fixture: a verifier of the issuer's tokens on the hand-moved clock."""

    def __call__(self, rules: OidcRules = ..., *, jwks_max_age: float | None = ...) -> OidcVerifier: ...


@pytest.fixture
def make(issuer: OidcIssuer, clock: Clock) -> MakeVerifier:
    def make(rules: OidcRules = OWNER_RULE, *, jwks_max_age: float | None = None) -> OidcVerifier:
        if jwks_max_age is None:
            return OidcVerifier(issuer.url, AUDIENCE, rules, clock=clock)
        return OidcVerifier(issuer.url, AUDIENCE, rules, clock=clock, jwks_max_age=jwks_max_age)

    return make


@pytest.fixture
def verifier(make: MakeVerifier) -> OidcVerifier:
    return make()


def deny(verifier: OidcVerifier, token: str, reason: str) -> str:
    """Assert ``token`` is refused for ``reason`` and that the reason never holds the token."""
    with pytest.raises(Unauthorized, match=reason) as info:
        verifier.verify(token)
    message = str(info.value)
    assert token not in message
    if "." in token:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in message
    return message


# --- good paths ---------------------------------------------------------------------------


class TestAllowed:
    def test_owner_id_rule(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        identity = verifier.verify(issuer.mint())
        assert identity == OidcIdentity(
            repository=REPOSITORY,
            repository_id=REPOSITORY_ID,
            owner=OWNER,
            owner_id=OWNER_ID,
            ref="refs/heads/main",
            environment="production",
            workflow_ref=f"{REPOSITORY}/.github/workflows/release.yml@refs/heads/main",
            actor="octocat",
            subject=f"repo:{REPOSITORY}:ref:refs/heads/main",
        )

    def test_repository_rule_by_name_ignores_case(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(repositories=["Octo-Org/Octo-Repo"]))
        assert verifier.verify(issuer.mint()).repository == REPOSITORY

    def test_repository_id_rule(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        assert make(OidcRules.build(repository_ids=[REPOSITORY_ID])).verify(issuer.mint())

    def test_owner_name_rule(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        assert make(OidcRules.build(owners=[OWNER])).verify(issuer.mint())

    def test_owner_and_repository_rules_add_up(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(owner_ids=["1"], repositories=["other/tool"]))
        token = issuer.mint({"repository": "other/tool", "repository_owner": "other"})
        assert verifier.verify(token).repository == "other/tool"

    def test_ref_pattern(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(owner_ids=[OWNER_ID], ref_pattern=r"refs/tags/v[0-9.]+"))
        assert verifier.verify(issuer.mint({"ref": "refs/tags/v1.2.3"})).ref == "refs/tags/v1.2.3"

    def test_environment_pattern(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(owner_ids=[OWNER_ID], environment_pattern="production|staging"))
        assert verifier.verify(issuer.mint({"environment": "staging"})).environment == "staging"

    def test_skew_within_leeway(self, verifier: OidcVerifier, issuer: OidcIssuer, clock: Clock) -> None:
        # Issued 30 s "in the future" and expired 30 s ago: both within the 60 s leeway.
        assert verifier.verify(issuer.mint(now=T0 + 30))
        assert verifier.verify(issuer.mint(now=T0 - 330))

    def test_audience_as_a_one_element_list(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        assert verifier.verify(issuer.mint({"aud": [AUDIENCE]}))

    def test_keys_are_cached(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        for _ in range(5):
            verifier.verify(issuer.mint())
        assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)

    def test_rules_from_settings(self, issuer: OidcIssuer, clock: Clock) -> None:
        settings = Settings(
            oidc_issuer=issuer.url,
            oidc_audience=AUDIENCE,
            oidc_owner_ids=(OWNER_ID,),
            oidc_ref_pattern="refs/heads/main",
        )
        rules = OidcRules.from_settings(settings)
        verifier = OidcVerifier(issuer.url, AUDIENCE, rules, clock=clock)
        assert verifier.verify(issuer.mint()).owner_id == OWNER_ID
        deny(verifier, issuer.mint({"ref": "refs/heads/dev"}), "ref")


# --- hostile tokens -----------------------------------------------------------------------


class TestAlgorithms:
    def test_alg_none(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(alg="none"), "algorithm")

    @pytest.mark.parametrize("alg", ["None", "NONE", "nOnE"])
    def test_alg_none_spellings(self, verifier: OidcVerifier, issuer: OidcIssuer, alg: str) -> None:
        deny(verifier, issuer.mint(alg="none", headers={"alg": alg}), "algorithm")

    def test_hs256_with_public_key_pem(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(alg="HS256", key=issuer.public_pem()), "algorithm")

    def test_hs256_with_public_key_jwk(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        jwk = json.dumps(issuer.public_jwk()).encode()
        deny(verifier, issuer.mint(alg="HS256", key=jwk), "algorithm")

    @pytest.mark.parametrize("alg", ["HS384", "HS512"])
    def test_other_hmac(self, verifier: OidcVerifier, issuer: OidcIssuer, alg: str) -> None:
        deny(verifier, issuer.mint(alg=alg, key=issuer.public_pem()), "algorithm")

    @pytest.mark.parametrize("alg", ["RS512", "PS256", "ES256", "rs256", ""])
    def test_any_other_alg_header(self, verifier: OidcVerifier, issuer: OidcIssuer, alg: str) -> None:
        deny(verifier, issuer.mint(headers={"alg": alg}), "algorithm")

    def test_missing_alg(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(headers={"alg": None}), "algorithm")

    def test_hmac_attack_never_fetches_keys(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(alg="HS256", key=issuer.public_pem()), "algorithm")
        assert issuer.jwks_fetches == 0


class TestSignature:
    def test_foreign_key_with_known_kid(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(key=issuer.foreign_key()), "signature")

    def test_tampered_payload(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(repositories=["evil/repo"]))
        token = tamper(issuer.mint(), repository="evil/repo")
        deny(verifier, token, "signature")

    def test_stripped_signature(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        head, body, _ = issuer.mint().split(".")
        deny(verifier, f"{head}.{body}.", "signature|rejected")

    def test_missing_kid(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(headers={"kid": None}), "key id")

    def test_weak_published_key_is_ignored(self, clock: Clock) -> None:
        with OidcIssuer(audience=AUDIENCE, clock=clock, key_bits=1024) as weak:
            verifier = OidcVerifier(weak.url, AUDIENCE, OWNER_RULE, clock=clock)
            deny(verifier, weak.mint(), "unknown OIDC key id")


class TestKeyRotation:
    def test_unknown_kid_refetches_once_then_rate_limited(
        self, verifier: OidcVerifier, issuer: OidcIssuer, clock: Clock
    ) -> None:
        verifier.verify(issuer.mint())
        assert issuer.jwks_fetches == 1
        clock.now += 61
        deny(verifier, issuer.mint(kid="no-such-key"), "unknown OIDC key id")
        assert issuer.jwks_fetches == 2
        for i in range(10):
            clock.now += 1
            deny(verifier, issuer.mint(kid=f"garbage-{i}"), "rate-limited")
        assert issuer.jwks_fetches == 2
        clock.now += 60
        deny(verifier, issuer.mint(kid="no-such-key"), "unknown OIDC key id")
        assert issuer.jwks_fetches == 3

    def test_unknown_kid_on_first_use_costs_one_fetch(
        self, verifier: OidcVerifier, issuer: OidcIssuer
    ) -> None:
        deny(verifier, issuer.mint(kid="nope"), "unknown OIDC key id")
        deny(verifier, issuer.mint(kid="nope"), "unknown OIDC key id")
        assert issuer.jwks_fetches == 1

    def test_rotation_is_picked_up(self, verifier: OidcVerifier, issuer: OidcIssuer, clock: Clock) -> None:
        verifier.verify(issuer.mint())
        issuer.rotate(keep_old=False)
        clock.now += 61
        assert verifier.verify(issuer.mint(now=clock.now)).repository == REPOSITORY
        assert issuer.jwks_fetches == 2

    def test_rotation_within_the_refetch_interval_waits(
        self, verifier: OidcVerifier, issuer: OidcIssuer, clock: Clock
    ) -> None:
        verifier.verify(issuer.mint())
        issuer.rotate()
        clock.now += 10
        deny(verifier, issuer.mint(now=clock.now), "rate-limited")
        clock.now += 50
        assert verifier.verify(issuer.mint(now=clock.now))

    def test_withdrawn_key_stops_working_after_max_age(
        self, make: MakeVerifier, issuer: OidcIssuer, clock: Clock
    ) -> None:
        verifier = make(jwks_max_age=600)
        verifier.verify(issuer.mint())
        old_key, old_kid = issuer.key, issuer.kid
        issuer.rotate(keep_old=False)  # the old key is withdrawn from the JWKS
        clock.now += 300
        assert verifier.verify(issuer.mint(key=old_key, kid=old_kid, now=clock.now))  # still cached
        clock.now += 301
        deny(verifier, issuer.mint(key=old_key, kid=old_kid, now=clock.now), "unknown OIDC key id")
        assert issuer.jwks_fetches == 2


class TestTime:
    def test_expired(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(now=T0 - 400), "expired")

    def test_expired_just_beyond_leeway(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint({"exp": int(T0) - 60}), "expired")

    def test_not_yet_valid(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint({"nbf": int(T0) + 120}), "nbf")

    def test_issued_in_the_future_beyond_skew(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(now=T0 + 120, omit=("nbf",)), "future")

    def test_missing_exp(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(omit=("exp",)), "no exp")

    def test_missing_iat(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(omit=("iat",)), "no iat")

    @pytest.mark.parametrize("value", ["1760000300", None, True, [1], float("inf"), float("nan")])
    def test_exp_not_a_number(self, verifier: OidcVerifier, issuer: OidcIssuer, value: object) -> None:
        token = issuer.mint({"exp": value})
        deny(verifier, token, "exp")


class TestIssuerAndAudience:
    def test_wrong_audience(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint({"aud": "someone-else"}), "audience")

    def test_github_default_audience(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint({"aud": f"https://github.com/{OWNER}"}), "audience")

    def test_missing_audience(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(omit=("aud",)), "audience")

    def test_audience_shared_with_others(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint({"aud": [f"https://github.com/{OWNER}", AUDIENCE]}), "audience")

    def test_audience_prefix_is_not_enough(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint({"aud": AUDIENCE + "x"}), "audience")

    @pytest.mark.parametrize("iss", [GITHUB_ISSUER, "ISSUER/", "ISSUER:443", ""])
    def test_wrong_issuer(self, verifier: OidcVerifier, issuer: OidcIssuer, iss: str) -> None:
        deny(verifier, issuer.mint({"iss": iss.replace("ISSUER", issuer.url)}), "issuer")

    def test_discovery_naming_another_issuer(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        issuer.discovery_issuer = GITHUB_ISSUER
        deny(verifier, issuer.mint(), "another issuer")
        assert issuer.jwks_fetches == 0

    def test_jwks_uri_on_another_host(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        issuer.jwks_uri = "http://127.0.0.2:1/.well-known/jwks"
        deny(verifier, issuer.mint(), "issuer's host")


class TestRules:
    def test_no_rules_denies_a_valid_token(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        deny(make(OidcRules.build()), issuer.mint(), "no OIDC owner or repository rule")

    def test_only_patterns_is_no_rule(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        rules = OidcRules.build(ref_pattern=".*", environment_pattern=".*")
        deny(make(rules), issuer.mint(), "no OIDC owner or repository rule")

    def test_foreign_owner(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        token = issuer.mint(
            {"repository_owner": "evil", "repository_owner_id": "666", "repository": "evil/x"}
        )
        deny(verifier, token, "not allowed")

    def test_owner_name_reused_under_another_id(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        # The name was renamed and re-registered: the id rule must not be fooled by the name.
        deny(verifier, issuer.mint({"repository_owner_id": "666"}), "not allowed")

    def test_foreign_repository(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(repositories=[REPOSITORY]))
        deny(verifier, issuer.mint({"repository": "octo-org/other-repo"}), "not allowed")

    def test_foreign_repository_id(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(repository_ids=[REPOSITORY_ID]))
        deny(verifier, issuer.mint({"repository_id": "1"}), "not allowed")

    def test_missing_identity_claims(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        deny(verifier, issuer.mint(omit=("repository_owner_id",)), "not allowed")

    def test_there_is_no_organization_claim_to_trust(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(owners=["acme"]))
        deny(verifier, issuer.mint({"organization": "acme"}), "not allowed")

    @pytest.mark.parametrize("ref", ["refs/heads/main-evil", "refs/heads/dev", "xrefs/heads/main", ""])
    def test_ref_not_matching(self, make: MakeVerifier, issuer: OidcIssuer, ref: str) -> None:
        verifier = make(OidcRules.build(owner_ids=[OWNER_ID], ref_pattern="refs/heads/main"))
        deny(verifier, issuer.mint({"ref": ref}), "ref")

    def test_ref_missing_when_pattern_set(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(owner_ids=[OWNER_ID], ref_pattern=".*"))
        deny(verifier, issuer.mint(omit=("ref",)), "ref")

    @pytest.mark.parametrize("env", ["prod", "production-evil", ""])
    def test_environment_not_matching(self, make: MakeVerifier, issuer: OidcIssuer, env: str) -> None:
        verifier = make(OidcRules.build(owner_ids=[OWNER_ID], environment_pattern="production"))
        deny(verifier, issuer.mint({"environment": env}), "environment")

    def test_environment_missing_when_pattern_set(self, make: MakeVerifier, issuer: OidcIssuer) -> None:
        verifier = make(OidcRules.build(owner_ids=[OWNER_ID], environment_pattern="production"))
        deny(verifier, issuer.mint(omit=("environment",)), "environment")


class TestGarbage:
    @pytest.mark.parametrize(
        "token",
        [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.@@@.###",
            b64url(b"not json") + ".e30.sig",
            b64url(b"[1,2]") + ".e30.sig",
            b64url(b'{"alg":"RS256","kid":"k"}') + ".%%%.sig",
            "héader.payload.sig",
            "eyJ\x00.e30.sig",
        ],
    )
    def test_garbage_is_unauthorized(self, verifier: OidcVerifier, issuer: OidcIssuer, token: str) -> None:
        with pytest.raises(Unauthorized):
            verifier.verify(token)

    def test_body_not_json_with_known_kid(self, verifier: OidcVerifier, issuer: OidcIssuer) -> None:
        header = {"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}
        token = encode(header, {}, alg="RS256", key=issuer.key)
        head, _, _ = token.split(".")
        bogus = head + "." + b64url(b"not json") + "."
        deny(verifier, bogus, "rejected|signature")

    def test_oversized_token_is_refused_before_parsing(
        self, verifier: OidcVerifier, issuer: OidcIssuer
    ) -> None:
        token = issuer.mint({"padding": "x" * MAX_TOKEN_BYTES})
        deny(verifier, token, "longer than")
        assert issuer.discovery_fetches == issuer.jwks_fetches == 0


class TestFetching:
    def test_every_fetch_has_a_timeout(self, issuer: OidcIssuer, clock: Clock) -> None:
        seen: list[tuple[str, float]] = []

        def http_get(url: str, timeout: float) -> object:
            seen.append((url, timeout))
            return requests_get_json(url, timeout)

        verifier = OidcVerifier(issuer.url, AUDIENCE, OWNER_RULE, http_get=http_get, clock=clock, timeout=3.0)
        verifier.verify(issuer.mint())
        assert [u for u, _ in seen] == [
            issuer.url + "/.well-known/openid-configuration",
            issuer.url + "/.well-known/jwks",
        ]
        assert all(t == 3.0 for _, t in seen)

    def test_issuer_down_is_unauthorized_and_retries_are_rate_limited(
        self, issuer: OidcIssuer, clock: Clock
    ) -> None:
        calls: list[str] = []

        def http_get(url: str, timeout: float) -> object:
            calls.append(url)
            raise ConnectionError("refused")

        verifier = OidcVerifier(issuer.url, AUDIENCE, OWNER_RULE, http_get=http_get, clock=clock)
        deny(verifier, issuer.mint(), "keys unavailable.*ConnectionError")
        clock.now += 1
        deny(verifier, issuer.mint(), "keys unavailable")
        assert len(calls) == 1
        clock.now += 60
        deny(verifier, issuer.mint(), "keys unavailable")
        assert len(calls) == 2

    def test_failed_refresh_keeps_the_old_keys(
        self, make: MakeVerifier, issuer: OidcIssuer, clock: Clock
    ) -> None:
        verifier = make(jwks_max_age=600)
        verifier.verify(issuer.mint())
        issuer.jwks_uri = None
        issuer.close()  # the issuer goes away; tokens it signed still verify for a while
        clock.now += 601
        token = encode(
            {"alg": "RS256", "kid": issuer.kid},
            {**issuer.claims(now=clock.now), "iss": verifier.issuer},
            alg="RS256",
            key=issuer.key,
        )
        assert verifier.verify(token).repository == REPOSITORY

    @pytest.mark.parametrize(
        "jwks",
        [[], {"keys": "x"}, {"keys": [{"kty": "EC", "kid": "k"}, 5, {"kty": "RSA", "kid": "k", "n": "!"}]}],
    )
    def test_bad_jwks_documents(self, issuer: OidcIssuer, clock: Clock, jwks: object) -> None:
        def http_get(url: str, timeout: float) -> object:
            if url.endswith("openid-configuration"):
                return issuer.discovery()
            return jwks

        verifier = OidcVerifier(issuer.url, AUDIENCE, OWNER_RULE, http_get=http_get, clock=clock)
        deny(verifier, issuer.mint(kid="k"), "OIDC")

    def test_construction_requires_issuer_and_audience(self) -> None:
        with pytest.raises(ValueError, match="issuer and audience are both required"):
            OidcVerifier("", AUDIENCE, OWNER_RULE)
        with pytest.raises(ValueError, match="issuer and audience are both required"):
            OidcVerifier(GITHUB_ISSUER, "", OWNER_RULE)
