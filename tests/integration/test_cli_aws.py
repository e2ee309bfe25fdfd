"""The operator commands against AWS (moto), run in-process: the console script cannot see moto's mock."""

from __future__ import annotations

import json

import boto3
import pytest
from ghapt.auth.passwords import verify_password
from ghapt.cli.main import main

REGION = "eu-west-1"


@pytest.fixture
def aws(moto_aws: None) -> None:
    assert REGION == "eu-west-1"  # moto_aws's region


def test_keys_shows_a_kms_key(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    from ghapt.aws.kms import kms_signer

    kms = boto3.client("kms", region_name=REGION)
    arn = kms.create_key(KeySpec="RSA_3072", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    assert main(["keys", "--kms-key-id", arn], {}) == 0
    out = capsys.readouterr().out
    assert f"signing key: kms {arn}" in out
    assert f"fingerprint: {kms_signer(kms, arn).fingerprint}" in out


# --- users on Secrets Manager (moto, in-process: the console script cannot see moto's mock) -------
def test_users_against_a_secrets_manager_secret(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="ghapt-users", SecretString='{"users": {}}')["ARN"]
    other = sm.create_secret(Name="other", SecretString="{}")["ARN"]
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("s3cret-pw\n"))
    assert main(["users", "add", "alice", "--users-secret-arn", arn, "--password-stdin"], {}) == 0
    assert f"added alice to secret {arn}" in capsys.readouterr().out
    assert main(["users", "add", "bob", "--generate"], {"GHAPT_USERS_SECRET_ARN": arn}) == 0
    assert main(["users", "list", "--users-secret-arn", arn], {}) == 0
    assert capsys.readouterr().out.split()[-2:] == ["alice", "bob"]
    document = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    assert set(document["users"]) == {"alice", "bob"}
    assert verify_password(document["users"]["alice"], "s3cret-pw")
    assert main(["users", "remove", "bob", "--users-secret-arn", arn], {}) == 0
    assert main(["users", "remove", "bob", "--users-secret-arn", arn], {}) == 1
    assert set(json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["users"]) == {"alice"}
    # an empty ({}) secret is a start, a missing one a clear error naming the setting
    assert main(["users", "add", "carol", "--users-secret-arn", other, "--generate"], {}) == 0
    capsys.readouterr()
    missing = arn.replace("ghapt-users", "nope")
    assert main(["users", "list", "--users-secret-arn", missing], {}) == 2
    assert "GHAPT_USERS_SECRET_ARN" in capsys.readouterr().err
