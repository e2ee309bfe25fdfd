"""Routing rules: which suites (bookworm, jammy, noble...) each release asset goes to.

One readable syntax, the same in ``GHAPT_ROUTES``, ``--routes`` and the SAM ``Routes``
parameter::

    version=*~jammy* -> jammy; version=*+deb12* -> bookworm; asset=*_noble_* -> noble

A rule is one or more conditions ``FIELD=GLOB`` (all must hold), ``->``, and one or more
suites (spaces or commas between them). Rules are separated by ``;`` or new lines. An asset
goes to every suite of every rule it matches; an asset no rule matches goes to the default
suite (``GHAPT_SUITE``), as without rules. A pre-release goes to each suite's pre-release twin
(``jammy-prerelease``; the default suite's twin is ``GHAPT_PRERELEASE_SUITE``).

Fields: ``version`` and ``package`` come from the control data, which GitHub never rewrites,
so ``version`` is the recommended basis (``~jammy1``, ``+deb12u1``); ``asset`` is the asset's
name as GitHub lists it (``~ : %`` and spaces already turned into ``.``); ``tag`` the release
tag; ``repo`` the source repository (OWNER/NAME, any case; the local folder has none). Globs
are ``fnmatch``'s: ``*``, ``?``, ``[...]``, case-sensitive except ``repo``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Protocol

from ghapt.core.model import Asset, DebInfo

FIELDS = ("version", "package", "asset", "tag", "repo")
_SUITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# Characters a pattern can never usefully hold, per field, and why.
_NEVER = {
    "asset": ("~:% ", "GitHub renames ~ : % and spaces in asset names to '.'"),
    "tag": ("~^:\\ ", "git tags cannot contain ~ ^ : \\ or spaces"),
    "version": (" ", "Debian versions contain no spaces"),
    "package": (" ", "package names contain no spaces"),
    "repo": (" ", "repository names contain no spaces"),
}
_RELEASE_PATH_RE = re.compile(r"^dists/([^/]+)/Release$")


class RoutingError(ValueError):
    """A rule that cannot be parsed or can never match; the message says which and why."""


@dataclass(frozen=True)
class Condition:
    field: str
    pattern: str

    def matches(self, facts: Mapping[str, str]) -> bool:
        value = facts.get(self.field, "")
        if self.field == "repo":
            return bool(value) and fnmatchcase(value.lower(), self.pattern.lower())
        return fnmatchcase(value, self.pattern)


@dataclass(frozen=True)
class RoutingRule:
    """One rule: its text as written (for reports), its conditions and its suites."""

    text: str
    conditions: tuple[Condition, ...]
    suites: tuple[str, ...]

    def matches(self, facts: Mapping[str, str]) -> bool:
        return all(c.matches(facts) for c in self.conditions)


def parse_routes(text: str, *, prerelease_suite: str = "prerelease") -> tuple[RoutingRule, ...]:
    """The rules in ``text`` (empty: none). Raises ``RoutingError`` naming the bad rule."""
    routes: list[RoutingRule] = []
    for raw in re.split(r"[;\n]", text):
        rule = raw.strip()
        if rule:
            routes.append(_parse_rule(rule, prerelease_suite))
    return tuple(routes)


def _parse_rule(rule: str, prerelease_suite: str) -> RoutingRule:
    lhs, arrow, rhs = rule.partition("->")
    if not arrow:
        raise RoutingError(
            f"rule {rule!r} has no '->': write FIELD=GLOB -> SUITE, e.g. version=*~jammy* -> jammy"
        )
    conditions = []
    for word in lhs.split():
        name, eq, pattern = word.partition("=")
        if not eq or name not in FIELDS:
            raise RoutingError(
                f"rule {rule!r}: {word!r} is not FIELD=GLOB with FIELD one of {', '.join(FIELDS)}"
            )
        if not pattern:
            raise RoutingError(f"rule {rule!r}: {name}= needs a pattern")
        bad, why = _NEVER[name]
        found = sorted({c for c in pattern if c in bad})
        if found:
            hint = " (match the version instead, e.g. version=*~jammy*)" if name == "asset" else ""
            raise RoutingError(
                f"rule {rule!r}: {name}={pattern} can never match because {why}: "
                f"remove {' '.join(repr(c) for c in found)}{hint}"
            )
        conditions.append(Condition(name, pattern))
    if not conditions:
        raise RoutingError(f"rule {rule!r} has no condition before '->'")
    suites = tuple(dict.fromkeys(s for s in re.split(r"[\s,]+", rhs.strip()) if s))
    if not suites:
        raise RoutingError(f"rule {rule!r} names no suite after '->'")
    for suite in suites:
        if not _SUITE_RE.match(suite):
            raise RoutingError(f"rule {rule!r}: {suite!r} is not a valid suite name")
        if suite == prerelease_suite or suite.endswith(f"-{prerelease_suite}"):
            base = suite.removesuffix(f"-{prerelease_suite}")
            raise RoutingError(
                f"rule {rule!r}: {suite!r} is a pre-release suite; route to {base!r} "
                f"and pre-releases go to its -{prerelease_suite} twin on their own"
            )
    return RoutingRule(" ".join(rule.split()), tuple(conditions), suites)


@dataclass(frozen=True)
class Routing:
    """The rules with the suite names they need; ``suites_for`` places one asset."""

    routes: tuple[RoutingRule, ...]
    default_suite: str
    prerelease_suite: str
    prereleases: bool  # whether the source has pre-releases at all (GitHub does, a folder does not)

    @classmethod
    def from_settings(cls, settings: _RoutingSettings) -> Routing:
        return cls(
            parse_routes(settings.routes, prerelease_suite=settings.prerelease_suite),
            settings.suite,
            settings.prerelease_suite,
            settings.backend != "local",
        )

    def prerelease_of(self, suite: str) -> str:
        """``jammy`` -> ``jammy-prerelease``; the default suite's twin is the pre-release suite."""
        return self.prerelease_suite if suite == self.default_suite else f"{suite}-{self.prerelease_suite}"

    @property
    def suites(self) -> tuple[str, ...]:
        """Every suite the index publishes (even empty ones, so clients never miss a Release)."""
        named = [self.default_suite, *(s for r in self.routes for s in r.suites)]
        if self.prereleases:
            named += [self.prerelease_of(s) for s in list(named)]
        rest = sorted(set(named) - {self.default_suite})
        return (self.default_suite, *rest)

    def suites_for(self, asset: Asset, deb: DebInfo) -> tuple[tuple[str, ...], tuple[RoutingRule, ...]]:
        """The suites ``asset`` goes to, and the rules that sent it there (none: its own suite)."""
        facts = asset_facts(asset, deb)
        matched = tuple(r for r in self.routes if r.matches(facts))
        if not matched:
            return (asset.suite,), ()
        suites = dict.fromkeys(s for r in matched for s in r.suites)
        if self.prereleases and asset.suite == self.prerelease_suite:
            return tuple(sorted(self.prerelease_of(s) for s in suites)), matched
        return tuple(sorted(suites)), matched


class _RoutingSettings(Protocol):
    """What ``Routing.from_settings`` reads (``ghapt.core.settings.Settings`` has it)."""

    @property
    def routes(self) -> str: ...
    @property
    def suite(self) -> str: ...
    @property
    def prerelease_suite(self) -> str: ...
    @property
    def backend(self) -> str: ...


def asset_facts(asset: Asset, deb: DebInfo) -> dict[str, str]:
    """The values rules match: control data (never renamed) and release data (as GitHub lists it)."""
    return {
        "version": deb.version.strip(),
        "package": deb.package.strip(),
        "asset": asset.name,
        "tag": asset.release,
        "repo": asset.locator.get("repo", ""),
    }


def published_suites(paths: Iterable[str]) -> list[str]:
    """The suites a tree of files (a branch snapshot) has a ``dists/<suite>/Release`` for, sorted."""
    return sorted({m.group(1) for p in paths if (m := _RELEASE_PATH_RE.match(p))})


def suites_listing(routing: Routing, paths: Iterable[str]) -> dict[str, object]:
    """``dists/_suites.json``: every published suite, the default one, and each one's pre-release twin."""
    suites = published_suites(paths)
    return {
        "default": routing.default_suite,
        "suites": suites,
        "prerelease": {s: routing.prerelease_of(s) for s in suites if routing.prerelease_of(s) in suites},
    }
