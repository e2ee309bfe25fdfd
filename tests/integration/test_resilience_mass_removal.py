"""The guard against mass removal (issue 10, item 5), through the real CLI and the fake GitHub.

A missing releases folder is an error, not an empty repository; a rebuild that would remove
more than the allowed share of the published packages, or empty one repository, refuses, names
what it would remove, and leaves the branch untouched until the removal is explicitly allowed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ghapt.bootstrap import Services
from ghapt.core.errors import MassRemovalRefused
from ghapt.core.settings import Settings

from tests.support.debbuild import build_deb
from tests.support.fakegithub import FakeGitHub
from tests.support.ghaptcli import run

META = "acme/apt-meta"


def head(state: Path) -> str:
    git = ["git", "--git-dir", str(state / "metadata.git"), "rev-parse", "refs/heads/apt-metadata"]
    return subprocess.run(git, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, Path]:
    """A state directory whose branch publishes three packages, from three tag folders."""
    rel, state = tmp_path / "rel", tmp_path / "st"
    for n, name in enumerate(("alpha", "beta", "gamma"), start=1):
        build_deb(rel / f"v{n}", name, "1.0-1", "all")
    first = run("rebuild", "--releases", str(rel), "--state", str(state))
    assert first.returncode == 0 and "3 added" in first.stdout, first.stdout + first.stderr
    return rel, state


def test_a_missing_or_unreadable_releases_folder_is_an_error_not_an_empty_repository(
    published: tuple[Path, Path], tmp_path: Path
) -> None:
    _, state = published
    before = head(state)
    missing = run("rebuild", "--releases", str(tmp_path / "does" / "not" / "exist"), "--state", str(state))
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "does/not/exist does not exist" in missing.stderr
    assert "GHAPT_RELEASES_DIR" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "a-file").write_text("x")
    not_folder = run("rebuild", "--releases", str(tmp_path / "a-file"), "--state", str(state))
    assert not_folder.returncode == 2 and "is not a folder" in not_folder.stderr, not_folder.stderr
    # The same typo through the environment, as in a service unit.
    env = {"GHAPT_RELEASES_DIR": str(tmp_path / "typo"), "GHAPT_STATE_DIR": str(state)}
    assert run("rebuild", env=env).returncode == 2
    assert head(state) == before, "the branch must stay untouched"


def test_removing_more_than_half_refuses_names_the_packages_and_needs_the_flag(
    published: tuple[Path, Path],
) -> None:
    rel, state = published
    before = head(state)
    shutil.rmtree(rel / "v2")
    shutil.rmtree(rel / "v3")
    refused = run("rebuild", "--releases", str(rel), "--state", str(state))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert "refusing to remove 2 of 3 published packages" in refused.stderr
    for pool in ("pool/main/b/beta/beta_1.0-1_all.deb", "pool/main/g/gamma/gamma_1.0-1_all.deb"):
        assert pool in refused.stderr
    assert "--allow-mass-removal" in refused.stderr
    assert "GHAPT_ALLOW_MASS_REMOVAL" in refused.stderr
    assert "commit: none (refused; the branch is untouched)" in refused.stdout
    assert head(state) == before
    dry = run("rebuild", "--dry-run", "--releases", str(rel), "--state", str(state))
    assert dry.returncode == 0 and "refused: refusing to remove 2 of 3" in dry.stdout, dry.stdout
    assert head(state) == before
    allowed = run("rebuild", "--allow-mass-removal", "--releases", str(rel), "--state", str(state))
    assert allowed.returncode == 0 and "2 removed" in allowed.stdout, allowed.stdout + allowed.stderr
    assert head(state) != before


def test_the_share_is_a_setting_and_half_or_less_passes(published: tuple[Path, Path]) -> None:
    rel, state = published
    shutil.rmtree(rel / "v3")  # 1 of 3: fine by default
    assert run("rebuild", "--releases", str(rel), "--state", str(state)).returncode == 0
    shutil.rmtree(rel / "v2")  # 1 of 2 is half, not more than half
    assert run("rebuild", "--releases", str(rel), "--state", str(state)).returncode == 0
    build_deb(rel / "v4", "delta", "1.0-1", "all")
    assert run("rebuild", "--releases", str(rel), "--state", str(state)).returncode == 0
    shutil.rmtree(rel / "v1")
    build_deb(rel / "v5", "epsilon", "1.0-1", "all")
    strict = {"GHAPT_MASS_REMOVAL_SHARE": "0.2"}
    refused = run("rebuild", "--releases", str(rel), "--state", str(state), env=strict)
    assert refused.returncode == 1 and "more than 0.2 of them" in refused.stderr, refused.stderr
    allowed = {**strict, "GHAPT_ALLOW_MASS_REMOVAL": "true"}
    assert run("rebuild", "--releases", str(rel), "--state", str(state), env=allowed).returncode == 0
    bad = run("rebuild", "--releases", str(rel), "--state", str(state), env={"GHAPT_MASS_REMOVAL_SHARE": "2"})
    assert bad.returncode == 2
    assert "GHAPT_MASS_REMOVAL_SHARE" in bad.stderr


def test_an_emptied_releases_folder_refuses(published: tuple[Path, Path]) -> None:
    rel, state = published
    before = head(state)
    for tag in ("v1", "v2", "v3"):
        shutil.rmtree(rel / tag)
    refused = run("rebuild", "--releases", str(rel), "--state", str(state))
    assert refused.returncode == 1 and "refusing to remove 3 of 3" in refused.stderr, refused.stderr
    assert head(state) == before


# --- GitHub: a listing that suddenly comes back empty --------------------------------------------
@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        for repo in ("acme/tool", "acme/big", META):
            fake.add_repo(repo)
        yield fake


def github_indexer(fake: FakeGitHub, state: Path, **overrides: object) -> Services:
    settings = Settings.from_env(
        {"GITHUB_TOKEN": fake.token},
        backend="github",
        api_url=fake.api_url,
        github_repos=["acme/tool", "acme/big"],
        metadata_repo=META,
        state_dir=state,
        architectures="amd64",
        **overrides,
    )
    return Services(settings, {})


def test_an_empty_github_listing_for_a_repository_that_had_releases_refuses(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    debs = tmp_path / "debs"
    gh.add_release("acme/tool", "v1", [("tool.deb", build_deb(debs, "tool", "1.0-1", "amd64").read_bytes())])
    big = [(f"b{n}.deb", build_deb(debs, f"big{n}", "1.0-1", "amd64").read_bytes()) for n in range(4)]
    gh.add_release("acme/big", "v1", big)
    assert github_indexer(gh, tmp_path / "st").indexer.rebuild().packages == 5
    before = gh.branch_head(META, "apt-metadata")

    gh.delete_release("acme/tool", "v1")  # 1 of 5 packages, but acme/tool now lists nothing
    with pytest.raises(MassRemovalRefused) as refused:
        github_indexer(gh, tmp_path / "st").indexer.rebuild()
    assert "nothing listed any more by repository acme/tool" in str(refused.value)
    assert "pool/main/t/tool/tool_1.0-1_amd64.deb" in str(refused.value)
    assert gh.branch_head(META, "apt-metadata") == before, "the branch must stay untouched"

    result = github_indexer(gh, tmp_path / "st", allow_mass_removal=True).indexer.rebuild()
    assert result.commit
    assert result.removed == ["stable:pool/main/t/tool/tool_1.0-1_amd64.deb"]


def test_the_lambda_indexer_reports_a_refused_rebuild_as_a_failure(gh: FakeGitHub, tmp_path: Path) -> None:
    """On AWS the refusal fails the SQS record: retried, then dead-lettered (and alarmed)."""
    from ghapt.aws.sqs import run_indexer_event

    debs = tmp_path / "debs"
    gh.add_release("acme/tool", "v1", [("tool.deb", build_deb(debs, "tool", "1.0-1", "amd64").read_bytes())])
    services = github_indexer(gh, tmp_path / "st")
    services.indexer.rebuild()
    before = gh.branch_head(META, "apt-metadata")
    gh.delete_release("acme/tool", "v1")

    class Quiet:
        def __getattr__(self, name: str) -> object:
            return lambda *a, **k: None

    with pytest.raises(MassRemovalRefused):  # the schedule path: a function error
        run_indexer_event({}, None, services.indexer, logger=Quiet(), metrics=Quiet())
    assert gh.branch_head(META, "apt-metadata") == before


@pytest.mark.parametrize(
    ("value", "allowed"), [("true", True), ("1", True), ("false", False), ("0", False), ("", False)]
)
def test_the_allow_setting_reads_only_clear_words(value: str, allowed: bool) -> None:
    assert Settings.from_env({"GHAPT_ALLOW_MASS_REMOVAL": value}).allow_mass_removal is allowed


def test_an_unclear_allow_setting_is_a_configuration_error_not_false() -> None:
    from ghapt.core.errors import ConfigError

    with pytest.raises(ConfigError, match="GHAPT_ALLOW_MASS_REMOVAL"):
        Settings.from_env({"GHAPT_ALLOW_MASS_REMOVAL": "ture"})
