"""The ``ghapt`` command: rebuild, serve, users, keys, client-config, doctor, demo.

Every option is also an environment variable (the same ``Settings`` the Lambda functions
read), so a flag is only an override: ``--state DIR`` is ``GHAPT_STATE_DIR=DIR``.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, GhaptError
from .settings import Settings, env_name

log = logging.getLogger("ghapt")

# flag -> (settings field, argparse kwargs)
_SETTING_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--backend": ("backend", {"choices": ["local", "github"]}),
    "--releases": ("releases_dir", {"metavar": "DIR"}),
    "--state": ("state_dir", {"metavar": "DIR"}),
    "--suite": ("suite", {}),
    "--prerelease-suite": ("prerelease_suite", {}),
    "--component": ("component", {}),
    "--architectures": ("architectures", {"metavar": "ARCHS"}),
    "--origin": ("origin", {}),
    "--label": ("label", {}),
    "--github-repo": ("github_repos", {"action": "append", "metavar": "OWNER/NAME"}),
    "--metadata-repo": ("metadata_repo", {"metavar": "OWNER/NAME"}),
    "--branch": ("branch", {}),
    "--api-url": ("api_url", {"metavar": "URL"}),
    "--users-file": ("users_file", {"metavar": "FILE"}),
}
_USERS_SECRET_FLAG: dict[str, tuple[str, dict[str, Any]]] = {
    "--users-secret-arn": ("users_secret_arn", {"metavar": "ARN"}),
}
_KMS_FLAG: dict[str, tuple[str, dict[str, Any]]] = {
    "--kms-key-id": ("kms_key_id", {"metavar": "ID"}),
}
_SERVE_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--host": ("host", {}),
    "--port": ("port", {"type": int}),
    "--public-url": ("public_url", {"metavar": "URL"}),
}


def _add_settings(parser: argparse.ArgumentParser, flags: Mapping[str, tuple[str, dict[str, Any]]]) -> None:
    for flag, (name, kwargs) in flags.items():
        parser.add_argument(flag, dest=name, default=None, help=f"(env {env_name(name)})", **kwargs)


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name, _ in (
            *_SETTING_FLAGS.values(),
            *_SERVE_FLAGS.values(),
            *_USERS_SECRET_FLAG.values(),
            *_KMS_FLAG.values(),
        )
        if getattr(args, name, None) is not None
    }
    if "github_repos" in overrides or "metadata_repo" in overrides:
        overrides.setdefault("backend", "github")
    return Settings.from_env(environ, **overrides)


# --- commands -------------------------------------------------------------------------------------
def cmd_rebuild(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from .services import Services

    services = Services(settings, environ)
    progress = _progress_printer()
    try:
        result = services.indexer.rebuild(dry_run=args.dry_run, progress=progress)
    finally:
        if progress is not None:
            progress("done", {})
    print(result.summary())
    if args.dry_run and result.changed:
        print("dry run: nothing was committed")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from .services import Services

    services = Services(settings, environ)
    run_server(services, banner=None)
    return 0


def run_server(services: Any, banner: str | None, ready: Callable[[], None] | None = None) -> None:
    """Rebuild if needed, watch the release folder, and serve until interrupted."""
    import waitress

    from .localserver import ApiGateway

    settings = services.settings
    lock = threading.Lock()

    def rebuild() -> None:
        with lock:
            result = services.rebuild_now()
            if result.changed:
                print(f"rebuilt: {result.summary().splitlines()[0]} ({result.commit})", flush=True)

    rebuild()
    if settings.backend == "local":
        threading.Thread(target=_watch, args=(services, rebuild), daemon=True, name="ghapt-watch").start()
    else:
        threading.Thread(target=_reconcile, args=(services,), daemon=True, name="ghapt-reconcile").start()
    app = ApiGateway(services)
    if banner:
        print(banner, flush=True)
    print(f"ghapt serving on http://{settings.host}:{settings.port} (Ctrl-C stops)", flush=True)
    if ready:
        ready()
    try:
        waitress.serve(app, host=settings.host, port=settings.port, threads=8, ident="ghapt", _quiet=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}; "
            "pick another --port (GHAPT_PORT)"
        ) from None


def _watch(services: Any, rebuild: Callable[[], None]) -> None:
    """Poll the release folder; any change (new, removed or rewritten file) triggers a rebuild."""
    settings = services.settings
    last = _folder_state(settings.releases_dir)
    while True:
        time.sleep(settings.poll_seconds)
        now = _folder_state(settings.releases_dir)
        if now != last:
            time.sleep(min(settings.poll_seconds, 1.0))  # let a copy in progress finish
            now = _folder_state(settings.releases_dir)
            try:
                rebuild()
                last = now
            except GhaptError as exc:
                print(f"rebuild failed: {exc}", file=sys.stderr, flush=True)


def _reconcile(services: Any) -> None:
    """GitHub does not redeliver webhooks: rebuild on a schedule through the same local queue."""
    n = 0
    while True:
        time.sleep(services.settings.reconcile_seconds)
        n += 1
        services.queue.enqueue("scheduled reconcile", f"reconcile-{n}")


def _folder_state(root: Path | None) -> tuple[tuple[str, int, int], ...]:
    if root is None or not root.is_dir():
        return ()
    out = []
    for path in sorted(root.glob("*/*.deb")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def cmd_users(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from .users import UserFile, generate_password

    users: Any
    if settings.users_secret_arn:
        from .usersecret import SecretUsers

        users = SecretUsers(settings.users_secret_arn)
        where = users.location
    else:
        path = settings.users_path
        if path is None:
            raise ConfigError(
                "no users file: pass --state DIR (or GHAPT_STATE_DIR) or --users-file FILE, "
                "or --users-secret-arn ARN (GHAPT_USERS_SECRET_ARN) for a deployment"
            )
        users = UserFile(path)
        where = str(path)
    if args.users_command == "list":
        for name in users.names():
            print(name)
        return 0
    if args.users_command == "remove":
        if not users.remove(args.name):
            print(f"no such user: {args.name}", file=sys.stderr)
            return 1
        print(f"removed {args.name} from {where}")
        return 0
    generated = False
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.generate or not sys.stdin.isatty():
        password, generated = generate_password(), True
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return 1
    if not password:
        raise ConfigError("an empty password is not allowed")
    users.add(args.name, password)
    print(f"added {args.name} to {where}")
    if generated:
        print(f"password: {password}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from .clientconfig import auth_entry, sources_entry
    from .demo import write_demo_releases
    from .services import Services
    from .users import UserFile, generate_password

    root = Path(args.dir).resolve()
    settings = Settings.from_env(
        environ,
        releases_dir=settings.releases_dir or root / "releases",
        state_dir=settings.state_dir or root / "state",
        host=settings.host,
        port=settings.port,
    )
    write_demo_releases(settings.releases_dir)  # type: ignore[arg-type]
    users = UserFile(settings.users_path)  # type: ignore[arg-type]
    secret_file = root / "demo-password"
    if not secret_file.exists() or "demo" not in users.names():
        password = generate_password()
        users.add("demo", password)
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
    password = secret_file.read_text().strip()
    services = Services(settings, environ)
    url = settings.public_url or f"http://{settings.host}:{settings.port}"
    client = root / "client"
    client.mkdir(exist_ok=True)
    (client / "ghapt.asc").write_text(services.signer.public_key_armored())
    sources = sources_entry(url, [settings.suite], [settings.component], "/etc/apt/keyrings/ghapt.asc")
    (client / "ghapt.sources").write_text(sources)
    auth = auth_entry(url, "demo", password)
    fd = os.open(client / "ghapt.conf", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(auth)
    banner = "\n".join(
        [
            f"Demo releases: {settings.releases_dir} (add a folder with .deb files to publish more)",
            "",
            "A client needs three files (also written to " + str(client) + "):",
            "",
            "# /etc/apt/sources.list.d/ghapt.sources",
            sources.rstrip(),
            "",
            f"# /etc/apt/keyrings/ghapt.asc  (also at {url}/public.key)",
            f"# fingerprint {services.signer.fingerprint}",
            services.signer.public_key_armored().rstrip(),
            "",
            "# /etc/apt/auth.conf.d/ghapt.conf  (mode 0600; plain http needs the http:// in 'machine')",
            auth.rstrip(),
            "",
            "Then: sudo apt-get update && sudo apt-get install hello-ghapt",
        ]
    )
    run_server(services, banner=banner)
    return 0


def _progress_printer() -> Callable[[str, Mapping[str, Any]], None] | None:
    """On a terminal: one updating line while new assets are read (count, bytes); else nothing."""
    if not sys.stderr.isatty():
        return None
    state = {"total": 0, "read": 0, "bytes": 0, "shown": 0}

    def show(kind: str, info: Mapping[str, Any]) -> None:
        if kind == "listed":
            state["total"] = int(info["assets"])
            sys.stderr.write(f"listed {state['total']} assets\n")
        elif kind == "read":
            state["read"] += 1
            state["bytes"] += int(info.get("bytes", 0))
            state["shown"] = 1
            name = str(info.get("asset", ""))[:40]
            sys.stderr.write(
                f"\r\033[Kreading new assets: {state['read']}/{state['total']} "
                f"({state['bytes'] / 1e6:.1f} MB downloaded) {name}"
            )
        elif kind == "done" and state["shown"]:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


# --- keys, client config, doctor -------------------------------------------------------------------
def cmd_keys(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from .keys import export_public_key, signer_for

    signer, info = signer_for(settings)
    if args.export == "-":
        print(info.describe(), file=sys.stderr)
        export_public_key(signer, "-", armor=args.armor)
        return 0
    print(info.describe())
    if args.export:
        export_public_key(signer, args.export, armor=args.armor)
        kind = "armored (.asc)" if args.armor else "binary (.gpg)"
        print(f"exported the public key, {kind}, to {args.export}")
    return 0


def _read_secret(args: argparse.Namespace, what: str) -> str:
    if args.password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        value = getpass.getpass(f"{what}: ")
    else:
        raise ConfigError(f"no {what}: pass --password-stdin and write it to standard input")
    if not value:
        raise ConfigError(f"an empty {what} is not allowed")
    return value


def cmd_client_config(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    import requests

    from .clientconfig import auth_entry, auth_machine, sources_entry

    url = args.url.rstrip("/")
    try:
        auth_machine(url)
    except ValueError:
        raise ConfigError(f"--url {args.url!r} is not an http(s) URL of the repository") from None
    name = args.name
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"--name {name!r} cannot name a file")
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
        login, password = args.user, _read_secret(args, f"password for {args.user}")
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


def cmd_doctor(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from .doctor import Doctor

    auth = None
    if args.user:
        auth = (args.user, _read_secret(args, f"password for {args.user}"))
    token = args.token or None
    if not auth and not token:
        raise ConfigError("no credentials: pass --user NAME --password-stdin, or --token TOKEN")
    doctor = Doctor(
        args.url,
        auth=auth,
        token=token,
        suites=tuple(args.suites or [settings.suite]),
        on_check=lambda check: print(check.line(), flush=True),
    )
    report = doctor.run()
    failed = [c for c in report.checks if not c.ok]
    if failed:
        print(f"{len(failed)} of {len(report.checks)} checks failed")
        return 1
    print(f"all {len(report.checks)} checks passed")
    return 0


# --- entry point ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghapt", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("rebuild", help="index the releases and commit the signed index (one commit)")
    _add_settings(p, _SETTING_FLAGS)
    p.add_argument("--dry-run", action="store_true", help="show what would change; commit nothing")
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("serve", help="serve the repository locally (rebuilds when the releases change)")
    _add_settings(p, _SETTING_FLAGS)
    _add_settings(p, _SERVE_FLAGS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("users", help="manage Basic Auth users (salted scrypt hashes)")
    users_sub = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    for action, helptext in (
        ("add", "add or replace a user"),
        ("remove", "remove a user"),
        ("list", "list users"),
    ):
        q = users_sub.add_parser(action, help=helptext)
        if action != "list":
            q.add_argument("name")
        if action == "add":
            q.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
            q.add_argument("--generate", action="store_true", help="generate a strong password and print it")
        _add_settings(q, {k: v for k, v in _SETTING_FLAGS.items() if k in ("--state", "--users-file")})
        _add_settings(q, _USERS_SECRET_FLAG)
    p.set_defaults(func=cmd_users)

    p = sub.add_parser(
        "keys",
        help="create (local) or show the signing key and its fingerprint; export the public key",
        description="Creates the local signing key in --state DIR on first use, or shows a KMS key "
        "(--kms-key-id); prints the fingerprint and exports the public key.",
    )
    _add_settings(p, {k: v for k, v in _SETTING_FLAGS.items() if k == "--state"})
    _add_settings(p, _KMS_FLAG)
    p.add_argument("--export", metavar="FILE", help="write the public key to FILE ('-' for stdout)")
    armor = p.add_mutually_exclusive_group()
    armor.add_argument(
        "--armor", dest="armor", action="store_true", default=True, help="ASCII-armored .asc (default)"
    )
    armor.add_argument("--binary", dest="armor", action="store_false", help="binary .gpg keyring")
    p.set_defaults(func=cmd_keys)

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
        "--suite", action="append", dest="suites", metavar="SUITE", help="suite (repeatable; default stable)"
    )
    p.add_argument("--component", default="main", help="component (default main)")
    p.add_argument("--name", default="ghapt", help="file name for the three files (default ghapt)")
    p.add_argument("--install", action="store_true", help="write the files instead of printing them")
    p.add_argument(
        "--root", default="/", metavar="DIR", help="with --install: the root to write under (default /)"
    )
    p.set_defaults(func=cmd_client_config)

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
        "--suite", action="append", dest="suites", metavar="SUITE", help="suite (repeatable; default stable)"
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="build a demo release folder and serve it (what `make run` does)")
    p.add_argument(
        "--dir", default=".ghapt/demo", help="where the demo's releases, state and client files go"
    )
    _add_settings(p, {k: v for k, v in _SETTING_FLAGS.items() if k in ("--releases", "--state")})
    _add_settings(p, _SERVE_FLAGS)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    # The handlers log JSON and emit EMF metrics for CloudWatch; on a terminal, only warnings matter.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "DEBUG" if args.verbose else "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        settings = load_settings(args, env)
        return int(args.func(args, settings, env))
    except ConfigError as exc:
        print(f"ghapt: configuration error: {exc}", file=sys.stderr)
        return 2
    except GhaptError as exc:
        print(f"ghapt: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
