"""The folder watcher of ``ghapt serve`` cannot die (issue 10, item 2).

The real runtime (first rebuild, watcher thread, waitress server) runs in-process over real
files with a 50 ms poll; a file or tag folder that vanishes between the listing and the reading,
and a name that is not UTF-8, are logged in one line, counted, and retried on the next poll,
while the server keeps answering and later changes are still published. Tests wait on the
watcher's counters (a condition variable), never on a sleep."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from ghapt.bootstrap import Services
from ghapt.core.model import Asset
from ghapt.core.settings import Settings
from ghapt.local.folder import FolderReleaseSource
from ghapt.local.runtime import FolderWatcher, LocalRuntime, folder_state

from tests.support.debbuild import build_deb
from tests.support.ghaptcli import background, free_port, run, wait_for_server

AUTH = ("u", "pw-123456")
DEADLINE = 60.0


class VanishingSource(FolderReleaseSource):
    """The real folder source; when armed, the next listing is followed by removing ``victim``
    (a file or a whole tag folder) before anything is read: the race, made deterministic."""

    victim: Path | None = None

    def list_assets(self) -> list[Asset]:
        assets = super().list_assets()
        victim, self.victim = self.victim, None
        if victim is not None:
            shutil.rmtree(victim) if victim.is_dir() else victim.unlink()
        return assets


@contextmanager
def running(tmp_path: Path) -> Iterator[tuple[LocalRuntime, VanishingSource, str]]:
    rel, state = tmp_path / "rel", tmp_path / "st"
    build_deb(rel / "v1", "base", "1.0-1", "all")
    assert (
        run(
            "users", "add", AUTH[0], "--state", str(state), "--password-stdin", input=f"{AUTH[1]}\n"
        ).returncode
        == 0
    )
    settings = Settings.from_env({}, releases_dir=rel, state_dir=state, port=0, poll_seconds=0.05)
    services = Services(settings, {})
    source = VanishingSource(rel, settings.suite, lambda: services.asset_urls)
    services.__dict__["source"] = source  # a cached_property: install it before first use
    runtime = LocalRuntime(services)
    reports: list[str] = []
    runtime.start()
    assert runtime.watcher is not None
    runtime.watcher.report = reports.append
    runtime.watcher.settle_seconds = 0.0
    thread = threading.Thread(target=runtime.serve_forever, daemon=True)
    thread.start()
    try:
        yield runtime, source, f"http://127.0.0.1:{runtime.port}"
    finally:
        runtime.stop()
        thread.join(timeout=10)
    runtime.reports = reports  # type: ignore[attr-defined]


def publish(tmp_path: Path, tag: str, package: str) -> None:
    """Build a real .deb aside and move its tag folder in at once: no half-written file is seen."""
    staged = build_deb(tmp_path / "staging" / package / tag, package, "1.0-1", "all")
    os.rename(staged.parent, tmp_path / "rel" / tag)


def names(url: str) -> set[str]:
    text = requests.get(f"{url}/dists/stable/main/binary-amd64/Packages", auth=AUTH, timeout=10).text
    return {line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Package: ")}


@pytest.mark.parametrize("what", ["file", "tag folder"])
def test_a_file_or_folder_vanishing_mid_rebuild_is_just_another_change(tmp_path: Path, what: str) -> None:
    with running(tmp_path) as (runtime, source, url):
        watcher = runtime.watcher
        assert watcher is not None
        assert names(url) == {"base"}
        rel = tmp_path / "rel"
        staged = build_deb(tmp_path / "staging" / "v2", "doomed", "1.0-1", "all")
        doomed = rel / "v2" / staged.name
        source.victim = doomed if what == "file" else doomed.parent  # armed before it appears
        (rel / "v2").mkdir() if what == "file" else None
        os.rename(staged if what == "file" else staged.parent, doomed if what == "file" else doomed.parent)
        assert watcher.wait_until(lambda w: w.failures >= 1, DEADLINE), "the race was never hit"
        assert "changed while the releases were read" in watcher.last_error
        assert "v2/doomed" in watcher.last_error
        # The next poll sees the change (the file is gone) and publishes without it.
        assert watcher.wait_until(lambda w: w.rebuilds >= 1, DEADLINE)
        assert names(url) == {"base"}
        publish(tmp_path, "v3", "later")
        assert watcher.wait_until(lambda w: w.rebuilds >= 2, DEADLINE)
        assert names(url) == {"base", "later"}
    reports = runtime.reports  # type: ignore[attr-defined]
    assert len(reports) == 2 and "v2/doomed" in reports[0] and "1 failed attempt" in reports[1], reports
    assert all("\n" not in r for r in reports)


def test_any_exception_is_logged_counted_and_retried(tmp_path: Path) -> None:
    """Whatever a rebuild raises (not only ghapt's own errors), the watcher keeps polling."""
    (tmp_path / "rel").mkdir()
    failures = [UnicodeEncodeError("utf-8", "caf\udce9", 3, 4, "surrogates not allowed"), OSError(5, "EIO")]
    reports: list[str] = []

    def rebuild() -> None:
        if failures:
            raise failures.pop(0)

    watcher = FolderWatcher(
        tmp_path / "rel", rebuild, poll_seconds=0.01, settle_seconds=0, report=reports.append
    )
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        assert watcher.wait_until(lambda w: w.rebuilds == 1, DEADLINE)
        (tmp_path / "rel" / "v1").mkdir()
        (tmp_path / "rel" / "v1" / "x.deb").write_bytes(b"new")
        assert watcher.wait_until(lambda w: w.rebuilds == 2, DEADLINE)
    finally:
        watcher.stop()
        thread.join(timeout=10)
    assert watcher.failures == 2
    assert [r.split(": ", 2)[-1][:18] for r in reports[:2]] == ["UnicodeEncodeError", "OSError: [Errno 5]"]


def test_folder_state_never_raises_and_sees_every_kind_of_change(tmp_path: Path) -> None:
    rel = tmp_path / "rel"
    assert folder_state(rel) == (("!", "FileNotFoundError"),)  # missing: a state of its own
    (rel / "v1").mkdir(parents=True)
    states = [folder_state(rel)]
    (rel / "v1" / "a.deb").write_bytes(b"1")
    states.append(folder_state(rel))
    os.symlink(tmp_path / "target.deb", rel / "v1" / "link.deb")  # dangling
    states.append(folder_state(rel))
    (tmp_path / "target.deb").write_bytes(b"now it exists")
    states.append(folder_state(rel))
    os.rename(rel / "v1" / "a.deb", os.path.join(os.fsencode(rel / "v1"), b"caf\xe9.deb"))
    states.append(folder_state(rel))
    assert len(set(states)) == len(states), "each change gives a new state"


def test_serve_survives_a_non_utf8_file_name_and_keeps_publishing(tmp_path: Path) -> None:
    """The real ``ghapt serve``: before, this name killed the watcher for good."""
    rel, state = tmp_path / "rel", tmp_path / "st"
    build_deb(rel / "v1", "base", "1.0-1", "all")
    assert (
        run(
            "users", "add", AUTH[0], "--state", str(state), "--password-stdin", input=f"{AUTH[1]}\n"
        ).returncode
        == 0
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background(
        "serve", "--releases", str(rel), "--state", str(state), "--port", str(port),
        env={"GHAPT_POLL_SECONDS": "0.05"},
    ) as proc:  # fmt: skip
        wait_for_server(f"{url}/public.key", proc)
        weird = build_deb(tmp_path / "weird", "weird", "1.0-1", "all")
        os.rename(weird, os.path.join(os.fsencode(rel / "v1"), b"caf\xe9_1.0-1_all.deb"))
        build_deb(rel / "v2", "later", "1.0-1", "all")
        from tests.support.ghaptcli import eventually

        eventually(lambda: "later" in names(url), "a later package is published")
        assert "weird" not in names(url)
    output = proc.stdout.read() if proc.stdout else ""
    assert "Traceback" not in output, output


def test_a_refused_mass_removal_is_reported_once_and_the_last_good_index_is_served(tmp_path: Path) -> None:
    with running(tmp_path) as (runtime, _, url):
        watcher = runtime.watcher
        assert watcher is not None
        rel = tmp_path / "rel"
        publish(tmp_path, "v2", "second")
        assert watcher.wait_until(lambda w: w.rebuilds >= 1, DEADLINE)
        assert names(url) == {"base", "second"}
        # Both releases go at once: removed one by one, a poll in between may rightly publish
        # the first removal alone (half the packages is not "more than half").
        os.rename(rel, tmp_path / "rel-gone")
        rel.mkdir()
        assert watcher.wait_until(
            lambda w: w.failures >= 3 and "refusing to remove 2 of 2" in w.last_error, DEADLINE
        ), "retried on every poll"
        assert "refusing to remove 2 of 2 published packages" in watcher.last_error
        assert names(url) == {"base", "second"}, "the last good index is still served"
    reports = runtime.reports  # type: ignore[attr-defined]
    assert len(reports) == 1 and "--allow-mass-removal" in reports[0], reports
