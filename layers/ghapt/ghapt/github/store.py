"""The metadata store as a branch of a GitHub repository, through the Git Data API only.

Why the Git Data API and not the contents API: one rebuild changes many files (Packages,
by-hash copies, Release, InRelease) and apt must never see half of them. Blobs, a tree on the
base tree, one commit, then ``PATCH git/refs/heads/B`` with ``force: false`` publishes them all
at once, and the ref update is a compare-and-swap: GitHub answers 422 "Update is not a fast
forward" if another rebuild won the race, which becomes ``StaleHead`` (rebuild on the new head).
Anything that fails before the ref update leaves unreachable objects behind, which is harmless.

Reads avoid the contents API's 1 MB limit by reading blobs (up to 100 MB), raw, and never
through the contents API's ``download_url`` (for a private repository it carries a token
minted for our own credential). Sizes come from the tree listing, so nothing is read to learn
one. Commits and trees are immutable, so they are cached by id; the branch ref is read with
``If-None-Match``.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ghapt.core.errors import StaleHead, UpstreamError
from ghapt.core.layout import check_path, git_blob_id
from ghapt.github.client import GitHubClient, GitHubError

log = logging.getLogger(__name__)

_CACHE_COMMITS = 64
_CACHE_TREES = 8


class GitHubBranchStore:
    """``MetadataStore`` on ``branch`` of ``repo`` (``OWNER/NAME``)."""

    def __init__(
        self,
        client: GitHubClient,
        repo: str,
        branch: str = "apt-metadata",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.clock = clock
        self.repo = repo
        self.branch = branch
        self._base = f"repos/{quote(repo, safe='/')}/git"
        self._commits: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._files: OrderedDict[str, dict[str, tuple[str, int]]] = OrderedDict()

    # --- reading ------------------------------------------------------------------------------
    def head(self) -> str | None:
        ref = self.client.get_json(
            f"{self._base}/ref/heads/{quote(self.branch, safe='/')}", cache=True, allow_404=True
        )
        if ref is None:
            return None
        obj = ref.get("object") if isinstance(ref, dict) else None
        if not isinstance(obj, dict) or obj.get("type") != "commit" or not obj.get("sha"):
            raise UpstreamError(f"{self.repo}: refs/heads/{self.branch} does not point at a commit")
        return str(obj["sha"])

    def list_files(self, commit: str) -> dict[str, str]:
        return {path: sha for path, (sha, _size) in self._entries(commit).items()}

    def file_sizes(self, commit: str) -> dict[str, int]:
        """Sizes from the tree listing (GitHub's tree API gives ``size`` for every blob)."""
        return {path: size for path, (_sha, size) in self._entries(commit).items()}

    def _entries(self, commit: str) -> dict[str, tuple[str, int]]:
        cached = self._files.get(commit)
        if cached is None:
            cached = self._walk(str(self._commit(commit)["tree"]["sha"]), "")
            self._remember_files(commit, cached)
        return cached

    def read_file(self, commit: str, path: str) -> bytes | None:
        entry = self._entries(commit).get(path)
        if entry is None:
            return None
        return self.read_blob(*entry)

    def read_blob(self, sha: str, size: int | None = None) -> bytes:
        """A blob's bytes, raw (blobs serve up to 100 MB, unlike the contents API's 1 MB).

        The raw media type spares the base64 JSON copy (a third bigger, then decoded) of a
        large index file; ``size``, from the tree listing, caps what is read."""
        data = self.client.get_raw(f"{self._base}/blobs/{sha}", max_bytes=size)
        if git_blob_id(data) != sha:
            raise UpstreamError(f"{self.repo}: blob {sha} came back with different content")
        return data

    def commit_time(self, commit: str) -> int:
        date = self._commit(commit)["committer"]["date"]
        return int(datetime.fromisoformat(str(date).replace("Z", "+00:00")).timestamp())

    def _commit(self, sha: str) -> dict[str, Any]:
        commit = self._commits.get(sha)
        if commit is None:
            commit = self.client.get_json(f"{self._base}/commits/{sha}")
            self._commits[sha] = commit
            while len(self._commits) > _CACHE_COMMITS:
                self._commits.popitem(last=False)
        return commit

    def _walk(self, tree: str, prefix: str) -> dict[str, tuple[str, int]]:
        """Every blob under ``tree`` with its size. A truncated recursive listing is redone one
        level at a time."""
        files: dict[str, tuple[str, int]] = {}
        body = self.client.get_json(f"{self._base}/trees/{tree}", {"recursive": "1"})
        if not body.get("truncated"):
            for entry in body.get("tree", ()):
                if entry.get("type") == "blob":
                    files[prefix + entry["path"]] = _blob_entry(entry)
            return files
        log.info("%s: tree %s is too big for one listing, walking it level by level", self.repo, tree)
        body = self.client.get_json(f"{self._base}/trees/{tree}")
        if body.get("truncated"):
            raise UpstreamError(f"{self.repo}: tree {tree} has too many entries for the API")
        for entry in body.get("tree", ()):
            if entry.get("type") == "blob":
                files[prefix + entry["path"]] = _blob_entry(entry)
            elif entry.get("type") == "tree":
                files.update(self._walk(entry["sha"], f"{prefix}{entry['path']}/"))
        return files

    def _remember_files(self, commit: str, files: dict[str, tuple[str, int]]) -> None:
        self._files[commit] = files
        while len(self._files) > _CACHE_TREES:
            self._files.popitem(last=False)

    # --- writing ------------------------------------------------------------------------------
    def commit_files(self, base: str | None, changes: Mapping[str, bytes | None], message: str) -> str:
        for path in changes:
            check_path(path)
        current = self._entries(base) if base is not None else {}
        known = {sha for sha, _size in current.values()}
        entries: list[dict[str, Any]] = []
        files = dict(current)
        for path, data in sorted(changes.items()):
            if data is None:
                if path in files:
                    entries.append({"path": path, "mode": "100644", "type": "blob", "sha": None})
                    del files[path]
                continue
            sha = git_blob_id(data)
            if current.get(path, ("", 0))[0] == sha:
                continue
            if sha not in known:
                self._upload_blob(sha, data)
                known.add(sha)
            entries.append({"path": path, "mode": "100644", "type": "blob", "sha": sha})
            files[path] = (sha, len(data))

        if base is None:
            tree = self._post("trees", {"tree": entries})["sha"]
        elif entries:
            tree = self._post("trees", {"base_tree": self._commit(base)["tree"]["sha"], "tree": entries})[
                "sha"
            ]
        else:
            tree = self._commit(base)["tree"]["sha"]
        # Commit times must strictly increase along the branch: they are the Last-Modified that
        # apt's If-Modified-Since is compared with, at one-second resolution.
        when = int(self.clock())
        if base is not None:
            when = max(when, self.commit_time(base) + 1)
        stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        who = {"name": "ghapt", "email": "ghapt@users.noreply.github.com", "date": stamp}
        parents = [base] if base else []
        commit = self._post(
            "commits", {"message": message, "tree": tree, "parents": parents, "author": who, "committer": who}
        )
        sha = str(commit["sha"])
        self._commits[sha] = commit
        self._move_branch(base, sha)
        self._remember_files(sha, files)
        log.info("%s: %s -> %s (%d changed paths)", self.repo, self.branch, sha, len(entries))
        return sha

    def _upload_blob(self, sha: str, data: bytes) -> None:
        body = self._post("blobs", {"content": base64.b64encode(data).decode(), "encoding": "base64"})
        if body.get("sha") != sha:
            raise UpstreamError(f"{self.repo}: GitHub stored a blob as {body.get('sha')}, expected {sha}")

    def _move_branch(self, base: str | None, commit: str) -> None:
        """Point the branch at ``commit`` only if it still points at ``base``. Never forced."""
        ref = f"refs/heads/{self.branch}"
        try:
            if base is None:
                self.client.post_json(f"{self._base}/refs", {"ref": ref, "sha": commit})
            else:
                self.client.patch_json(
                    f"{self._base}/refs/heads/{quote(self.branch, safe='/')}", {"sha": commit, "force": False}
                )
        except GitHubError as exc:
            if exc.status_code != 422:
                raise
            # A retried request whose first attempt did land looks like a lost race: check.
            if self.head() == commit:
                return
            msg = exc.gh_message.lower()
            if (
                "fast forward" in msg
                or "reference already exists" in msg
                or "reference does not exist" in msg
            ):
                raise StaleHead(
                    f"{self.repo}: branch {self.branch} moved while rebuilding ({exc.gh_message})"
                ) from None
            raise

    def _post(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            result = self.client.post_json(f"{self._base}/{kind}", body)
        except GitHubError as exc:
            if exc.status_code == 409:
                raise UpstreamError(
                    f"{self.repo} is empty and GitHub refuses Git Data writes to it: "
                    "push one commit (any branch) first"
                ) from None
            raise
        if not isinstance(result, dict) or "sha" not in result:
            raise UpstreamError(f"{self.repo}: POST git/{kind} returned no sha")
        return result


def _blob_entry(entry: Mapping[str, Any]) -> tuple[str, int]:
    """(sha, size) of a tree listing's blob entry; GitHub's tree API gives every blob a ``size``."""
    size = entry.get("size")
    if not isinstance(size, int) or size < 0:
        raise UpstreamError(f"the tree listing gave {entry.get('path')!r} no size")
    return str(entry["sha"]), size
