"""Packages.xz and .gz from segments: valid for the real tools, cut by content, reused safely."""

from __future__ import annotations

import gzip
import lzma
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from ghapt.deb import compression
from ghapt.deb.compression import PackagesCompressor, SegmentCache, split_segments

Stanzas = list[tuple[str, bytes]]


def stanzas(n: int, seed: int = 1, size: int = 900) -> Stanzas:
    """``n`` Packages-like stanzas of about ``size`` bytes, sorted by name, a few with two versions."""
    rng = random.Random(seed)  # noqa: S311  # test data, not secrets
    out: Stanzas = []
    words = [f"w{rng.randrange(10_000)}" for _ in range(400)]
    for i in range(n):
        name = f"pkg{i:05d}"
        for version in ("1.0-1", "1.1-1")[: 1 + (i % 7 == 0)]:
            text = " ".join(rng.choice(words) for _ in range(size // 6))
            out.append((name, f"Package: {name}\nVersion: {version}\nDescription: x\n {text}\n\n".encode()))
    return out


def plain(items: Stanzas) -> bytes:
    return b"".join(s for _, s in items)


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments of a few KB, so a test file of a few hundred KB has dozens of them."""
    monkeypatch.setattr(compression, "SEGMENT_MIN", 4 * 1024)
    monkeypatch.setattr(compression, "SEGMENT_SPREAD", 8 * 1024)
    monkeypatch.setattr(compression, "SEGMENT_MAX", 64 * 1024)


def _tool(cmd: str, path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*cmd.split(), str(path)], capture_output=True, check=False)


@pytest.mark.skipif(shutil.which("xz") is None or shutil.which("gzip") is None, reason="needs xz and gzip")
@pytest.mark.usefixtures("small_segments")
def test_the_files_are_one_stream_of_many_blocks_that_xz_and_gzip_read(tmp_path: Path) -> None:
    items = stanzas(300)
    out = PackagesCompressor(workers=2).compress(items)
    assert out.plain == plain(items)
    (tmp_path / "P.xz").write_bytes(out.xz)
    (tmp_path / "P.gz").write_bytes(out.gz)
    assert _tool("xz -t", tmp_path / "P.xz").returncode == 0
    listing = _tool("xz --robot -l", tmp_path / "P.xz").stdout.decode().splitlines()
    totals = next(line.split("\t") for line in listing if line.startswith("totals"))
    assert (int(totals[1]), int(totals[2])) == (1, len(out.segments))  # one stream, a block per segment
    assert len(out.segments) > 10
    assert _tool("xz -dc", tmp_path / "P.xz").stdout == out.plain
    assert _tool("gzip -t", tmp_path / "P.gz").returncode == 0
    assert _tool("gzip -dc", tmp_path / "P.gz").stdout == out.plain
    assert lzma.decompress(out.xz) == gzip.decompress(out.gz) == out.plain


@pytest.mark.skipif(shutil.which("xz") is None, reason="needs xz")
def test_an_empty_packages_file_compresses_to_valid_empty_files(tmp_path: Path) -> None:
    out = PackagesCompressor().compress([])
    assert (out.plain, out.segments) == (b"", [])
    (tmp_path / "P.xz").write_bytes(out.xz)
    assert _tool("xz -dc", tmp_path / "P.xz").stdout == b""
    assert lzma.decompress(out.xz) == gzip.decompress(out.gz) == b""


@pytest.mark.usefixtures("small_segments")
def test_the_same_stanzas_give_the_same_bytes_with_any_number_of_threads() -> None:
    items = stanzas(200)
    one = PackagesCompressor(workers=1).compress(items)
    many = PackagesCompressor(workers=4).compress(items)
    assert (one.xz, one.gz, one.segments) == (many.xz, many.gz, many.segments)


@pytest.mark.usefixtures("small_segments")
def test_cuts_follow_content_so_an_insertion_changes_only_its_neighbourhood() -> None:
    items = stanzas(400)
    before = split_segments(items)
    assert b"".join(before) == plain(items)
    at = len(items) // 2
    added = [*items[:at], ("pkg00199a", b"Package: pkg00199a\nVersion: 1\n\n"), *items[at:]]
    after = split_segments(added)
    assert b"".join(after) == plain(added)
    changed = set(after) - set(before)
    assert 1 <= len(changed) <= 2, len(changed)
    assert len(set(before) & set(after)) >= len(before) - 2


@pytest.mark.usefixtures("small_segments")
def test_the_versions_of_one_package_stay_in_one_segment() -> None:
    items = stanzas(300)
    for segment in split_segments(items):
        first = segment.split(b"\n", 1)[0]
        previous = [s for n, s in items if s.startswith(first + b"\n")]
        assert previous, first
    names = [n for n, _ in items]
    starts = {s.split(b"\n", 1)[0].removeprefix(b"Package: ").decode() for s in split_segments(items)}
    for name in starts - {names[0]}:
        i = names.index(name)
        assert names[i - 1] != name, f"a segment starts inside package {name}"


def test_a_package_larger_than_the_maximum_is_still_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compression, "SEGMENT_MAX", 8 * 1024)
    items = [
        ("same", f"Package: same\nVersion: {i}\nDescription: {'x' * 900}\n\n".encode()) for i in range(50)
    ]
    segments = split_segments(items)
    assert len(segments) > 3
    assert all(len(s) < 8 * 1024 + 1000 for s in segments)
    assert b"".join(segments) == plain(items)


def _previous(items: Stanzas) -> tuple[PackagesCompressor, dict[str, bytes]]:
    first = PackagesCompressor(workers=2)
    out = first.compress(items)
    first.table_for("P.xz", "P.gz", out)
    return first, {"P.xz": out.xz, "P.gz": out.gz}


@pytest.mark.usefixtures("small_segments")
def test_a_rebuild_compresses_only_the_changed_segment_and_gives_the_fresh_bytes() -> None:
    items = stanzas(400)
    first, files = _previous(items)
    added = [*items[:200], ("pkg00199a", b"Package: pkg00199a\nVersion: 1\n\n"), *items[200:]]
    reads: list[str] = []

    def read(path: str) -> bytes | None:
        reads.append(path)
        return files.get(path)

    cache = SegmentCache(first.tables, read)
    out = PackagesCompressor(cache, workers=2).compress(added)
    fresh = PackagesCompressor(workers=2).compress(added)
    assert (out.xz, out.gz) == (fresh.xz, fresh.gz)
    assert cache.compressed <= 4  # one or two segments, each as xz and as gz
    assert cache.reused >= 2 * (len(out.segments) - 2)
    assert sorted(reads) == ["P.gz", "P.xz"]  # each previous file read once


@pytest.mark.usefixtures("small_segments")
@pytest.mark.parametrize(
    "damage",
    [
        lambda f: {p: bytes(reversed(d)) for p, d in f.items()},  # other bytes at every offset
        lambda f: {p: d[: len(d) // 2] for p, d in f.items()},  # truncated files
        lambda f: {p: d[:40] + b"\0" * 8 + d[48:] for p, d in f.items()},  # one block damaged
        lambda f: {},  # the files are gone
    ],
    ids=["reversed", "truncated", "one-block", "missing"],
)
def test_a_damaged_previous_index_is_never_copied(
    damage: Callable[[dict[str, bytes]], dict[str, bytes]],
) -> None:
    items = stanzas(300)
    first, files = _previous(items)
    damaged = damage(files)
    out = PackagesCompressor(SegmentCache(first.tables, damaged.get)).compress(items)
    assert lzma.decompress(out.xz) == gzip.decompress(out.gz) == plain(items)
    fresh = PackagesCompressor().compress(items)
    assert (out.xz, out.gz) == (fresh.xz, fresh.gz)


@pytest.mark.parametrize(
    "table",
    [
        {"P.xz": [["x", -1, 5, 3]], "P.gz": [[1, 2, 3]]},
        {"P.xz": "not a list of rows"},
        {"P.xz": [["abc", True, 1, 1], None, 7]},
    ],
)
def test_a_damaged_segment_table_is_ignored(table: dict[str, object]) -> None:
    items = stanzas(50)
    cache = SegmentCache(table, {"P.xz": b"junk", "P.gz": b"junk"}.get)  # type: ignore[arg-type]
    out = PackagesCompressor(cache).compress(items)
    assert lzma.decompress(out.xz) == plain(items)
    assert cache.reused == 0


@pytest.mark.usefixtures("small_segments")
def test_a_warm_process_keeps_only_the_segments_it_still_uses() -> None:
    cache = SegmentCache()
    first = PackagesCompressor(cache)
    first.compress(stanzas(200, seed=1))
    cache.retain(first.used)
    second = PackagesCompressor(cache)
    second.compress(stanzas(200, seed=2))  # other text: nothing in common
    cache.retain(second.used)
    assert set(cache.memory) == second.used


@pytest.mark.usefixtures("small_segments")
def test_submit_returns_while_the_segments_compress_and_close_lets_the_threads_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The indexer writes its record and page while the Packages files compress: ``submit`` must
    not wait for the encoders, and the compressor's threads must end with ``close``."""
    import threading

    items = stanzas(120)
    expected = PackagesCompressor(workers=1).compress(items)
    release = threading.Event()
    real = compression.xz_block

    def held(data: bytes) -> compression.Piece:
        assert release.wait(30), "the test never let the encoder go"
        return real(data)

    monkeypatch.setattr(compression, "xz_block", held)
    with PackagesCompressor(workers=2) as compressor:
        pending = compressor.submit(items)  # would hang here if it compressed in this thread
        assert any(t.name.startswith("ghapt-compress") for t in threading.enumerate())
        release.set()
        out = pending.result()
        assert pending.result() is out  # joined once
    assert (out.plain, out.xz, out.gz, out.segments) == (
        expected.plain,
        expected.xz,
        expected.gz,
        expected.segments,
    )
    assert not any(t.name.startswith("ghapt-compress") for t in threading.enumerate())
