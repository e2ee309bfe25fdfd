"""What a Debian/Ubuntu client needs: a deb822 source, the key, and an auth.conf.d entry."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ghapt.cli.options import (
    Subparsers,
    read_secret,
)
from ghapt.core.errors import ConfigError
from ghapt.core.settings import Settings

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # a suite or component: one word, no line breaks


def sources_entry(url: str, suites: Sequence[str], components: Sequence[str], signed_by: str) -> str:
    """A deb822 ``.sources`` file; ``signed_by`` is a key path (``/etc/apt/keyrings/x.asc``)."""
    return (
        "Types: deb\n"
        f"URIs: {url.rstrip('/')}/\n"
        f"Suites: {' '.join(suites)}\n"
        f"Components: {' '.join(components)}\n"
        f"Signed-By: {signed_by}\n"
    )


def auth_machine(url: str) -> str:
    """The ``machine`` value for ``auth.conf``.

    Since apt 1.9.5 an entry without a scheme only matches https, so plain http must be named
    (``machine http://127.0.0.1:8080``) or apt sends no credentials at all."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    host = f"{parts.netloc}{path}"
    return f"http://{host}" if parts.scheme == "http" else host


def auth_entry(url: str, login: str, password: str) -> str:
    """One ``auth.conf.d`` line (the file must be mode 0600)."""
    if any(c.isspace() for c in login + password):
        raise ValueError("auth.conf logins and passwords cannot contain whitespace")
    return f"machine {auth_machine(url)} login {login} password {password}\n"


def run(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    import requests

    from ghapt.cli.clientconfig import auth_entry, auth_machine, sources_entry

    url = args.url.rstrip("/")
    try:
        auth_machine(url)
    except ValueError:
        raise ConfigError(f"--url {args.url!r} is not an http(s) URL of the repository") from None
    name = args.name
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"--name {name!r} cannot name a file")
    for flag, value in (*(("--suite", s) for s in args.suites or ()), ("--component", args.component)):
        if not _NAME_RE.match(value):
            raise ConfigError(f"{flag} {value!r} is not a suite or component name (e.g. jammy, main)")
    if args.oidc and args.user:
        raise ConfigError("pass either --user NAME (Basic Auth) or --oidc (GitHub Actions), not both")
    if args.oidc:
        token = args.token or environ.get("GHAPT_OIDC_TOKEN", "")
        if not token:
            raise ConfigError(
                "--oidc needs the token: pass --token TOKEN or set GHAPT_OIDC_TOKEN "
                "(a GitHub Actions OIDC token requested with ghapt's audience)"
            )
        login, password = settings.oidc_login, token
    elif args.user:
        login, password = args.user, read_secret(args, f"password for {args.user}")
    else:
        raise ConfigError("no credentials: pass --user NAME (with --password-stdin) or --oidc")
    try:
        reply = requests.get(f"{url}/public.key", timeout=20)
    except requests.RequestException as exc:
        raise ConfigError(f"cannot fetch {url}/public.key: {exc} (check --url)") from None
    key = reply.text
    if reply.status_code != 200 or "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in key:
        raise ConfigError(f"{url}/public.key answered {reply.status_code} without a key (check --url)")
    key_rel = f"etc/apt/keyrings/{name}.asc"
    sources_rel = f"etc/apt/sources.list.d/{name}.sources"
    auth_rel = f"etc/apt/auth.conf.d/{name}.conf"
    sources = sources_entry(url, args.suites or [settings.suite], [args.component], f"/{key_rel}")
    try:
        auth = auth_entry(url, login, password)
    except ValueError as exc:
        raise ConfigError(f"{exc}") from None
    files = [(sources_rel, sources, 0o644), (key_rel, key, 0o644), (auth_rel, auth, 0o600)]
    if not args.install:
        for rel, text, mode in files:
            print(f"# ==> /{rel} (mode {mode:04o}) <==")
            print(text.rstrip("\n"))
            print()
        print("# then: sudo apt-get update")
        return 0
    root = Path(args.root)
    for rel, text, mode in files:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        print(f"wrote {target} (mode {mode:04o})")
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "client-config",
        help="print or install a client's apt source, key and auth.conf.d entry",
        description="Fetches URL/public.key and prints the three files an apt client needs "
        "(or writes them under --root with --install): etc/apt/sources.list.d/NAME.sources, "
        "etc/apt/keyrings/NAME.asc and etc/apt/auth.conf.d/NAME.conf (mode 0600).",
    )
    p.add_argument("--url", required=True, help="the repository's URL (https://..., or http:// locally)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--user", metavar="NAME", help="Basic Auth user (password from --password-stdin)")
    who.add_argument(
        "--oidc",
        action="store_true",
        help="GitHub Actions OIDC: login github-action, --token or $GHAPT_OIDC_TOKEN",
    )
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--token", help="the OIDC token (default: $GHAPT_OIDC_TOKEN)")
    p.add_argument(
        "--suite",
        action="append",
        dest="suites",
        metavar="SUITE",
        help="suite, e.g. jammy or bookworm with routing (repeatable; default GHAPT_SUITE, stable)",
    )
    p.add_argument("--component", default="main", help="component (default main)")
    p.add_argument("--name", default="ghapt", help="file name for the three files (default ghapt)")
    p.add_argument("--install", action="store_true", help="write the files instead of printing them")
    p.add_argument(
        "--root", default="/", metavar="DIR", help="with --install: the root to write under (default /)"
    )
    p.set_defaults(func=run)
