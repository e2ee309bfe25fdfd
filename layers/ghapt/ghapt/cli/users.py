"""``ghapt users``: Basic Auth users in the local file or the Lambda's Secrets Manager secret."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Mapping
from typing import Any

from ghapt.cli.options import (
    SETTING_FLAGS,
    USERS_SECRET_FLAG,
    Subparsers,
    add_settings,
)
from ghapt.core.errors import ConfigError
from ghapt.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    from ghapt.auth.passwords import generate_password
    from ghapt.auth.userfile import UserFile

    users: Any
    if settings.users_secret_arn:
        from ghapt.aws.usersecret import SecretUsers

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


def register(sub: Subparsers) -> None:
    p = sub.add_parser("users", help="manage Basic Auth users (salted scrypt hashes)")
    users_sub = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    for action, helptext in (
        ("add", "add or replace a user"),
        ("remove", "remove a user"),
        ("list", "list users"),
    ):
        q = users_sub.add_parser(action, help=helptext)
        if action != "list":
            q.add_argument("name", help="the user's login (what auth.conf calls `login`)")
        if action == "add":
            q.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
            q.add_argument("--generate", action="store_true", help="generate a strong password and print it")
        add_settings(q, {k: v for k, v in SETTING_FLAGS.items() if k in ("--state", "--users-file")})
        add_settings(q, USERS_SECRET_FLAG)
    p.set_defaults(func=run)
