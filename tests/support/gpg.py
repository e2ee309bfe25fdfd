"""The real OpenPGP tools as oracles: gpg, gpgv (as apt runs it) and sqv (apt 3), plus sample
Release texts that exercise the cleartext signature's corner cases."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ghapt.core.ports import Signer

SQV = shutil.which("sqv")

RELEASE = (
    b"Origin: ghapt\n"
    b"Label: ghapt\n"
    b"Suite: stable\n"
    b"Codename: stable\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 UTC\n"
    b"Acquire-By-Hash: yes\n"
    b"Architectures: amd64 arm64\n"
    b"Components: main\n"
    b"Description: D\xc3\xa9p\xc3\xb4t ghapt\n"
    b"SHA256:\n"
    b" 3b3a1ba7b4e0b8d5e1f0a8c2a37bd0c6a7fd0f0b1c2d3e4f5a6b7c8d9e0f1a2b 1234 main/binary-amd64/Packages\n"
    b" e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-arm64/Packages\n"
    b" 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 567 main/binary-amd64/Packages.xz\n"
)

TEXTS = {
    "release": RELEASE,
    "trailing-blanks": b"Origin: ghapt   \nLabel: ghapt\t\nSuite: stable \t \n",
    "dashes": (
        b"Origin: ghapt\n-leading dash\n--double\n- already looks escaped\n"
        b"-----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\nSuite: stable\n"
    ),
    "no-final-newline": b"Origin: ghapt\nLabel: ghapt\nSuite: stable",
    "crlf": b"Origin: ghapt\r\nLabel: ghapt \r\nSuite: stable\r\n",
    "blank-lines": b"Origin: ghapt\n\nLabel: ghapt\n\n\n",
    "empty": b"",
}


def expected_lines(data: bytes) -> list[bytes]:
    """What a text signature covers, written out independently of the code under test."""
    if data == b"":
        return [b""]
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines = lines[:-1]
    return [line.rstrip(b" \t\r") for line in lines]


# --- running the real tools ---------------------------------------------------------------------
def run(*cmd: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, check=False, timeout=120)


def gpgv(keyring: Path, *files: Path, output: Path | None = None) -> tuple[int, str]:
    """(exit code, status lines) of gpgv with only ``keyring`` trusted, as apt runs it."""
    home = keyring.parent / "gpgv-home"
    home.mkdir(mode=0o700, exist_ok=True)
    extra = ["--output", str(output)] if output else []
    proc = run("gpgv", "--homedir", home, "--status-fd", "1", "--keyring", keyring.resolve(), *extra, *files)
    return proc.returncode, proc.stdout.decode()


def validsig(status: str) -> list[str]:
    """The fields of the VALIDSIG status line (fingerprint, date, time, ..., algo, hash, class)."""
    lines = [line.split()[2:] for line in status.splitlines() if line.startswith("[GNUPG:] VALIDSIG ")]
    assert len(lines) == 1, status
    return lines[0]


def gpg(home: Path, *args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    home.mkdir(mode=0o700, exist_ok=True)
    return run("gpg", "--homedir", home, "--batch", "--no-tty", *args, stdin=stdin)


def apt_split(inrelease: bytes) -> tuple[bytes, bytes]:
    """Split InRelease like apt's SplitClearSignedFile: (message without final newline, signature)."""
    lines = inrelease.split(b"\n")
    assert lines[0] == b"-----BEGIN PGP SIGNED MESSAGE-----"
    end_of_headers = lines.index(b"")
    begin_sig = lines.index(b"-----BEGIN PGP SIGNATURE-----")
    message = []
    for line in lines[end_of_headers + 1 : begin_sig]:
        if line.startswith(b"-"):
            assert line.startswith(b"- "), "apt rejects unescaped lines starting with a dash"
            line = line[2:]
        message.append(line)
    return b"\n".join(message), b"\n".join(lines[begin_sig:])


def verify_inrelease(tmp: Path, keyring: Path, inrelease: bytes) -> tuple[int, str, bytes]:
    """gpgv over InRelease as a whole: (exit code, status, the text gpgv extracted)."""
    tmp.mkdir(exist_ok=True)
    (tmp / "InRelease").write_bytes(inrelease)
    out = tmp / "extracted"
    out.unlink(missing_ok=True)
    code, status = gpgv(keyring, tmp / "InRelease", output=out)
    return code, status, out.read_bytes() if out.exists() else b""


def verify_detached(tmp: Path, keyring: Path, signature: bytes, data: bytes) -> tuple[int, str]:
    tmp.mkdir(exist_ok=True)
    (tmp / "Release.gpg").write_bytes(signature)
    (tmp / "Release").write_bytes(data)
    return gpgv(keyring, tmp / "Release.gpg", tmp / "Release")


def sqv_ok(keyring: Path, signature: bytes, data: bytes, tmp: Path) -> bool:
    assert SQV is not None
    tmp.mkdir(exist_ok=True)
    (tmp / "sqv.sig").write_bytes(signature)
    (tmp / "sqv.data").write_bytes(data)
    return run(SQV, "--keyring", keyring, tmp / "sqv.sig", tmp / "sqv.data").returncode == 0


def write_keyrings(signer: Signer, where: Path) -> dict[str, Path]:
    """Keyrings holding only the repository key, each the way a client could get one."""
    where.mkdir(parents=True, exist_ok=True)
    rings: dict[str, Path] = {}
    # apt Signed-By: a .gpg file is the binary key as served.
    rings["signed-by-gpg"] = where / "repo.gpg"
    rings["signed-by-gpg"].write_bytes(signer.public_key())
    # apt Signed-By: an .asc file; apt dearmors it before calling gpgv.
    (where / "repo.asc").write_text(signer.public_key_armored())
    asc_gpg = where / "repo.asc.gpg"
    dearmored = gpg(where / "home-dearmor", "--dearmor", "--output", asc_gpg, where / "repo.asc")
    assert dearmored.returncode == 0, dearmored.stderr
    rings["signed-by-asc"] = where / "repo.asc.gpg"
    # gpg --import of each form into a fresh keyring file.
    for name, source in (("imported-binary", where / "repo.gpg"), ("imported-armored", where / "repo.asc")):
        ring = where / f"{name}.gpg"
        imported = gpg(
            where / f"home-{name}",
            "--no-default-keyring",
            "--keyring",
            ring,
            "--status-fd",
            "1",
            "--import",
            source,
        )
        assert imported.returncode == 0, imported.stderr
        assert b"[GNUPG:] IMPORT_OK 1 " + signer.fingerprint.encode() in imported.stdout
        rings[name] = ring
    return rings
