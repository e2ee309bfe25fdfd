"""The real apt-get, isolated under a temp dir: its own sources, keyring, auth.conf.d and state."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class AptResult:
    returncode: int
    output: str


class AptClient:
    """An apt root under ``root``; nothing of the machine's own apt sources or keys is used."""

    def __init__(self, root: Path, arch: str = "amd64") -> None:
        self.root = root
        for d in (
            "etc/apt/sources.list.d",
            "etc/apt/auth.conf.d",
            "etc/apt/keyrings",
            "etc/apt/preferences.d",
            "etc/apt/trusted.gpg.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
            "var/log/apt",
            "downloads",
        ):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "var/lib/dpkg/status").touch()
        (root / "etc/apt/sources.list").touch()
        conf = f"""
Dir "{root}/";
Dir::State "{root}/var/lib/apt/";
Dir::State::status "{root}/var/lib/dpkg/status";
Dir::Cache "{root}/var/cache/apt/";
Dir::Etc "{root}/etc/apt/";
Dir::Etc::sourcelist "{root}/etc/apt/sources.list";
Dir::Etc::sourceparts "{root}/etc/apt/sources.list.d";
Dir::Etc::trusted "{root}/etc/apt/trusted.gpg";
Dir::Etc::trustedparts "{root}/etc/apt/trusted.gpg.d";
Dir::Etc::preferencesparts "{root}/etc/apt/preferences.d";
Dir::Etc::netrc "{root}/etc/apt/auth.conf";
Dir::Etc::netrcparts "{root}/etc/apt/auth.conf.d";
Dir::Log "{root}/var/log/apt";
APT::Architecture "{arch}";
APT::Architectures {{ "{arch}"; }};
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Proxy "DIRECT";
Acquire::http::Timeout "20";
Debug::NoLocking "true";
"""
        self.config = root / "apt.conf"
        self.config.write_text(conf)

    def add_source(self, url: str, suites: str, key: Path, components: str = "main") -> Path:
        target = self.root / "etc/apt/keyrings" / key.name
        target.write_bytes(key.read_bytes())
        path = self.root / "etc/apt/sources.list.d/ghapt.sources"
        path.write_text(
            f"Types: deb\nURIs: {url}/\nSuites: {suites}\nComponents: {components}\nSigned-By: {target}\n"
        )
        return path

    def set_auth(self, line: str) -> Path:
        path = self.root / "etc/apt/auth.conf.d/ghapt.conf"
        path.write_text(line)
        path.chmod(0o600)
        return path

    def run(self, *args: str, cwd: Path | None = None) -> AptResult:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["APT_CONFIG"] = str(self.config)
        proc = subprocess.run(
            ["apt-get", "-q", *args],
            cwd=cwd or self.root / "downloads",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return AptResult(proc.returncode, proc.stdout + proc.stderr)

    def cache(self, *args: str) -> AptResult:
        env = {**os.environ, "APT_CONFIG": str(self.config)}
        proc = subprocess.run(["apt-cache", *args], env=env, capture_output=True, text=True, timeout=60)
        return AptResult(proc.returncode, proc.stdout + proc.stderr)
