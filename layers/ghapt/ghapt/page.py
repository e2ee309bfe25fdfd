"""The repository page: one small, self-contained HTML file rendered at rebuild time.

The indexer commits ``index.html`` with the index, so serving ``GET /`` costs what serving
``InRelease`` costs: one cached blob from the branch snapshot. The page has no JavaScript,
no external assets and one inline stylesheet whose hash the served Content-Security-Policy
names, so it renders offline under ``default-src 'none'``.

Three things cannot be known when the page is rendered, so they are left as placeholders and
filled in when it is served, from values the serving code already holds:

* the commit: the commit that contains the page cannot name itself, so the page shows the
  branch head from the snapshot it is served from (exactly the commit holding this page,
  with no extra store call);
* when it was built: that commit's time (the index's ``Last-Modified``);
* the repository's URL for the client setup (API Gateway's stage URL or the local server's),
  which depends on how the client reached us.

Placeholders contain ``<``, which escaped content can never produce, so filling them cannot
touch package data. Rendering is deterministic (no clock), so a rebuild that changes nothing
yields the same bytes and makes no commit.

The page also carries the listing as a JSON data block (``type="application/json"``, never
executed), which ``ghapt list`` reads locally and from a deployed URL alike.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ghapt.core.errors import GhaptError, NotFound
from ghapt.core.layout import PAGE_FILE
from ghapt.core.model import IndexedAsset
from ghapt.core.settings import Settings
from ghapt.deb.versions import version_key

if TYPE_CHECKING:
    from ghapt.serving import BranchCache, Reply

PAGE_FORMAT = 1
KEY_FILE = "/etc/apt/keyrings/ghapt.asc"
SOURCES_FILE = "/etc/apt/sources.list.d/ghapt.sources"
AUTH_FILE = "/etc/apt/auth.conf.d/ghapt.conf"

_BASE = "<ghapt:base>"
_MACHINE = "<ghapt:machine>"
_COMMIT = "<ghapt:commit>"
_BUILT = "<ghapt:built>"
_BUILT_ISO = "<ghapt:built-iso>"
_MAIN = "<main>\n"
_SENTINEL_BASE = "GHAPT-BASE-URL-SENTINEL"
_SENTINEL_MACHINE = "GHAPT-MACHINE-SENTINEL"

_DATA_RE = re.compile(rb'<script type="application/json" id="ghapt-index">(.*?)</script>', re.DOTALL)

STYLE = """
:root { color-scheme: light dark; --muted: #6a737d; --rule: #d0d7de; }
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 68rem; padding: 1rem 1.5rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { border-bottom: 1px solid var(--rule); padding-bottom: .2rem; margin-top: 2rem; }
code, pre { font: 13px/1.45 ui-monospace, monospace; }
pre { background: rgba(127, 127, 127, .12); padding: .6rem .8rem; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .6rem .25rem 0; border-bottom: 1px solid var(--rule); }
td.size { text-align: right; white-space: nowrap; }
.muted, caption { color: var(--muted); }
caption { text-align: left; padding: .3rem 0; }
""".strip()

STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

# No script may run, nothing may load, the page may not be framed or submit anywhere; the one
# inline stylesheet is allowed by its hash, and the empty data: icon is the only image.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _escape(text: str) -> str:
    """Text for HTML content and quoted attributes (``html.escape``'s five characters; the
    ``html`` module would also load its 2,000-entry entity table, a few ms on every rebuild)."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


class PageError(GhaptError):
    """A page that does not carry a readable listing."""

    status = 502


class PageTooLarge(GhaptError):
    """A page larger than a Lambda response may carry (about 6,000 package versions)."""


# --- rendering (rebuild time) ----------------------------------------------------------------
def listing(
    suites: Mapping[str, Sequence[IndexedAsset]],
    *,
    default_suite: str,
    component: str,
    architectures: Sequence[str],
    origin: str,
    label: str,
    fingerprint: str,
) -> dict[str, Any]:
    """What the page shows, as plain data: also what ``ghapt list`` prints."""
    return {
        "format": PAGE_FORMAT,
        "origin": origin,
        "label": label,
        "suite": default_suite,
        "component": component,
        "architectures": list(architectures),
        "fingerprint": fingerprint,
        "suites": {
            suite: _debian_order([_entry(e) for e in entries])
            for suite, entries in sorted(suites.items(), key=lambda kv: (kv[0] != default_suite, kv[0]))
        },
    }


def _debian_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Package, then Debian version order (1.9 before 1.10, ~rc before the release), then arch."""
    return sorted(
        rows, key=lambda r: (r["package"], version_key(r["version"]), r["architecture"], r["filename"])
    )


def _entry(e: IndexedAsset) -> dict[str, Any]:
    description = e.deb.field("Description") or ""
    return {
        "package": e.deb.package.strip(),
        "version": e.deb.version.strip(),
        "architecture": e.deb.architecture.strip(),
        "size": e.deb.size,
        "summary": description.split("\n", 1)[0].strip(),
        "release": e.asset.release,
        "release_url": e.asset.release_url or None,
        "filename": e.pool_path,
        "sha256": e.deb.hashes.sha256,
    }


def render_page(data: Mapping[str, Any]) -> bytes:
    """The page for ``data`` (from ``listing``): the same data always gives the same bytes."""
    esc = _escape
    label = str(data["label"])
    suites: Mapping[str, list[dict[str, Any]]] = data["suites"]
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        '<meta name="referrer" content="no-referrer">\n',
        # An empty icon, so the browser does not ask the server for /favicon.ico.
        '<link rel="icon" href="data:,">\n',
        f"<title>{esc(label)} APT repository</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        f"<header>\n<h1>{esc(label)} APT repository</h1>\n",
        f'<p class="muted">Index built <time datetime="{_BUILT_ISO}">{_BUILT}</time> from commit '
        f"<code>{_COMMIT}</code> of the metadata branch (the commit that holds this page). ",
        f"Origin <code>{esc(str(data['origin']))}</code>, component <code>{esc(str(data['component']))}"
        f"</code>, architectures <code>{esc(' '.join(data['architectures']))}</code>.</p>\n",
        "<nav><p>Suites: ",
        ", ".join(
            f'<a href="#suite-{esc(s)}">{esc(s)}</a> ({len(rows)} package{"" if len(rows) == 1 else "s"})'
            for s, rows in suites.items()
        )
        or "none yet",
        ' · <a href="#setup">client setup</a></p></nav>\n</header>\n',
        # Every placeholder is above <main>: serving fills this short head, not the tables.
        _setup_section(data),
        _MAIN,
    ]
    for suite, ordered in suites.items():  # already in Debian order (``listing``)
        parts.append(f'<section id="suite-{esc(suite)}">\n<h2>{esc(suite)}</h2>\n')
        if not ordered:
            parts.append('<p class="muted">No packages in this suite yet.</p>\n</section>\n')
            continue
        parts.append(
            f"<table>\n<caption>{len(ordered)} package version{'s' if len(ordered) != 1 else ''} "
            f"in {esc(suite)}</caption>\n"
            "<thead><tr><th>Package</th><th>Version</th><th>Architecture</th><th>Size</th>"
            "<th>Release</th></tr></thead>\n<tbody>\n"
        )
        for r in ordered:
            release = esc(str(r["release"]))
            url = str(r.get("release_url") or "")
            if url.startswith(("https://", "http://")):
                release = f'<a href="{esc(url)}" rel="noreferrer">{release}</a>'
            summary = f' title="{esc(r["summary"])}"' if r.get("summary") else ""
            parts.append(
                f"<tr><td{summary}><code>{esc(r['package'])}</code></td><td><code>{esc(r['version'])}"
                f"</code></td><td>{esc(r['architecture'])}</td>"
                f'<td class="size" title="{int(r["size"])} bytes">{_human(int(r["size"]))}</td>'
                f"<td>{release}</td></tr>\n"
            )
        parts.append("</tbody>\n</table>\n</section>\n")
    parts.append("</main>\n")
    parts.append(f'<script type="application/json" id="ghapt-index">{_script_json(data)}</script>\n')
    parts.append("</body>\n</html>\n")
    return "".join(parts).encode("utf-8")


def _setup_section(data: Mapping[str, Any]) -> str:
    from ghapt.cli.clientconfig import sources_entry

    esc = _escape
    fingerprint = str(data["fingerprint"])
    grouped = " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))
    others = [s for s in data["suites"] if s != data["suite"]]
    sources = sources_entry(_SENTINEL_BASE, [str(data["suite"])], [str(data["component"])], KEY_FILE)
    key_steps = (
        "sudo install -d -m 0755 /etc/apt/keyrings\n"
        f"curl -fsS {_SENTINEL_BASE}/public.key | sudo tee {KEY_FILE} >/dev/null\n"
        f"gpg --show-keys --with-fingerprint {KEY_FILE}   # must show the fingerprint above"
    )
    auth = f"machine {_SENTINEL_MACHINE} login YOUR-LOGIN password YOUR-PASSWORD"

    def block(text: str) -> str:
        # Escape first, then put the placeholders in: they must stay unescaped to be filled.
        return (
            esc(text.rstrip("\n"))
            .replace(_SENTINEL_BASE + "/", _BASE + "/")
            .replace(_SENTINEL_BASE, _BASE)
            .replace(_SENTINEL_MACHINE, _MACHINE)
        )

    more = (
        f"<p>For the other suites add them to <code>Suites:</code> "
        f"({', '.join(f'<code>{esc(s)}</code>' for s in others)}).</p>\n"
        if others
        else ""
    )
    return (
        '<section id="setup">\n<h2>Set up a client</h2>\n'
        f"<p>The signing key's fingerprint: <code>{esc(grouped)}</code></p>\n"
        f"<h3>The key, in <code>{KEY_FILE}</code></h3>\n<pre>{block(key_steps)}</pre>\n"
        f"<h3><code>{SOURCES_FILE}</code></h3>\n<pre>{block(sources)}</pre>\n{more}"
        f"<h3><code>{AUTH_FILE}</code> (mode 0600)</h3>\n<pre>{block(auth)}</pre>\n"
        "<p>Or let ghapt write all three: "
        f"<code>{block('ghapt client-config --url ' + _SENTINEL_BASE + ' --user YOUR-LOGIN --install')}"
        "</code></p>\n</section>\n"
    )


def _script_json(data: Mapping[str, Any]) -> str:
    """JSON that cannot end the script element or open markup (``<``, ``>``, ``&`` escaped)."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


# --- reading it back (ghapt list) ------------------------------------------------------------
def read_listing(page: bytes) -> dict[str, Any]:
    """The listing a page carries; ``PageError`` when it carries none (not a ghapt page)."""
    match = _DATA_RE.search(page)
    if match is None:
        raise PageError("the repository page carries no listing (is this a ghapt repository?)")
    try:
        data = json.loads(match.group(1))
    except ValueError as exc:
        raise PageError(f"the repository page's listing is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != PAGE_FORMAT or "suites" not in data:
        raise PageError(f"the repository page's listing has an unknown format (expected {PAGE_FORMAT})")
    return data


# --- serving ---------------------------------------------------------------------------------
def fill_page(template: bytes, *, commit: str, built: int, base_url: str) -> bytes:
    """The page with the head commit, its time and this server's URL put in (all escaped)."""
    from ghapt.cli.clientconfig import auth_machine

    base = base_url.rstrip("/")
    try:
        machine = auth_machine(base)
    except ValueError:
        machine = "HOST"
    when = datetime.fromtimestamp(built, UTC)
    values = {
        _BASE: base,
        _MACHINE: machine,
        _COMMIT: commit,
        _BUILT: when.strftime("%Y-%m-%d %H:%M:%S UTC"),
        _BUILT_ISO: when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    # Placeholders only occur before <main> (the header and the client setup): fill that part.
    cut = template.find(_MAIN.encode())
    head, rest = (template, b"") if cut < 0 else (template[:cut], template[cut:])
    for placeholder, value in values.items():
        head = head.replace(placeholder.encode(), _escape(value).encode("utf-8"))
    return head + rest


def serve_page(cache: BranchCache, headers: Mapping[str, str], base_url: str) -> Reply:
    """``GET /`` and ``/index.html``: the committed page, filled in, with validators and a strict CSP."""
    from ghapt.serving import MAX_INLINE_BYTES, Reply, _not_modified  # not on a rebuild's path

    snap = cache.snapshot()
    blob = snap.files.get(PAGE_FILE)
    if blob is None:
        raise NotFound("this index has no repository page yet: run a rebuild")
    tag = hashlib.sha256(f"{blob}\0{snap.commit}\0{base_url}".encode()).hexdigest()[:40]
    etag = f'"{tag}"'
    reply_headers = {
        "ETag": etag,
        "Last-Modified": snap.last_modified,
        # Revalidate each time: the commit shown changes with every rebuild; a 304 is cheap.
        "Cache-Control": "private, no-cache",
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    lowered = {k.lower(): v for k, v in headers.items()}
    if _not_modified(lowered, etag, snap.time):
        return Reply(304, reply_headers)
    size = snap.sizes[PAGE_FILE]
    if size > MAX_INLINE_BYTES:  # checked on the tree's size, before anything is read
        raise PageTooLarge(
            f"the repository page is {size} bytes, more than a response can carry; "
            "`ghapt list --state DIR` (or --metadata-repo) lists the packages from the branch"
        )
    template = cache.read(snap, PAGE_FILE, MAX_INLINE_BYTES)
    body = fill_page(template, commit=snap.commit, built=snap.time, base_url=base_url)
    return Reply(200, reply_headers, body)


def page_files(
    suites: Mapping[str, Sequence[IndexedAsset]], settings: Settings, fingerprint: str
) -> dict[str, bytes]:
    """{path: bytes} of the page for an index: the one call the indexer makes."""
    data = listing(
        suites,
        default_suite=settings.suite,
        component=settings.component,
        architectures=settings.architectures,
        origin=settings.origin,
        label=settings.label,
        fingerprint=fingerprint,
    )
    return {PAGE_FILE: render_page(data)}
