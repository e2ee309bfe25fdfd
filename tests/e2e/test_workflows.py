"""The GitHub Actions workflows: CI runs the README's `make test`, deploy uses OIDC (no stored AWS
keys), and the documented package-release workflow really builds a .deb with dpkg-deb."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import ROOT


def _load(rel: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / rel).read_text())
    assert isinstance(data, dict)
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def _runs(workflow: dict[str, Any]) -> list[str]:
    return [step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _uses(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", []) if "uses" in step]


def test_ci_runs_make_test_on_both_pythons() -> None:
    ci = _load(".github/workflows/ci.yml")
    assert any(re.search(r"(^|\s)make test(\s|$)", run) for run in _runs(ci))
    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert sorted(job["strategy"]["matrix"]["python"]) == ["3.11", "3.12"]
    setup = next(s for s in _uses(ci) if s["uses"].startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    assert {"push", "pull_request"} <= set(ci["on"])
    # The README's test command is the same one.
    assert "make test" in (ROOT / "README.md").read_text()


def test_deploy_assumes_a_role_through_oidc_without_stored_keys() -> None:
    text = (ROOT / ".github/workflows/deploy.yml").read_text()
    deploy = _load(".github/workflows/deploy.yml")
    assert deploy["permissions"]["id-token"] == "write"
    assert "aws-access-key-id" not in text
    assert "aws-secret-access-key" not in text
    assert "AWS_ACCESS_KEY_ID" not in text
    assert "secrets." not in text
    creds = next(s for s in _uses(deploy) if s["uses"].startswith("aws-actions/configure-aws-credentials"))
    assert creds["with"]["role-to-assume"]
    assert deploy["on"]["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in deploy["on"]
    runs = "\n".join(_runs(deploy))
    assert "sam build" in runs
    assert "sam deploy" in runs
    assert runs.index("sam build") < runs.index("sam deploy")


def test_the_documented_release_workflow_builds_a_deb(tmp_path: Path) -> None:
    release = _load("docs/release-workflow.yml")
    assert release["permissions"]["contents"] == "write"
    steps = release["jobs"]["deb"]["steps"]
    build = next(s for s in steps if "dpkg-deb" in s.get("run", ""))
    upload = next(s for s in steps if "gh release upload" in s.get("run", ""))
    assert "GH_TOKEN" in upload["env"]
    # Run the build step as Actions would (bash -e), with a stand-in program to package.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    env = {
        **os.environ,
        "ARCH": "arm64",
        "TAG": "v1.2.3",
        "GITHUB_REPOSITORY": "acme/hello",
        "GITHUB_SHA": "0" * 40,
    }
    subprocess.run(["bash", "-e", "-c", build["run"]], cwd=tmp_path, env=env, check=True)
    deb = tmp_path / "build" / "hello_1.2.3-1_arm64.deb"
    fields = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Package", "Version", "Architecture"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert fields.split() == ["Package:", "hello", "Version:", "1.2.3-1", "Architecture:", "arm64"]
    contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True).stdout
    assert "./usr/bin/hello" in contents
