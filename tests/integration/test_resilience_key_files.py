"""The local key files (``asset-url.key``, ``token.key``) are whole or reported (issue 10, item 13).

A truncated key is a configuration error that names the file, through the real CLI (exit 2, no
traceback); several processes and threads using a state directory for the first time at once
end up with one whole key that all of them share."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ghapt.auth.tokens import KEY_FILE as TOKEN_KEY_FILE
from ghapt.auth.tokens import file_key
from ghapt.local.signedurls import KEY_BYTES
from ghapt.local.signedurls import KEY_FILE as URL_KEY_FILE

from tests.support.debbuild import build_deb
from tests.support.ghaptcli import clean_env, eventually, free_port, run

OIDC = {"GHAPT_OIDC_ISSUER": "https://issuer.example", "GHAPT_OIDC_AUDIENCE": "https://apt.example"}


@pytest.mark.parametrize("contents", [b"", b"0123456789"], ids=["empty", "short"])
def test_a_truncated_url_key_is_a_configuration_error_naming_the_file(
    tmp_path: Path, contents: bytes
) -> None:
    build_deb(tmp_path / "rel" / "v1", "tool", "1.0-1", "all")
    state = tmp_path / "st"
    state.mkdir()
    key = state / URL_KEY_FILE
    key.write_bytes(contents)
    key.chmod(0o600)
    # `serve` signs asset URLs with it: it stops at start, naming the file.
    args = ("serve", "--releases", str(tmp_path / "rel"), "--state", str(state), "--port", str(free_port()))
    res = run(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert str(key) in res.stderr and "too short" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    # `rebuild` never signs a URL, so it neither reads the key nor stops for it.
    res = run("rebuild", "--releases", str(tmp_path / "rel"), "--state", str(state))
    assert res.returncode == 0, res.stdout + res.stderr
    assert key.read_bytes() == contents, "a bad key is reported, never silently replaced"


def test_a_truncated_token_key_stops_serve_naming_the_file(tmp_path: Path) -> None:
    build_deb(tmp_path / "rel" / "v1", "tool", "1.0-1", "all")
    state = tmp_path / "st"
    state.mkdir()
    key = state / TOKEN_KEY_FILE
    key.write_bytes(b"abc\n")
    key.chmod(0o600)
    args = ("serve", "--releases", str(tmp_path / "rel"), "--state", str(state), "--port", str(free_port()))
    res = run(*args, env=OIDC)
    assert res.returncode == 2, res.stdout + res.stderr
    assert str(key) in res.stderr
    assert "Traceback" not in res.stderr


CHILD = """
import sys, time
from pathlib import Path
from ghapt.local.signedurls import load_url_key
from ghapt.auth.tokens import KEY_FILE, file_key
state, go = Path(sys.argv[1]), Path(sys.argv[2])
Path(sys.argv[3]).touch()  # ready
end = time.monotonic() + 60
while not go.exists() and time.monotonic() < end:
    time.sleep(0.001)
print(load_url_key(state).hex(), file_key(state / KEY_FILE)().hex())
"""


def test_concurrent_first_use_by_processes_and_threads_ends_with_one_whole_key(tmp_path: Path) -> None:
    from ghapt.local.signedurls import load_url_key

    state, go = tmp_path / "st", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(state), str(go), str(tmp_path / f"ready-{n}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for n in range(6)
    ]
    eventually(lambda: all((tmp_path / f"ready-{n}").exists() for n in range(6)), "every child is ready")
    barrier = threading.Barrier(8)
    seen: list[tuple[str, str]] = []

    def thread() -> None:
        barrier.wait()
        seen.append((load_url_key(state).hex(), file_key(state / TOKEN_KEY_FILE)().hex()))

    threads = [threading.Thread(target=thread) for _ in range(8)]
    go.touch()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        url_hex, token_hex = out.split()
        seen.append((url_hex, token_hex))
    assert len(seen) == 14 and len(set(seen)) == 1, "every user of the state directory has the same keys"
    url_key = (state / URL_KEY_FILE).read_bytes()
    assert len(url_key) == KEY_BYTES
    assert url_key.hex() == seen[0][0]
    assert len((state / TOKEN_KEY_FILE).read_bytes()) == 65  # 64 hex digits and a newline
    assert sorted(p.name for p in state.iterdir()) == sorted([URL_KEY_FILE, TOKEN_KEY_FILE]), "no leftovers"
