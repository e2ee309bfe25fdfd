"""Build real .deb files with dpkg-deb for tests and benchmarks (always in temp dirs)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

COMPRESSORS = ("gzip", "xz", "zstd", "none")


def control_text(
    package: str,
    version: str,
    arch: str = "all",
    *,
    description: str = "test package\n a package built by the ghapt tests.",
    extra: Mapping[str, str] | None = None,
) -> str:
    """A control file; ``extra`` fields are appended in the given order."""
    fields: dict[str, str] = {
        "Package": package,
        "Version": version,
        "Architecture": arch,
        "Maintainer": "ghapt tests <tests@example.invalid>",
    }
    fields.update(extra or {})
    fields["Description"] = description
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def build_deb(
    out_dir: Path,
    package: str,
    version: str,
    arch: str = "all",
    *,
    compression: str = "gzip",
    control: str | None = None,
    files: Mapping[str, bytes] | None = None,
    extra: Mapping[str, str] | None = None,
    filename: str | None = None,
) -> Path:
    """Build ``package`` with dpkg-deb into ``out_dir`` and return its path.

    ``control`` replaces the generated control file verbatim (for real-world or odd ones);
    ``files`` maps install paths (e.g. ``usr/share/doc/x/README``) to contents."""
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir / f".build-{package}-{version.replace(':', '_')}-{arch}-{os.getpid()}"
    (root / "DEBIAN").mkdir(parents=True)
    text = control if control is not None else control_text(package, version, arch, extra=extra)
    (root / "DEBIAN" / "control").write_text(text)
    for rel, data in (
        files or {f"usr/share/doc/{package}/README": f"{package} {version}\n".encode()}
    ).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    noepoch = version.split(":", 1)[-1]
    deb = out_dir / (filename or f"{package}_{noepoch}_{arch}.deb")
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
    )
    subprocess.run(["rm", "-rf", str(root)], check=True)
    return deb
