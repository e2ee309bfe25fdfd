"""``ghapt list``: what is published, per suite, from the local state or from a deployed URL.

Both read the listing the repository page carries (``index.html`` on the metadata branch,
served at ``/index.html``), so the command shows exactly what the page shows, like
``reprepro list`` or ``aptly repo show -with-packages``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from ghapt.cli.options import SETTING_FLAGS, Subparsers, add_settings, only, read_secret
from ghapt.core.errors import ConfigError, GhaptError, NotFound
from ghapt.core.layout import PAGE_FILE
from ghapt.core.settings import Settings

COLUMNS = ("suite", "package", "version", "architecture", "size", "release")


class RemoteError(GhaptError):
    """The deployed repository did not give us its page."""


def rows(listing: Mapping[str, Any], suite: str | None = None) -> list[dict[str, Any]]:
    """One row per published package version (in the page's Debian order), the suite first;
    ``suite`` keeps only that one."""
    suites: Mapping[str, list[dict[str, Any]]] = listing["suites"]
    if suite is not None and suite not in suites:
        known = ", ".join(suites) or "none"
        raise NotFound(f"no suite {suite!r} in this repository (suites: {known})")
    out = []
    for name, entries in suites.items():
        if suite is not None and name != suite:
            continue
        out += [{"suite": name, **e} for e in entries]
    return out


def print_table(table: list[dict[str, Any]], out: TextIO) -> None:
    cells = [[str(r[c]) for c in COLUMNS] for r in table]
    header = [c.upper() for c in COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(header, *cells, strict=False)]
    for line in (header, *cells):
        out.write(
            "  ".join(
                v.rjust(w) if c == "size" else v.ljust(w)
                for c, v, w in zip(COLUMNS, line, widths, strict=True)
            ).rstrip()
            + "\n"
        )


def local_page(settings: Settings, environ: Mapping[str, str]) -> bytes:
    """The page at the head of the metadata branch (local git store, or GitHub's branch)."""
    from ghapt.bootstrap import Services

    local = settings.backend == "local" and settings.state_dir is not None
    if local and not (settings.state_dir / "metadata.git").is_dir():  # type: ignore[operator]
        # Looking must not create a store (LocalGitStore initialises one on first use).
        raise NotFound(f"no published index in {settings.state_dir}: run `ghapt rebuild`")
    store = Services(settings, environ).store
    head = store.head()
    page = store.read_file(head, PAGE_FILE) if head else None
    if page is None:
        where = settings.state_dir if settings.backend == "local" else settings.metadata_repo
        raise NotFound(f"no published index in {where} (branch {settings.branch}): run `ghapt rebuild`")
    return page


def remote_page(url: str, auth: tuple[str, str] | None, token: str | None, timeout: float = 30.0) -> bytes:
    """``GET URL/index.html`` with Basic credentials or a Bearer token."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    target = f"{url.rstrip('/')}/index.html"
    try:
        reply = requests.get(target, auth=auth, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise RemoteError(f"cannot reach {target}: {exc}") from None
    if reply.status_code in (401, 403):
        raise RemoteError(f"{target} answered {reply.status_code}: check the credentials")
    if reply.status_code != 200:
        raise RemoteError(f"{target} answered {reply.status_code}: {reply.text.strip()[:200]}")
    return reply.content


def run(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    if args.url:
        auth = (args.user, read_secret(args, f"password for {args.user}")) if args.user else None
        token = args.token or None
        if not auth and not token:
            raise ConfigError("--url needs credentials: --user NAME --password-stdin, or --token TOKEN")
        page = remote_page(args.url, auth, token)
    else:
        if args.user or args.token:
            raise ConfigError("--user and --token go with --url (a deployed repository)")
        page = local_page(settings, environ)
    from ghapt.page import read_listing

    table = rows(read_listing(page), args.list_suite)
    if args.format == "json":
        json.dump(table, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    elif table:
        print_table(table, sys.stdout)
    else:
        print("no packages published", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "list",
        help="list the published packages per suite (local state, or a deployed URL)",
        description="Lists every published package version with its suite, architecture, size and "
        "release, from the metadata branch (--state DIR, or --metadata-repo on GitHub) or from a "
        "deployed repository (--url URL with credentials). The same listing the page at / shows.",
    )
    p.add_argument(
        "--suite", dest="list_suite", metavar="SUITE", help="only this suite (default: every suite)"
    )
    p.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table (aligned columns, default) or json (one object per package version)",
    )
    p.add_argument("--url", metavar="URL", help="a deployed repository's URL instead of the local state")
    p.add_argument(
        "--user", metavar="NAME", help="with --url: Basic Auth user (password from --password-stdin)"
    )
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--token", help="with --url: a GitHub Actions OIDC token, sent as Bearer")
    add_settings(p, only(SETTING_FLAGS, "--backend", "--state", "--metadata-repo", "--branch", "--api-url"))
    p.set_defaults(func=run)
