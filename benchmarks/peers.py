"""Benchmark 5: publishing against peers — `ghapt rebuild` beside the tools a user would otherwise run.

From a folder of .debs to a signed repository (``Packages``, ``.gz``, a second compressed index,
``Release``, ``InRelease``, ``Release.gpg``), timed as the user times it: the wall time of the
whole command, each in fresh processes. Peers:

* the **apt-ftparchive pipeline**: ``apt-ftparchive packages``, ``gzip -9``, ``xz``,
  ``apt-ftparchive release``, ``gpg --clearsign``, ``gpg -abs`` (cold without ``--db``;
  incremental with a ``--db`` cache warmed, untimed, on the old packages);
* **reprepro** ``includedeb`` (``SignWith`` the key; ``DebIndices`` ``.gz .xz``);
* **aptly** ``repo create`` + ``repo add`` + ``publish repo`` (incremental: ``repo add`` +
  ``publish update``), ``-skip-contents`` as no other tool writes Contents; aptly cannot write
  ``.xz``, so its second index is its default ``.bz2``.

Every tool signs with an RSA-3072 key made beforehand (one GnuPG home for the peers, with its
agent already running; ghapt's key from ``ghapt keys``). Cold runs start from fresh output
folders. Incremental runs start from the repository a tool's first cold run made; each
repetition adds one new .deb in a release folder of its own. Runs are interleaved (each tool
once, then again) and the median of the repetitions is kept.

Outside the timing, every run's output is checked: both signatures verify with ``gpgv`` against
that tool's key only, ``Release`` lists the right size and SHA256 of every index, the compressed
indices decompress to ``Packages``, and every tool lists the same packages (Package, Version,
Architecture, Size, SHA256), one per .deb.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ghapt.deb import compression

from .common import REPO_ROOT, Section, human_bytes, package_set, ratio, run_child, secs
from .debs import fetch_debian_debs, small_pool

TOOLS = ("ghapt", "apt-ftparchive", "reprepro", "aptly")
HEADERS = {
    "ghapt": "ghapt rebuild",
    "apt-ftparchive": "apt-ftparchive pipeline",
    "reprepro": "reprepro includedeb",
    "aptly": "aptly repo add + publish",
}
NEEDS = ("apt-ftparchive", "reprepro", "aptly", "gpg", "gpgv", "gzip", "xz", "git")
SUITE = "stable"
ARCH = "amd64"
PER_FOLDER = 10  # .debs per release folder (tag)
BIG_CACHE = REPO_ROOT / ".ghapt" / "bench"
UID = "ghapt bench peers <bench@example.invalid>"
# A cut comes at least SEGMENT_MIN bytes in, then about one per SEGMENT_SPREAD bytes.
_SEGMENT_KIB = (compression.SEGMENT_MIN + compression.SEGMENT_SPREAD) // 1024

TITLE = "5. Publishing against peers: a folder of .debs to a signed repository"

Log = Callable[[str], None]


def ghapt_command() -> str:
    """The console script next to this Python (the venv's), else the one on PATH."""
    script = Path(sys.executable).parent / "ghapt"
    return str(script) if script.exists() else "ghapt"


def missing_tools(needs: tuple[str, ...] = NEEDS) -> list[str]:
    return [t for t in needs if shutil.which(t) is None]


def skipped(key: str, title: str, absent: list[str], started: float) -> Section:
    """What a run without the peers' tools reports instead of failing the other benchmarks."""
    section = Section(
        key=key,
        title=title,
        intro=[f"**Skipped**: {', '.join(absent)} not installed; `make bench-deps` installs them."],
        data={"skipped": True, "missing": absent},
    )
    section.seconds = time.perf_counter() - started
    return section


# --- keys --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Keys:
    """One RSA-3072 key for the peers (a GnuPG home) and ghapt's own, both made before any timing."""

    gnupghome: Path
    key_id: str
    peers_keyring: Path  # the peers' public key alone, for gpgv
    ghapt_state: Path  # a state folder holding only ghapt's signing key
    ghapt_keyring: Path


def compile_bytecode() -> None:
    """What ``pip install`` does for an installed package: ghapt's modules compiled to .pyc once.

    An editable install under ``PYTHONDONTWRITEBYTECODE`` (set on these machines) would
    otherwise compile every module again in every timed run; the peers are compiled C."""
    package = REPO_ROOT / "layers" / "ghapt" / "ghapt"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, capture_output=True)


def make_keys(tmp: Path) -> Keys:
    home = tmp / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gen = ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", UID, "rsa3072", "sign", "never"]
    subprocess.run(gen, env=env, check=True, capture_output=True)
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env, check=True, capture_output=True
    ).stdout.decode()
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    keyring = tmp / "peers.gpg"
    exported = subprocess.run(["gpg", "--export", fpr], env=env, check=True, capture_output=True).stdout
    keyring.write_bytes(exported)
    state = tmp / "ghapt-key"
    ghapt_keyring = tmp / "ghapt.gpg"
    subprocess.run(
        [ghapt_command(), "keys", "--state", str(state), "--export", str(ghapt_keyring), "--binary"],
        env=_env(home),
        check=True,
        capture_output=True,
    )
    return Keys(home, fpr, keyring, state, ghapt_keyring)


def stop_agent(keys: Keys) -> None:
    """The gpg-agent the key generation started (and the peers reused) belongs to this run."""
    subprocess.run(["gpgconf", "--homedir", str(keys.gnupghome), "--kill", "all"], check=False)


def _env(gnupghome: Path) -> dict[str, str]:
    """What every tool runs with: the peers' GnuPG home, and no GHAPT_* settings from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPT_")}
    env["GNUPGHOME"] = str(gnupghome)
    env["LC_ALL"] = "C.UTF-8"
    return env


# --- the tools ---------------------------------------------------------------------------------
# Each script runs with `bash -ec` in the tool's work folder, whose `pool/<tag>/` holds the input.
def _ftparchive_script(key_id: str, db: bool) -> str:
    b = f"dists/{SUITE}/main/binary-{ARCH}"
    release = " ".join(
        f"-o APT::FTPArchive::Release::{k}={v}"
        for k, v in (("Suite", SUITE), ("Codename", SUITE), ("Architectures", ARCH), ("Components", "main"))
    )
    return "\n".join(
        [
            f"mkdir -p {b}",
            f"rm -f dists/{SUITE}/Release dists/{SUITE}/InRelease dists/{SUITE}/Release.gpg",
            f"apt-ftparchive {'--db cache.db ' if db else ''}packages pool > {b}/Packages",
            f"gzip -9 -k -f {b}/Packages",
            f"xz -k -f {b}/Packages",
            f"apt-ftparchive {release} release dists/{SUITE} > Release.new",
            f"mv Release.new dists/{SUITE}/Release",
            f"gpg --batch --yes -u {key_id} --clearsign -o dists/{SUITE}/InRelease dists/{SUITE}/Release",
            f"gpg --batch --yes -u {key_id} -abs -o dists/{SUITE}/Release.gpg dists/{SUITE}/Release",
        ]
    )


def _reprepro_conf(work: Path, key_id: str) -> None:
    conf = work / "reprepro" / "conf"
    conf.mkdir(parents=True)
    (conf / "distributions").write_text(
        f"Codename: {SUITE}\nSuite: {SUITE}\nArchitectures: {ARCH}\nComponents: main\n"
        f"SignWith: {key_id}\nDebIndices: Packages Release . .gz .xz\n"
    )


def _aptly_conf(work: Path) -> None:
    (work / "aptly.conf").write_text(
        f'{{"rootDir": "{work / "aptly"}", "architectures": ["{ARCH}"], "gpgProvider": "gpg"}}\n'
    )


def _aptly(args: str) -> str:
    return f"aptly -config=aptly.conf {args}"


def _aptly_sign(key_id: str) -> str:
    return f"-batch -gpg-key={key_id} -skip-contents"


def cold_script(tool: str, work: Path, keys: Keys) -> str:
    """Untimed setup of a fresh work folder (configuration only), then the timed script."""
    if tool == "ghapt":
        shutil.copytree(keys.ghapt_state, work / "state")
        return f"{ghapt_command()} rebuild --releases pool --state state --architectures {ARCH} >ghapt.out"
    if tool == "apt-ftparchive":
        return _ftparchive_script(keys.key_id, db=False)
    if tool == "reprepro":
        _reprepro_conf(work, keys.key_id)
        return f"reprepro -s -b reprepro includedeb {SUITE} pool/*/*.deb"
    if tool == "aptly":
        _aptly_conf(work)
        return "\n".join(
            [
                _aptly(f"repo create -distribution={SUITE} -component=main bench >/dev/null"),
                _aptly("repo add bench pool >/dev/null"),
                _aptly(f"publish repo {_aptly_sign(keys.key_id)} -architectures={ARCH} bench >/dev/null"),
            ]
        )
    raise ValueError(tool)


def warm_script(tool: str) -> str | None:
    """Untimed, after the base build: the apt-ftparchive ``--db`` cache of the old packages."""
    if tool == "apt-ftparchive":
        return "apt-ftparchive --db cache.db packages pool >/dev/null"
    return None


def add_script(tool: str, new: str, keys: Keys) -> str:
    """The timed incremental script; ``new`` is the new .deb's path relative to the work folder."""
    if tool == "ghapt":
        return f"{ghapt_command()} rebuild --releases pool --state state --architectures {ARCH} >ghapt.out"
    if tool == "apt-ftparchive":
        return _ftparchive_script(keys.key_id, db=True)
    if tool == "reprepro":
        return f"reprepro -s -b reprepro includedeb {SUITE} {new}"
    if tool == "aptly":
        return "\n".join(
            [
                _aptly(f"repo add bench {new} >/dev/null"),
                _aptly(f"publish update {_aptly_sign(keys.key_id)} {SUITE} >/dev/null"),
            ]
        )
    raise ValueError(tool)


def published(tool: str, work: Path) -> Path:
    """The folder holding ``dists/`` (ghapt's is extracted from its ``apt-metadata`` branch)."""
    if tool == "ghapt":
        out = work / "published"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        archive = subprocess.run(
            ["git", "--git-dir", str(work / "state" / "metadata.git"), "archive", "apt-metadata", "dists"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
        return out
    return {"apt-ftparchive": work, "reprepro": work / "reprepro", "aptly": work / "aptly" / "public"}[tool]


# --- checks (never timed) ----------------------------------------------------------------------
def _release_sha256(release: bytes) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    inside = False
    for line in release.decode().splitlines():
        if not line.startswith(" "):
            inside = line.startswith("SHA256:")
            continue
        if inside:
            digest, size, name = line.split()
            out[name] = (digest, int(size))
    return out


def verify(root: Path, keyring: Path) -> tuple[set[tuple[str, str, str, str, str]], list[str]]:
    """The package set of a published repository and what is wrong with it (empty: a valid signed repo)."""
    dists = root / "dists" / SUITE
    problems = []
    release = (dists / "Release").read_bytes() if (dists / "Release").exists() else b""
    gpgv = ["gpgv", "--keyring", str(keyring)]
    inline = subprocess.run([*gpgv, "--output", "-", str(dists / "InRelease")], capture_output=True)
    if inline.returncode != 0:
        problems.append(f"InRelease does not verify: {inline.stderr.decode().strip()[-200:]}")
    elif inline.stdout.rstrip(b"\n") != release.rstrip(b"\n"):
        problems.append("InRelease's signed text is not Release")
    signature, text = str(dists / "Release.gpg"), str(dists / "Release")
    detached = subprocess.run([*gpgv, signature, text], capture_output=True)
    if detached.returncode != 0:
        problems.append(f"Release.gpg does not verify: {detached.stderr.decode().strip()[-200:]}")
    listed = _release_sha256(release)
    folder = f"main/binary-{ARCH}"
    opened = {".gz": gzip.decompress, ".xz": lzma.decompress, ".bz2": bz2.decompress}
    seconds = [s for s in opened if (dists / folder / f"Packages{s}").exists()]
    plain = dists / folder / "Packages"
    # ghapt does not publish an uncompressed Packages over 4 MiB (Release lists it, as Debian's
    # archives do): check what the .xz holds against Release's entry instead.
    unserved = not plain.exists() and ".xz" in seconds
    packages = plain.read_bytes() if plain.exists() else b""
    if unserved:
        packages = lzma.decompress((dists / folder / "Packages.xz").read_bytes())
        digest, size = listed.get(f"{folder}/Packages", ("", -1))
        if len(packages) != size or hashlib.sha256(packages).hexdigest() != digest:
            problems.append("Packages.xz does not decompress to the Packages that Release lists")
    if f"{folder}/Packages" not in listed:
        problems.append("Release does not list Packages")
    if ".gz" not in seconds or len(seconds) < 2:
        problems.append(f"compressed indices: only {seconds}")
    for name, (digest, size) in listed.items():
        path = dists / name
        if path.exists():
            data = path.read_bytes()
            if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                problems.append(f"{name}: size or SHA256 differs from Release")
        elif name.startswith(f"{folder}/Packages") and not (unserved and name == f"{folder}/Packages"):
            problems.append(f"{name} is listed but missing")
    for suffix in seconds:
        if opened[suffix]((dists / folder / f"Packages{suffix}").read_bytes()) != packages:
            problems.append(f"Packages{suffix} does not decompress to Packages")
    return package_set(packages), problems


# --- inputs ------------------------------------------------------------------------------------
@dataclass
class Workload:
    """One input: .debs in release folders of ``PER_FOLDER``, and the new .debs the incremental runs
    add, one per repetition, each in a release folder of its own."""

    label: str
    key: str
    debs: list[Path]
    extra: list[Path]
    describe: str
    all_tree: Path = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = sum(p.stat().st_size for p in self.debs)

    @property
    def n(self) -> int:
        return len(self.debs)

    def increments(self, reps: int) -> list[tuple[Path, str]]:
        """The new .deb of each repetition and where it goes, relative to a work folder."""
        if reps > len(self.extra):
            raise ValueError(f"{reps} repetitions need {reps} new .debs, not {len(self.extra)}")
        return [(deb, f"pool/new-{k + 1}/{deb.name}") for k, deb in enumerate(self.extra[:reps])]

    def lay_out(self, tmp: Path) -> None:
        """``all/<folder>/``: every .deb of the cold runs, hard-linked."""
        self.all_tree = tmp / "all"
        for i, deb in enumerate(self.debs):
            _link(deb, self.all_tree / f"r{i // PER_FOLDER:05d}" / deb.name)


def _link(src: Path | str, dst: Path | str) -> None:
    """Hard-link (copy across file systems): every tool reads the very same files."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_tree(src: Path, dst: Path) -> None:
    """The same tree of hard links (``cp -al``: 10,000 files in a fraction of a second)."""
    subprocess.run(["cp", "-al", str(src), str(dst)], check=True)


def _warm(paths: list[Path]) -> None:
    for p in paths:
        with p.open("rb") as f:
            while f.read(1 << 20):
                pass


def debian_workload(n: int, extra: int, tmp: Path, log: Log) -> Workload:
    """``n`` real Debian packages and ``extra`` new ones (cached under ``.ghapt/bench``); synthetic
    ones if apt cannot fetch them."""
    try:
        debs = fetch_debian_debs(n, extra=extra, log=log)
        return Workload(f"{n} Debian debs", "debian", debs[:n], debs[n:], "real Debian 12 packages")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        log(f"  cannot fetch Debian packages ({exc}); using synthetic ones instead")
        return synthetic_workload(n, extra, tmp, "synthetic (apt could not fetch real ones)")


def synthetic_workload(n: int, extra: int, tmp: Path, describe: str = "synthetic") -> Workload:
    """``n`` synthetic packages of the Debian sample's sizes (20-400 KB), and ``extra`` new ones."""
    debs = small_pool(tmp / "synthetic", n, min_size=20_000, max_size=400_000)
    new = small_pool(tmp / "synthetic-new", extra, min_size=20_000, max_size=400_000, seed=5, tag="n")
    return Workload(f"{n} synthetic debs", "debian", debs, new, describe)


def small_workload(n: int, extra: int, tmp: Path, log: Log, cache: bool) -> Workload:
    """``n`` small synthetic packages (large sets are kept under ``.ghapt/bench`` between runs) and
    ``extra`` new ones."""
    folder = BIG_CACHE / f"small-{n}" if cache else tmp / f"small-{n}"
    marker = folder / ".complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        small_pool(folder, n)
        marker.write_text(f"{n}\n")
        log(f"  wrote {n} small .debs in {time.perf_counter() - t0:.1f} s")
    debs = sorted(folder.glob("*/*.deb"))
    new = small_pool(tmp / f"small-{n}-new", extra, seed=5, tag="n")
    describe = "synthetic: real control files (from `tests/realcontrols.py`), 200 B-2 KB of random data"
    return Workload(f"{n:,} small debs", "small", debs, new, describe)


# --- the run -----------------------------------------------------------------------------------
@dataclass
class Result:
    cold: dict[str, list[float]] = field(default_factory=dict)  # wall seconds per repetition
    incremental: dict[str, list[float]] = field(default_factory=dict)
    cold_cpu: dict[str, list[float]] = field(default_factory=dict)  # user+sys of the process tree
    incremental_cpu: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    base_seconds: float = 0.0
    packages_bytes: int = 0  # the uncompressed Packages file (apt-ftparchive's)
    index_bytes: dict[str, dict[str, int]] = field(default_factory=dict)  # tool -> Packages.gz/.xz/.bz2 size


def _timed(script: str, work: Path, env: dict[str, str], wall: list[float], cpu: list[float]) -> None:
    done = run_child(["bash", "-ec", script], cwd=work, env=env)
    wall.append(done.wall)
    cpu.append(done.cpu)


def measure(load: Workload, keys: Keys, tmp: Path, reps: int, log: Log) -> Result:  # noqa: C901 - the interleaving order is the point
    """Cold and incremental runs of every tool on ``load``, interleaved, every output checked.

    The first cold run of each tool is made in the folder its incremental runs then use: each
    repetition adds the next new .deb to the repository the previous one left, so no state is
    ever copied back (restoring aptly's or reprepro's pools of 10,000 files costs more than a run)."""
    started = time.perf_counter()
    res = Result()
    env = _env(keys.gnupghome)
    load.lay_out(tmp / "in")
    increments = load.increments(reps)
    _warm(load.debs + load.extra)
    reference: set[tuple[str, str, str, str, str]] = set()

    def check(tool: str, what: str, work: Path, expected: int) -> set[tuple[str, str, str, str, str]]:
        keyring = keys.ghapt_keyring if tool == "ghapt" else keys.peers_keyring
        found, problems = verify(published(tool, work), keyring)
        if len(found) != expected:
            problems.append(f"Packages lists {len(found)} packages, not {expected}")
        if tool == "ghapt":  # an incremental run must really be one: it reads the new .deb only
            read = expected if what == "cold" else 1
            summary = (work / "ghapt.out").read_text()
            if f"assets: {read} read" not in summary:
                problems.append(f"expected 'assets: {read} read' in its summary: {summary!r}")
        if tool == "apt-ftparchive" and what == "cold":
            res.packages_bytes = (work / "dists" / SUITE / f"main/binary-{ARCH}/Packages").stat().st_size
        if what == "cold":
            folder = published(tool, work) / "dists" / SUITE / f"main/binary-{ARCH}"
            res.index_bytes[tool] = {
                p.name: p.stat().st_size
                for p in folder.glob("Packages.*")
                if p.suffix in (".gz", ".xz", ".bz2")
            }
        if what == "cold" and not reference:
            reference.update(found)  # the first run checked: ghapt's first cold run
        if what == "cold" and found != reference:
            problems.append(f"its packages differ from {TOOLS[0]}'s ({len(found ^ reference)} differ)")
        for p in problems:
            message = f"{load.label}, {what}, {tool}: {p}"
            if message not in res.problems:
                res.problems.append(message)
                log(f"  VERIFICATION FAILED: {message}")
        return found

    done: set[tuple[str, str, str, str, str]] = set()  # each tool's incremental runs agree too
    for rep, (new, rel) in enumerate(increments):
        for tool in TOOLS:
            work = tmp / tool / ("incremental" if rep == 0 else "cold")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            _link_tree(load.all_tree, work / "pool")
            script = cold_script(tool, work, keys)
            _timed(script, work, env, res.cold.setdefault(tool, []), res.cold_cpu.setdefault(tool, []))
            check(tool, "cold", work, load.n)
            if rep == 0 and (warm := warm_script(tool)):  # untimed: apt-ftparchive's --db cache
                t0 = time.perf_counter()
                run_child(["bash", "-ec", warm], cwd=work, env=env)
                res.base_seconds += time.perf_counter() - t0
        for tool in TOOLS:
            work = tmp / tool / "incremental"
            _link(new, work / rel)
            script = add_script(tool, rel, keys)
            wall, cpu = res.incremental.setdefault(tool, []), res.incremental_cpu.setdefault(tool, [])
            _timed(script, work, env, wall, cpu)
            found = check(tool, "incremental", work, load.n + rep + 1)
            if tool == TOOLS[0]:
                done = found
            elif found != done:
                res.problems.append(f"{load.label}, incremental, {tool}: its packages differ from ghapt's")
        log(
            f"  {load.label}, repetition {rep + 1}/{reps}: "
            + ", ".join(f"{t} {res.cold[t][-1]:.2f}/{res.incremental[t][-1]:.2f} s" for t in TOOLS)
        )
    for tool in TOOLS:
        shutil.rmtree(tmp / tool, ignore_errors=True)
    res.seconds = time.perf_counter() - started
    return res


def median(times: list[float]) -> float:
    return statistics.median(times)


def row(label: str, times: dict[str, list[float]], bad: set[str]) -> list[str]:
    g = median(times["ghapt"])
    cells = [label, f"{secs(g)} s" + (" ⚠" if "ghapt" in bad else "")]
    for tool in TOOLS[1:]:
        t = median(times[tool])
        cells.append(f"{secs(t)} s (ghapt {ratio(g, t)})" + (" ⚠" if tool in bad else ""))
    return cells


def run(
    n: int = 400,
    big: int | None = 10_000,
    reps: int = 3,
    *,
    debian: bool = True,
    workdir: Path | None = None,
    log: Log = print,
) -> Section:
    """Cold and incremental publishes of ``n`` Debian .debs (synthetic ones with ``debian=False``)
    and of ``big`` small synthetic ones, every tool side by side."""
    started = time.perf_counter()
    if absent := missing_tools():
        log(f"  skipped: {', '.join(absent)} not installed")
        return skipped("peers", TITLE, absent, started)
    load_start = os.getloadavg()[0]  # other work on the machine slows every tool: say how much there was
    own = workdir is None
    tmp = Path(tempfile.mkdtemp(prefix="ghapt-bench-peers-")) if workdir is None else workdir
    keys = None
    try:
        t0 = time.perf_counter()
        compile_bytecode()
        keys = make_keys(tmp)
        log(f"  RSA-3072 keys for the peers and ghapt made in {time.perf_counter() - t0:.1f} s (untimed)")
        loads = [debian_workload(n, reps, tmp, log) if debian else synthetic_workload(n, reps, tmp)]
        if big:
            loads.append(small_workload(big, reps, tmp, log, cache=own))
        results = []
        for i, load in enumerate(loads):
            log(f"  {load.label} ({human_bytes(load.size)}), {reps} repetitions")
            results.append((load, measure(load, keys, tmp / f"load-{i}", reps, log)))
    finally:
        if keys is not None:
            stop_agent(keys)
        if own:
            shutil.rmtree(tmp, ignore_errors=True)
    return _section(results, reps, started, load_start)


def _before(n: int, reps: int) -> str:
    """The packages already published before each incremental run: ``400-402`` for 400 and 3 reps."""
    return f"{n:,}" if reps == 1 else f"{n:,}\u2013{n + reps - 1:,}"


def _section(results: list[tuple[Workload, Result]], reps: int, started: float, load_start: float) -> Section:
    rows: list[list[str]] = []
    cpu_rows: list[list[str]] = []  # less sensitive than wall time to other work on the machine
    problems = [p for _, r in results for p in r.problems]
    data: dict[str, dict[str, object]] = {}
    for load, res in results:
        bad = {t for t in TOOLS if any(f", {t}: " in p for p in res.problems)}
        before = _before(load.n, reps)
        rows.append(row(f"cold, {load.label} ({human_bytes(load.size)})", res.cold, bad))
        rows.append(row(f"incremental, {before} + 1 new", res.incremental, bad))
        cpu_rows.append(row(f"cold, {load.label}: CPU user+sys", res.cold_cpu, bad))
        cpu_rows.append(row(f"incremental, {before} + 1 new: CPU user+sys", res.incremental_cpu, bad))
        data[load.key] = {
            "n": load.n,
            "bytes": load.size,
            "packages_bytes": res.packages_bytes,
            "index_bytes": res.index_bytes,
            "cold": res.cold,
            "incremental": res.incremental,
            "cold_median": {t: median(v) for t, v in res.cold.items()},
            "incremental_median": {t: median(v) for t, v in res.incremental.items()},
            "cold_cpu_median": {t: median(v) for t, v in res.cold_cpu.items()},
            "incremental_cpu_median": {t: median(v) for t, v in res.incremental_cpu.items()},
        }
    before_all = ", ".join(f"{_before(load.n, reps)} of the {load.label}" for load, _ in results)
    inputs = "; ".join(
        f"**{load.label}**: {load.describe}, {human_bytes(load.size)} in release folders of {PER_FOLDER} "
        f"(`Packages`: {human_bytes(res.packages_bytes)})"
        for load, res in results
    )
    section = Section(
        key="peers",
        title=TITLE,
        intro=[
            f"Inputs — {inputs}. Every tool gets the same files (hard links) and writes `Packages`, "
            f"`Packages.gz`, a second compressed index, `Release`, `InRelease` and `Release.gpg` for "
            f"`{SUITE}`/`main`/`{ARCH}`, signed with an RSA-3072 key made beforehand.",
            f"Wall time of the whole command as a user runs it (fresh processes, `bash -ec`), **median of "
            f"{reps}** interleaved repetitions (each tool once, then again). Cold: a fresh output folder "
            "every time. Incremental: each repetition adds one new .deb to the repository the previous "
            f"one left, starting from the first cold run's: {before_all} before the new one. "
            "Ratio: ghapt's time / the peer's, measured in the same run; above 1\u00d7 the peer is "
            "faster. The last rows give the CPU time (user+sys) of the same runs' process trees, "
            "which other work on the machine disturbs less than wall time.",
        ],
        headers=["Publish", *(HEADERS[t] for t in TOOLS)],
        rows=rows + cpu_rows,
        notes=[
            f"ghapt: `ghapt rebuild --releases pool --state state --architectures {ARCH}` (cold: a state "
            "folder holding only the key from `ghapt keys`); it also writes by-hash copies, its asset "
            "record and one git commit on `apt-metadata`. Incremental: the new .deb in a new release folder; "
            "its summary must say that it read that one .deb only.",
            "apt-ftparchive pipeline: `apt-ftparchive packages pool`, `gzip -9`, `xz`, `apt-ftparchive "
            "release`, `gpg --clearsign`, `gpg -abs`; cold without `--db`, incremental with a `--db` "
            "cache warmed (untimed) on the old packages.",
            "reprepro: `reprepro includedeb stable pool/*/*.deb` into a fresh base folder (`SignWith`, "
            "`DebIndices: Packages Release . .gz .xz`); incremental: `includedeb` of the new one into the "
            "existing database. It copies the .debs into its own pool.",
            "aptly: `repo create`, `repo add bench pool`, `publish repo -skip-contents -architectures=amd64` "
            "(cold); `repo add` of the new one and `publish update -skip-contents` (incremental). aptly "
            "writes `.gz` and `.bz2` (it has no `.xz`); it hard-links the .debs into its pool.",
            "Peers sign through one GnuPG home whose gpg-agent was started by the key generation and "
            "stays up, as in a user's session. Tool versions: the environment table.",
            "Checked outside the timing, after every run: "
            + (
                "all passed — both signatures verify with `gpgv` against the tool's own key only, "
                "`Release` lists the right size and SHA256 of each index, the compressed indices "
                "decompress to `Packages`, and all four list the same packages (Package, Version, "
                "Architecture, Size, SHA256), one per .deb."
                if not problems
                else "**FAILED** (⚠): " + "; ".join(problems)
            ),
            f"Load average (1 min) at the start and the end of this benchmark: {load_start:.2f} and "
            f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs.",
            "Compressed index sizes (cold): "
            + "; ".join(
                f"{load.label}: "
                + ", ".join(
                    f"{HEADERS[t].split()[0]} "
                    + " ".join(
                        f"{name.split('.')[-1]} {human_bytes(size)}"
                        for name, size in sorted(r.index_bytes.get(t, {}).items())
                    )
                    for t in TOOLS
                )
                for load, r in results
            )
            + f". ghapt compresses Packages in segments of about {_SEGMENT_KIB} KiB (each an xz block, a "
            "deflate run ended by a full flush) so that a rebuild compresses again only the segments "
            "that changed.",
            "Untimed: warming apt-ftparchive's `--db` cache on the first cold run's packages took "
            + ", ".join(f"{r.base_seconds:.1f} s ({load.label})" for load, r in results)
            + ".",
        ],
        data={"loads": data, "verified": not problems, "problems": problems, "skipped": False},
    )
    section.seconds = time.perf_counter() - started
    return section
