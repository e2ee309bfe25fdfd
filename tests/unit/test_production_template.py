"""Least privilege for GitHub in template.yaml: only the indexer holds the credential that writes.

The internet-facing metadata and pool functions read their own secret (``GitHubReadSecret``,
``GHAPT_GITHUB_READ_SECRET_ARN``) and never name the indexer's ``GitHubSecret``; env.json for
``sam local`` says the same. The translated IAM statements are checked in test_template.py
(``SECRET_READERS``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVING = ("MetadataFunction", "PoolFunction")


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml has no type information here
    """Reads the short-form intrinsics as {"Ref": name} / {"Fn::X": value}."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def _template() -> dict[str, Any]:
    return cast("dict[str, Any]", yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader))  # noqa: S506


def _secrets_read(props: dict[str, Any]) -> set[str]:
    return {
        p["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Ref"]
        for p in props.get("Policies", [])
        if isinstance(p, dict) and "AWSSecretsManagerGetSecretValuePolicy" in p
    }


def test_serving_functions_get_the_read_only_github_secret_and_only_the_indexer_the_writer() -> None:
    resources = _template()["Resources"]
    for name in SERVING:
        props = resources[name]["Properties"]
        env = props["Environment"]["Variables"]
        assert env["GHAPT_GITHUB_READ_SECRET_ARN"] == {"Ref": "GitHubReadSecret"}, name
        assert "GHAPT_GITHUB_SECRET_ARN" not in env, name
        assert _secrets_read(props) == {"GitHubReadSecret"}, name
    writers = [
        name
        for name, res in resources.items()
        if res["Type"] == "AWS::Serverless::Function" and "GitHubSecret" in _secrets_read(res["Properties"])
    ]
    assert writers == ["IndexerFunction"]
    indexer_env = resources["IndexerFunction"]["Properties"]["Environment"]["Variables"]
    assert "GHAPT_GITHUB_READ_SECRET_ARN" not in indexer_env


def test_the_read_secret_starts_empty_says_read_only_and_has_an_output() -> None:
    template = _template()
    secret = template["Resources"]["GitHubReadSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert not any(json.loads(secret["Properties"]["SecretString"]).values()), "no credential in the template"
    assert "read" in secret["Properties"]["Description"]
    assert "no write" in secret["Properties"]["Description"]
    assert template["Outputs"]["GitHubReadSecretArn"]["Value"] == {"Ref": "GitHubReadSecret"}


def test_env_json_matches_the_least_privilege_split() -> None:
    env = json.loads((ROOT / "env.json").read_text())
    for name in SERVING:
        assert "GHAPT_GITHUB_READ_SECRET_ARN" in env[name]
        assert "GHAPT_GITHUB_SECRET_ARN" not in env[name]
    assert "GHAPT_GITHUB_SECRET_ARN" in env["IndexerFunction"]
