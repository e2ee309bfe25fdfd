"""``ghapt doctor URL``: check a deployed repository the way an apt client sees it.

Each check prints one PASS/FAIL line; the command exits 0 only when every check passes. The
signature is verified by the real ``gpgv`` against a temporary keyring that holds only the
key served at ``/public.key``, as apt does with ``Signed-By``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import lzma
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ghapt.cli.options import (
    Subparsers,
    read_secret,
)
from ghapt.core.errors import ConfigError
from ghapt.core.layout import SUITES_FILE
from ghapt.core.settings import Settings

if TYPE_CHECKING:
    import requests


def _requests() -> Any:
    """requests, imported on first use: every other command starts without it (about 0.1 s)."""
    import requests

    return requests


DATE_SKEW = 10  # seconds; apt rejects a Release dated further in the future
REDIRECTS = (301, 302, 303, 307, 308)
_HASHES = {"SHA512": hashlib.sha512, "SHA256": hashlib.sha256}
_FILENAME_RE = re.compile(r"^pool/[A-Za-z0-9+~%:._/-]+\.deb$")
_SUITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> Check:
        check = Check(name, ok, detail)
        self.checks.append(check)
        return check


class Doctor:
    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        token: str | None = None,
        suites: tuple[str, ...] = ("stable",),
        fallback_suite: str = "stable",
        timeout: float = 20.0,
        clock: Callable[[], float] = time.time,
        on_check: Callable[[Check], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.suites = suites  # empty: every suite the repository lists (see discover_suites)
        self.fallback_suite = fallback_suite
        self.timeout = timeout
        self.clock = clock
        self.on_check = on_check
        self.headers: dict[str, str] = {"User-Agent": "ghapt-doctor"}
        self.auth = auth
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.session: requests.Session = _requests().Session()
        self.session.trust_env = False
        self.report = Report()

    # --- plumbing -------------------------------------------------------------------------------
    def _get(self, path: str, *, credentials: bool = True, follow: bool = True) -> requests.Response:
        headers = dict(self.headers)
        if not credentials:
            headers.pop("Authorization", None)
        return self.session.get(
            f"{self.url}/{path.lstrip('/')}",
            headers=headers,
            auth=self.auth if credentials else None,
            allow_redirects=follow,
            timeout=self.timeout,
            stream=not follow,
        )

    def _add(self, name: str, ok: bool, detail: str) -> bool:
        check = self.report.add(name, ok, detail)
        if self.on_check:
            self.on_check(check)
        return ok

    # --- the checks -----------------------------------------------------------------------------
    def run(self) -> Report:
        with _tempdir() as tmp:
            keyring = self._check_key(tmp)
            if not self.suites:
                self.suites = self.discover_suites() or (self.fallback_suite,)
            self._check_credentials()
            for suite in self.suites:
                self._check_suite(suite, keyring, tmp)
        return self.report

    def discover_suites(self) -> tuple[str, ...] | None:
        """Every suite with a Release, as ``dists/_suites.json`` lists them; None if unlisted."""
        try:
            r = self._get(SUITES_FILE)
            listing = r.json() if r.status_code == 200 else None
        except (_requests().RequestException, ValueError):
            return None
        suites = listing.get("suites") if isinstance(listing, dict) else None
        if not isinstance(suites, list) or not suites:
            return None
        if not all(isinstance(s, str) and _SUITE_RE.match(s) for s in suites):
            return None
        return tuple(suites)

    def _check_key(self, tmp: Path) -> Path | None:
        name = "public key"
        try:
            r = self._get("public.key", credentials=False)
        except _requests().RequestException as exc:
            self._add(name, False, f"{self.url}/public.key unreachable: {type(exc).__name__}: {exc}")
            return None
        if r.status_code != 200:
            self._add(name, False, f"GET /public.key answered {r.status_code} (it must be public)")
            return None
        if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" not in r.content:
            self._add(name, False, "/public.key is not an armored OpenPGP public key")
            return None
        armored = tmp / "key.asc"
        armored.write_bytes(r.content)
        keyring = tmp / "keyring.gpg"
        gpg = shutil.which("gpg")
        if gpg is None:
            self._add(name, False, "gpg is not installed (apt-get install gnupg)")
            return None
        proc = subprocess.run(
            [gpg, "--batch", "--yes", "--dearmor", "--output", str(keyring), str(armored)],
            capture_output=True,
            timeout=30,
        )
        shown = subprocess.run(
            [gpg, "--batch", "--with-colons", "--show-keys", str(armored)],
            capture_output=True,
            text=True,
            timeout=30,
            env={"GNUPGHOME": str(tmp), "PATH": "/usr/bin:/bin"},
        )
        fingerprints = [ln.split(":")[9] for ln in shown.stdout.splitlines() if ln.startswith("fpr:")]
        if proc.returncode != 0 or not fingerprints:
            self._add(name, False, "gpg cannot read the key served at /public.key")
            return None
        self._add(name, True, f"{self.url}/public.key, fingerprint {fingerprints[0]}")
        return keyring

    def _check_credentials(self) -> None:
        name = "credentials"
        path = f"dists/{self.suites[0]}/InRelease"
        if self.auth is None and "Authorization" not in self.headers:
            self._add(name, False, "no credentials given: pass --user NAME --password-stdin, or --token")
            return
        try:
            anonymous = self._get(path, credentials=False, follow=False).status_code
            with_them = self._get(path, follow=False).status_code
        except _requests().RequestException as exc:
            self._add(name, False, f"/{path} unreachable: {exc}")
            return
        if anonymous != 401:
            self._add(name, False, f"/{path} without credentials answered {anonymous}, expected 401")
        elif with_them == 404:
            self._add(name, True, "401 without credentials; accepted with them (404: no index yet)")
        elif with_them != 200:
            self._add(name, False, f"/{path} with the given credentials answered {with_them}, expected 200")
        else:
            self._add(name, True, "401 without credentials, 200 with them")

    def _check_suite(self, suite: str, keyring: Path | None, tmp: Path) -> None:
        prefix = f"[{suite}] "
        release = self._check_signature(suite, keyring, tmp, prefix)
        if release is None:
            for what in ("dates", "by-hash files", "Packages", "pool redirect"):
                self._add(prefix + what, False, "not checked: no verified InRelease")
            return
        self._check_dates(release, prefix)
        files = self._check_by_hash(suite, release, prefix)
        filenames = self._check_packages(files, prefix)
        self._check_pool(filenames, prefix)

    def _check_signature(self, suite: str, keyring: Path | None, tmp: Path, prefix: str) -> Any | None:
        from debian.deb822 import Release

        name = prefix + "InRelease signature"
        try:
            r = self._get(f"dists/{suite}/InRelease")
        except _requests().RequestException as exc:
            self._add(name, False, f"InRelease unreachable: {exc}")
            return None
        if r.status_code == 404:
            self._add(name, False, f"no index yet: /dists/{suite}/InRelease does not exist. {NO_INDEX_HINT}")
            return None
        if r.status_code != 200:
            self._add(name, False, f"GET /dists/{suite}/InRelease answered {r.status_code}")
            return None
        if keyring is None:
            self._add(name, False, "not checked: no usable public key")
            return None
        gpgv = shutil.which("gpgv")
        if gpgv is None:
            self._add(name, False, "gpgv is not installed (apt-get install gpgv)")
            return None
        signed = tmp / f"{suite}.InRelease"
        signed.write_bytes(r.content)
        out = tmp / f"{suite}.Release"
        proc = subprocess.run(
            [gpgv, "--keyring", str(keyring), "--output", str(out), str(signed)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0 or not out.exists():
            reason = (proc.stderr.strip().splitlines() or ["gpgv failed"])[-1]
            self._add(name, False, f"not a valid signature by /public.key's key: {reason}")
            return None
        release = Release(out.read_text(encoding="utf-8"))
        missing = [f for f in ("Date", "Architectures", "Components") if f not in release]
        if "Suite" not in release and "Codename" not in release:
            missing.append("Suite/Codename")
        if "SHA256" not in release and "SHA512" not in release:
            missing.append("SHA256/SHA512")
        if missing:
            self._add(name, False, "signed, but Release lacks " + ", ".join(missing))
            return None
        self._add(name, True, "good signature (gpgv, a keyring holding only /public.key)")
        return release

    def _check_dates(self, release: Any, prefix: str) -> None:
        name = prefix + "dates"
        now = self.clock()
        from email.utils import parsedate_to_datetime  # only doctor needs it: the other commands start faster

        try:
            date = parsedate_to_datetime(release["Date"]).timestamp()
            until = (
                parsedate_to_datetime(release["Valid-Until"]).timestamp()
                if "Valid-Until" in release
                else None
            )
        except (TypeError, ValueError, IndexError):
            self._add(name, False, "Date or Valid-Until is not an RFC 1123 date")
            return
        if date > now + DATE_SKEW:
            self._add(name, False, f"Date {release['Date']} is in the future (apt rejects it)")
        elif until is not None and until <= now:
            self._add(name, False, f"Valid-Until {release['Valid-Until']} has passed (apt rejects it)")
        else:
            tail = f", valid until {release['Valid-Until']}" if until is not None else ", no Valid-Until"
            self._add(name, True, f"Date {release['Date']}{tail}")

    def _check_by_hash(self, suite: str, release: Any, prefix: str) -> dict[str, bytes]:
        """Every file Release lists, fetched by hash and checked; returns name -> bytes.

        Like Debian's archives, a repository may list an uncompressed Packages it does not
        serve (ghapt does so above one response's size): that is fine when a compressed form
        Release lists decompresses to exactly the listed size and hash."""
        name = prefix + "by-hash files"
        by_hash = str(release.get("Acquire-By-Hash", "")).lower() == "yes"
        files: dict[str, bytes] = {}
        problems: list[str] = []
        unserved: list[tuple[str, int, str, str]] = []
        listed = {e["name"] for algo in ("SHA512", "SHA256") for e in release.get(algo, [])}
        count = 0
        for algo in ("SHA512", "SHA256"):
            for entry in release.get(algo, []):
                rel, size, digest = entry["name"], int(entry["size"]), entry[algo.lower()]
                folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
                path = (
                    f"dists/{suite}/{folder}/by-hash/{algo}/{digest}" if by_hash else f"dists/{suite}/{rel}"
                )
                count += 1
                try:
                    r = self._get(path)
                except _requests().RequestException as exc:
                    problems.append(f"/{path}: {type(exc).__name__}")
                    continue
                if r.status_code == 404 and any(rel + ext in listed for ext in (".xz", ".gz")):
                    unserved.append((rel, size, digest, algo))
                    continue
                if r.status_code != 200:
                    problems.append(f"/{path}: {r.status_code}")
                    continue
                if len(r.content) != size or _HASHES[algo](r.content).hexdigest() != digest:
                    problems.append(f"/{path}: content does not match {rel}'s {algo}")
                    continue
                files.setdefault(rel, r.content)
        for rel, size, digest, algo in unserved:
            data = _decompressed_sibling(files, rel)
            if data is None or len(data) != size or _HASHES[algo](data).hexdigest() != digest:
                problems.append(f"{rel}: not served, and no compressed form decompresses to its {algo}")
        if count == 0:
            self._add(name, False, "Release lists no files")
        elif problems:
            shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
            self._add(name, False, f"{len(problems)} of {count} bad: {shown}")
        else:
            how = "by-hash" if by_hash else "by name (Acquire-By-Hash is off)"
            algos = "+".join(a for a in ("SHA512", "SHA256") if a in release)
            self._add(name, True, f"{len(files)} files x {algos} fetched {how}, sizes and hashes match")
        return files

    def _check_packages(self, files: dict[str, bytes], prefix: str) -> list[str]:
        from debian.deb822 import Packages

        name = prefix + "Packages"
        texts: dict[str, bytes] = {}
        for rel, data in files.items():
            base = rel.split("/")[-1]
            try:
                if base == "Packages":
                    texts[rel] = data
                elif base == "Packages.xz":
                    texts.setdefault(rel[:-3], lzma.decompress(data))
                elif base == "Packages.gz":
                    texts.setdefault(rel[:-3], gzip.decompress(data))
            except (lzma.LZMAError, OSError, EOFError):
                self._add(name, False, f"{rel} does not decompress")
                return []
        if not texts:
            self._add(name, False, "Release lists no Packages file")
            return []
        filenames: list[str] = []
        problems: list[str] = []
        stanzas = 0
        for rel, data in sorted(texts.items()):
            for para in Packages.iter_paragraphs(
                data.decode("utf-8").splitlines(keepends=True), use_apt_pkg=False
            ):
                stanzas += 1
                missing = [
                    f
                    for f in ("Package", "Version", "Architecture", "Filename", "Size", "SHA256")
                    if f not in para
                ]
                if missing:
                    problems.append(f"{rel}: {para.get('Package', '?')} lacks {', '.join(missing)}")
                    continue
                filename = para["Filename"]
                if not _FILENAME_RE.match(filename) or ".." in filename.split("/") or "//" in filename:
                    problems.append(f"{rel}: {para['Package']} has a suspicious Filename {filename!r}")
                    continue
                filenames.append(filename)
        if problems:
            self._add(name, False, "; ".join(problems[:5]))
        else:
            self._add(name, True, f"{len(texts)} Packages files, {stanzas} stanzas, Filename entries sane")
        return filenames

    def _check_pool(self, filenames: list[str], prefix: str) -> None:
        name = prefix + "pool redirect"
        if not filenames:
            self._add(name, True, "no packages to check (an empty repository)")
            return
        filename = filenames[0]
        try:
            r = self._get(quote(filename), follow=False)
            r.close()
        except _requests().RequestException as exc:
            self._add(name, False, f"/{filename}: {exc}")
            return
        if r.status_code in REDIRECTS and r.headers.get("Location"):
            host = r.headers["Location"].split("?", 1)[0]
            self._add(name, True, f"/{filename} -> {r.status_code} {host}")
        else:
            self._add(name, False, f"/{filename} answered {r.status_code}, expected a redirect")


NO_INDEX_HINT = (
    "Build the first index: in AWS, once the GitHub secret is set, `make first-index STACK=<stack>` "
    "(it puts a rebuild request on the stack's RebuildQueueUrl: `aws sqs send-message --queue-url URL "
    "--message-group-id rebuild --message-body first-index`); locally, `ghapt rebuild`."
)


def _decompressed_sibling(files: Mapping[str, bytes], rel: str) -> bytes | None:
    """``rel`` recovered from its fetched ``.xz`` or ``.gz`` form, or None."""
    for ext, decompress in ((".xz", lzma.decompress), (".gz", gzip.decompress)):
        if rel + ext in files:
            try:
                return decompress(files[rel + ext])
            except (lzma.LZMAError, OSError, EOFError):
                return None
    return None


@contextmanager
def _tempdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ghapt-doctor-") as tmp:
        path = Path(tmp)
        path.chmod(0o700)
        yield path


def run(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from ghapt.cli.doctor import Doctor

    auth = None
    if args.user:
        auth = (args.user, read_secret(args, f"password for {args.user}"))
    token = args.token or None
    if not auth and not token:
        raise ConfigError("no credentials: pass --user NAME --password-stdin, or --token TOKEN")
    doctor = Doctor(
        args.url,
        auth=auth,
        token=token,
        suites=tuple(args.suites or ()),
        fallback_suite=settings.suite,
        on_check=lambda check: print(check.line(), flush=True),
    )
    report = doctor.run()
    failed = [c for c in report.checks if not c.ok]
    if failed:
        print(f"{len(failed)} of {len(report.checks)} checks failed")
        return 1
    print(f"all {len(report.checks)} checks passed")
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a deployed repository from a client's point of view (PASS/FAIL per check)",
        description="Checks the public key, the InRelease signature (gpgv), Date/Valid-Until, every "
        "by-hash file, the Packages files, one pool redirect and the credentials. Exits 0 only if "
        "every check passes.",
    )
    p.add_argument("url", metavar="URL", help="the repository's URL")
    p.add_argument("--user", metavar="NAME", help="Basic Auth user (password from --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--token", help="an OIDC token, sent as Bearer")
    p.add_argument(
        "--suite",
        action="append",
        dest="suites",
        metavar="SUITE",
        help="suite to check (repeatable; default: every suite the repository has a Release for)",
    )
    p.set_defaults(func=run)
