"""A small GitHub REST client: auth, pagination, retries, rate limits, ETags and asset reads.

Why a hand-written client: ghapt needs a handful of endpoints, but each has a trap that a
generic wrapper hides (see the GitHub section of FACTS.md):

* ``Link: rel="next"`` is followed exactly as given; it may point at ``/repositories/{id}``.
* Transient failures (5xx, timeouts, dropped connections) are retried with bounded exponential
  backoff; rate limits (403/429 with ``x-ratelimit-remaining: 0`` or ``retry-after``) are
  waited out only up to ``rate_limit_cap`` seconds, beyond that ``RateLimited`` tells the
  caller when to come back instead of burning a Lambda's time sleeping.
* GETs whose results are re-read often (the branch ref, release listings) use ``If-None-Match``:
  a 304 costs nothing against the rate limit and returns the cached body.
* Release asset bytes live on a storage host behind a 302 with a short-lived signed URL. That
  host rejects an ``Authorization`` header with 400, so storage reads go through a separate
  session that never carries (nor re-adds, via redirects or ``.netrc``) any credential.
* Tokens never appear in logs or exception messages: they only ever travel inside an auth
  object that sets the header on the prepared request. Signed storage URLs are logged without
  their query string.
* Two profiles (``ClientProfile``): the indexer's is patient (long timeouts, retries, waits out
  short rate limits); the serving profile of the metadata and pool functions has short
  timeouts, one retry, never waits on a rate limit, and a total ``budget`` per call well under
  the function's timeout, after which ``Unavailable`` (503 + ``Retry-After``) answers instead
  of Lambda killing the function (API Gateway would say 502).

Every HTTP exchange is counted in ``stats`` and reported to ``on_call(method, url, status)``
(status 0 for a connection error) so benchmarks can count API calls and bytes.
"""

from __future__ import annotations

import email.utils
import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin, urlsplit

import requests
import urllib3
from requests.auth import AuthBase

from ghapt.core.errors import RateLimited, Unavailable, UpstreamError
from ghapt.github.auth import Auth

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_REDIRECTS = (301, 302, 303, 307, 308)
_ETAG_CACHE_SIZE = 512

# When the current call (one request served, in this thread or task) must be done by; None: no
# deadline. A context variable, so concurrent requests of a threaded server never share it.
_DEADLINE: ContextVar[float | None] = ContextVar("ghapt_github_deadline", default=None)


@dataclass(frozen=True)
class ClientProfile:
    """How patient a ``GitHubClient`` is. ``bootstrap.Services`` picks one per use."""

    connect_timeout: float
    read_timeout: float
    max_retries: int
    backoff_base: float
    backoff_max: float
    rate_limit_cap: float  # the longest rate-limit wait worth sleeping through; 0 never waits
    max_rate_limit_waits: int
    budget: float | None  # seconds one call (``within_budget``) may spend on GitHub; None: no limit
    budget_retry_after: float  # the Retry-After of a 503 when the budget runs out

    def client_kwargs(self) -> dict[str, Any]:
        """The ``GitHubClient`` keyword arguments of this profile."""
        values = asdict(self)
        values["timeout"] = (values.pop("connect_timeout"), values.pop("read_timeout"))
        return values


# The indexer: minutes of patience are fine in the background, and a rate limit is waited out
# up to a minute (longer ones fail the rebuild, which SQS retries).
PATIENT = ClientProfile(
    connect_timeout=10.0,
    read_timeout=60.0,
    max_retries=3,
    backoff_base=0.5,
    backoff_max=8.0,
    rate_limit_cap=60.0,
    max_rate_limit_waits=3,
    budget=None,
    budget_retry_after=60.0,
)

# The metadata and pool functions (Timeout: 20 s) and any other request path: a served request
# spends at most ``budget`` seconds on GitHub, retries once, and never sleeps on a rate limit;
# it answers 503 with Retry-After instead. 8 s leaves the rest of the 20 s for a cold start and
# Secrets Manager.
SERVING = ClientProfile(
    connect_timeout=2.0,
    read_timeout=4.0,
    max_retries=1,
    backoff_base=0.2,
    backoff_max=0.2,
    rate_limit_cap=0.0,
    max_rate_limit_waits=0,
    budget=8.0,
    budget_retry_after=5.0,
)


class GitHubError(UpstreamError):
    """A GitHub request failed for good: names the method, path, status and GitHub's message.

    ``status_code`` is the HTTP status (0 for a connection failure); ``gh_message`` is the
    ``message`` field of GitHub's JSON error body, when there was one."""

    def __init__(self, method: str, path: str, status_code: int, gh_message: str = "") -> None:
        detail = f": {gh_message}" if gh_message else ""
        super().__init__(f"GitHub {method} {path} failed with {status_code or 'no answer'}{detail}")
        self.method = method
        self.path = path
        self.status_code = status_code
        self.gh_message = gh_message


class GitHubUnavailable(GitHubError, Unavailable):
    """GitHub did not answer (connection failures, timeouts, 5xx) after the retries: 503, try
    later. ``status_code`` is GitHub's 5xx, or 0 when there was no answer."""

    status = 503

    def __init__(self, method: str, path: str, why: str, retry_after: float, status_code: int = 0) -> None:
        GitHubError.__init__(self, method, path, status_code, why)
        self.retry_after = retry_after


class RangeIgnored(UpstreamError):
    """The storage host answered a Range request with the whole file (200): stream instead."""


@dataclass
class ClientStats:
    """Counters for benchmarks: every HTTP exchange, retries included."""

    calls: int = 0
    api_calls: int = 0
    storage_calls: int = 0
    not_modified: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    bytes_downloaded: int = 0
    rate_limit_remaining: int | None = None


class _SetAuthorization(AuthBase):
    """Sets the header on the prepared request; passing an auth object also stops ``.netrc``."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self._value
        return r

    def __repr__(self) -> str:
        return "<authorization ***>"


class _NoAuthorization(AuthBase):
    """For storage reads: makes sure no Authorization header goes out."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.pop("Authorization", None)
        return r


class _Session(requests.Session):
    """A session that strips Authorization when a redirect changes host and never re-adds it.

    ``requests`` would otherwise look the new host up in ``~/.netrc`` and add credentials."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        original = response.request.url or ""
        strip = self.should_strip_auth(original, prepared_request.url or "")  # type: ignore[no-untyped-call]
        if "Authorization" in prepared_request.headers and strip:
            del prepared_request.headers["Authorization"]


class _StorageSession(_Session):
    """The storage host's session: no Authorization header, ever, including after redirects."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        prepared_request.headers.pop("Authorization", None)


# --- the client -----------------------------------------------------------------------------
def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, f"{(parts.hostname or '').lower()}:{port}"


def _redact(url: str) -> str:
    """A URL without its query string (signed storage URLs carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _gh_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return ""


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class GitHubClient:
    """The REST client. ``api_url`` is ``https://api.github.com`` or ``https://HOST/api/v3`` (GHES)."""

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        auth: Auth | None = None,
        *,
        session: requests.Session | None = None,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        rate_limit_cap: float = 60.0,
        max_rate_limit_waits: int = 3,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        budget: float | None = None,
        budget_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_call: Callable[[str, str, int], None] | None = None,
        user_agent: str = "ghapt",
    ) -> None:
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.auth = auth
        self.session = session or _Session()
        self.storage_session = _StorageSession()
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rate_limit_cap = rate_limit_cap
        self.max_rate_limit_waits = max_rate_limit_waits
        self.timeout = timeout
        self.budget = budget
        self.budget_retry_after = budget_retry_after
        self.sleep = sleep
        self.clock = clock
        self.monotonic = monotonic
        self.on_call = on_call
        self.user_agent = user_agent
        self.stats = ClientStats()
        self._lock = threading.Lock()
        self._etags: OrderedDict[str, tuple[str, bytes, str | None]] = OrderedDict()
        self._api_origin = _origin(self.api_url)

    # --- time budget ------------------------------------------------------------------------
    @contextmanager
    def within_budget(self) -> Iterator[None]:
        """Every request made inside shares one deadline, ``budget`` seconds from now.

        Without an open budget each request gets its own. A nested budget never extends an
        outer one. No budget configured (the indexer): nothing changes."""
        if self.budget is None:
            yield
            return
        outer = _DEADLINE.get()
        deadline = self.monotonic() + self.budget
        token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
        try:
            yield
        finally:
            _DEADLINE.reset(token)

    def _deadline(self) -> float | None:
        deadline = _DEADLINE.get()
        if deadline is None and self.budget is not None:
            deadline = self.monotonic() + self.budget
        return deadline

    def _attempt_timeout(self, deadline: float | None, method: str, url: str) -> float | tuple[float, float]:
        """This attempt's (connect, read) timeouts, cut to what is left of the budget."""
        if deadline is None:
            return self.timeout
        remaining = deadline - self.monotonic()
        if remaining <= 0:
            raise self._out_of_time(method, url)
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
        return (min(connect, remaining), min(read, remaining))

    def _out_of_time(self, method: str, url: str) -> GitHubUnavailable:
        return GitHubUnavailable(
            method,
            self._display_path(url),
            "no answer within the request's time budget",
            self.budget_retry_after,
        )

    # --- URLs -------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        """An absolute API URL; absolute URLs (from ``Link``) must stay on the API's host."""
        if path.startswith(("http://", "https://")):
            if not self.is_api_url(path):
                raise UpstreamError(f"refusing to send GitHub credentials to {_redact(path)}")
            return path
        return f"{self.api_url}/{path.lstrip('/')}"

    def is_api_url(self, url: str) -> bool:
        return _origin(url) == self._api_origin

    def _display_path(self, url: str) -> str:
        path = urlsplit(url).path
        prefix = urlsplit(self.api_url).path.rstrip("/")
        if self.is_api_url(url) and prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        return path if self.is_api_url(url) else _redact(url)

    # --- JSON API ---------------------------------------------------------------------------
    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        cache: bool = False,
        allow_404: bool = False,
        accept: str | None = None,
    ) -> Any:
        """GET a JSON document; ``cache`` makes it conditional; ``allow_404`` returns None on 404;
        ``accept`` asks for another media type than GitHub's default JSON."""
        body, _link = self._get_json_page(
            self.url(path), params, cache=cache, allow_404=allow_404, accept=accept
        )
        return body

    def post_json(self, path: str, body: Any) -> Any:
        return self._write("POST", path, body)

    def patch_json(self, path: str, body: Any) -> Any:
        return self._write("PATCH", path, body)

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, cache: bool = False
    ) -> list[Any]:
        """Every item of a list endpoint: ``per_page=100``, then ``Link: rel="next"`` as given."""
        url: str | None = self.url(path)
        query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
        items: list[Any] = []
        seen: set[str] = set()
        while url:
            if url in seen:
                raise UpstreamError(f"GitHub pagination loops at {self._display_path(url)}")
            seen.add(url)
            page, url = self._get_json_page(self.url(url), query, cache=cache, allow_404=False)
            query = None  # the next link already carries every parameter
            if not isinstance(page, list):
                raise UpstreamError(f"GitHub {self._display_path(path)} did not return a list")
            items.extend(page)
        return items

    def exchange_installation_token(self, installation_id: str, app_jwt: str) -> tuple[str, float]:
        """``POST /app/installations/{id}/access_tokens`` with the app JWT: (token, expires_at)."""
        url = self.url(f"app/installations/{quote(str(installation_id), safe='')}/access_tokens")
        resp = self.request("POST", url, authorization=lambda: f"Bearer {app_jwt}", json_body={})
        if resp.status_code != 201 and resp.status_code != 200:
            raise self._error("POST", url, resp)
        body = resp.json()
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise UpstreamError("GitHub returned no installation token")
        expires = body.get("expires_at")
        expires_at = _parse_time(expires) if isinstance(expires, str) else self.clock() + 3600
        log.info("GitHub App installation %s: new token until %s", installation_id, expires)
        return token, expires_at

    def _write(self, method: str, path: str, body: Any) -> Any:
        url = self.url(path)
        resp = self.request(method, url, authorization=self._api_authorization, json_body=body)
        if resp.status_code not in (200, 201):
            raise self._error(method, url, resp)
        return resp.json() if resp.content else None

    def _get_json_page(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        *,
        cache: bool,
        allow_404: bool,
        accept: str | None = None,
    ) -> tuple[Any, str | None]:
        key = requests.Request("GET", url, params=params).prepare().url or url
        headers: dict[str, str] = {"Accept": accept} if accept else {}
        cached = None
        if cache:
            with self._lock:
                cached = self._etags.get(key)
                if cached is not None:
                    self._etags.move_to_end(key)
            if cached is not None:
                headers["If-None-Match"] = cached[0]
        resp = self.request("GET", url, params=params, headers=headers, authorization=self._api_authorization)
        if resp.status_code == 304 and cached is not None:
            return json.loads(cached[1]), cached[2]
        if resp.status_code == 404 and allow_404:
            return None, None
        if resp.status_code != 200:
            raise self._error("GET", url, resp)
        link = resp.links.get("next", {}).get("url")
        etag = resp.headers.get("ETag")
        if cache and etag:
            with self._lock:
                self._etags[key] = (etag, resp.content, link)
                self._etags.move_to_end(key)
                while len(self._etags) > _ETAG_CACHE_SIZE:
                    self._etags.popitem(last=False)
        try:
            return resp.json(), link
        except ValueError:
            raise UpstreamError(f"GitHub GET {self._display_path(url)} returned invalid JSON") from None

    def _api_authorization(self) -> str | None:
        return self.auth.authorization(self) if self.auth is not None else None

    def get_raw(self, path: str, *, max_bytes: int | None = None) -> bytes:
        """GET an API resource's raw bytes (``application/vnd.github.raw+json``, e.g. a blob).

        ``max_bytes`` caps the body: a larger ``Content-Length`` is refused before anything is
        read, and the read itself stops one byte past the cap."""
        url = self.url(path)
        resp = self.request(
            "GET",
            url,
            headers={"Accept": "application/vnd.github.raw+json", "Accept-Encoding": "identity"},
            authorization=self._api_authorization,
            stream=True,
            count_body=False,
        )
        try:
            if resp.status_code != 200:
                raise self._error("GET", url, resp)
            declared = resp.headers.get("Content-Length", "")
            if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
                raise UpstreamError(
                    f"GitHub GET {self._display_path(url)}: {declared} bytes, expected {max_bytes}"
                )
            limit = None if max_bytes is None else max_bytes + 1
            try:
                data = resp.raw.read(limit, decode_content=True) if limit is not None else resp.content
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise GitHubUnavailable(
                    "GET", self._display_path(url), type(exc).__name__, self.budget_retry_after
                ) from None
            if max_bytes is not None and len(data) > max_bytes:
                raise UpstreamError(
                    f"GitHub GET {self._display_path(url)}: more than the expected {max_bytes} bytes"
                )
            self.count_bytes(len(data))
            return data
        finally:
            resp.close()

    # --- release asset bytes ------------------------------------------------------------------
    def asset_url(self, repo: str, asset_id: int | str) -> str:
        """The short-lived storage URL of a release asset (the redirect target, not followed).

        If GitHub answers 200 (it may serve the bytes itself), the API URL is returned and
        ``open_stream``/``fetch_range`` will read it with credentials. Never hand that URL to a
        client: ``storage_url`` is for redirects."""
        return self._asset_location(repo, asset_id, redirect_only=False)

    def storage_url(self, repo: str, asset_id: int | str) -> str:
        """The storage host's signed URL of a release asset, for a client to be redirected to.

        GitHub documents that it may answer the download with 200 and the bytes instead of a
        302. That answer has no URL a client could use (the API URL needs our credentials), so
        it is asked once more, then ``Unavailable`` (503) is raised: never an API URL."""
        return self._asset_location(repo, asset_id, redirect_only=True)

    def _asset_location(self, repo: str, asset_id: int | str, *, redirect_only: bool) -> str:
        url = self.url(f"repos/{quote(repo, safe='/')}/releases/assets/{quote(str(asset_id), safe='')}")
        served_directly = 0
        for _hop in range(4):
            resp = self.request(
                "GET",
                url,
                headers={"Accept": "application/octet-stream"},
                authorization=self._api_authorization,
                allow_redirects=False,
                stream=True,
            )
            try:
                if resp.status_code in _REDIRECTS and resp.headers.get("Location"):
                    target = urljoin(url, resp.headers["Location"])
                    if self.is_api_url(target):
                        url = target  # e.g. a renamed repository: still the API, follow with auth
                        continue
                    return target
                if resp.status_code == 200:
                    if not redirect_only:
                        return url
                    served_directly += 1
                    if served_directly < 2:
                        continue  # once more: GitHub usually redirects
                    raise Unavailable(
                        f"GitHub served asset {asset_id} of {repo} itself instead of redirecting to "
                        "its storage host: there is no URL to send the client to",
                        self.budget_retry_after if self.budget is not None else 60.0,
                    )
                raise self._error("GET", url, resp)
            finally:
                resp.close()
        raise UpstreamError(f"GitHub GET {self._display_path(url)}: too many redirects")

    @contextmanager
    def open_stream(self, url: str) -> Iterator[BinaryIO]:
        """A buffered, byte-counting stream of the whole file at ``url``; closes on exit."""
        resp = self._get_bytes(url, {})
        try:
            if resp.status_code != 200:
                raise self._error("GET", url, resp)
            resp.raw.decode_content = True
            reader = io.BufferedReader(_CountingRaw(resp, self, url), buffer_size=1 << 20)
            yield reader
        finally:
            resp.close()

    def fetch_range(self, url: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive). Raises ``RangeIgnored`` when the host sends it all."""
        if start < 0 or end < start:
            raise ValueError(f"bad byte range {start}-{end}")
        resp = self._get_bytes(url, {"Range": f"bytes={start}-{end}"})
        try:
            if resp.status_code == 200:
                raise RangeIgnored(f"{_redact(url)} ignores Range requests")
            if resp.status_code != 206:
                raise self._error("GET", url, resp)
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                raise UpstreamError(f"{_redact(url)} answered Range {start}-{end} with {content_range!r}")
            data = resp.content
            self.count_bytes(len(data))
            if len(data) > end - start + 1:
                raise UpstreamError(f"{_redact(url)} sent more than the requested range")
            return data
        finally:
            resp.close()

    def _get_bytes(self, url: str, headers: Mapping[str, str]) -> requests.Response:
        """GET ``url`` streaming: with credentials on the API host, with none anywhere else."""
        hdrs = {"Accept-Encoding": "identity", **headers}
        if self.is_api_url(url):
            resp = self.request(
                "GET",
                url,
                headers={"Accept": "application/octet-stream", **hdrs},
                authorization=self._api_authorization,
                allow_redirects=False,
                stream=True,
                count_body=False,
            )
            if resp.status_code not in _REDIRECTS:
                return resp
            resp.close()
            target = urljoin(url, resp.headers.get("Location", ""))
            if self.is_api_url(target):
                raise UpstreamError(f"GitHub GET {self._display_path(url)}: unexpected redirect")
            url = target
        return self.request("GET", url, headers=hdrs, authorization=None, stream=True, count_body=False)

    # --- transport ----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        authorization: Callable[[], str | None] | None,
        allow_redirects: bool = True,
        stream: bool = False,
        count_body: bool = True,
    ) -> requests.Response:
        """One logical request with retries. ``authorization`` None means a storage request."""
        api = authorization is not None
        attempt = 0
        waits = 0
        reauthed = False
        deadline = self._deadline()
        while True:
            timeout = self._attempt_timeout(deadline, method, url)
            if api:
                assert authorization is not None
                value = authorization()
                auth: AuthBase = _SetAuthorization(value) if value else _NoAuthorization()
                hdrs = {
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                    "User-Agent": self.user_agent,
                    **(headers or {}),
                }
                session: requests.Session = self.session
            else:
                auth = _NoAuthorization()
                hdrs = {"User-Agent": self.user_agent, **(headers or {})}
                session = self.storage_session
            try:
                resp = session.request(
                    method,
                    url,
                    params=params,
                    headers=hdrs,
                    json=json_body,
                    auth=auth,
                    timeout=timeout,
                    allow_redirects=allow_redirects,
                    stream=stream,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._record(method, url, 0, api)
                if attempt >= self.max_retries:
                    # The exception text may carry a signed URL: only its kind goes out.
                    raise GitHubUnavailable(
                        method, self._display_path(url), type(exc).__name__, self.budget_retry_after
                    ) from None
                self._backoff(method, url, attempt, type(exc).__name__, deadline)
                attempt += 1
                continue
            nbytes = len(resp.content) if count_body and not stream else 0
            self._record(method, url, resp.status_code, api, nbytes, resp)
            status = resp.status_code
            if status >= 500:
                if attempt >= self.max_retries:
                    return resp
                resp.close()
                self._backoff(method, url, attempt, str(status), deadline)
                attempt += 1
                continue
            if api and status in (403, 429):
                wait = self._rate_limit_wait(resp)
                if wait is not None:
                    path = self._display_path(url)
                    out_of_time = deadline is not None and self.monotonic() + wait >= deadline
                    if wait > self.rate_limit_cap or waits >= self.max_rate_limit_waits or out_of_time:
                        resp.close()
                        raise RateLimited(
                            f"GitHub rate limit hit on {method} {path}: retry in {wait:.0f} s", wait
                        )
                    resp.close()
                    log.warning("GitHub rate limit on %s %s: waiting %.0f s", method, path, wait)
                    with self._lock:
                        self.stats.rate_limit_waits += 1
                    self.sleep(wait)
                    waits += 1
                    continue
            if (
                status == 401
                and not reauthed
                and authorization == self._api_authorization
                and self.auth is not None
                and self.auth.invalidate()
            ):
                # The cached installation token may have been revoked: mint a new one, once.
                resp.close()
                reauthed = True
                continue
            return resp

    def _backoff(self, method: str, url: str, attempt: int, why: str, deadline: float | None) -> None:
        delay = min(self.backoff_base * (2**attempt), self.backoff_max)
        if deadline is not None and self.monotonic() + delay >= deadline:
            raise self._out_of_time(method, url)
        log.warning("GitHub %s %s: %s, retry in %.1f s", method, self._display_path(url), why, delay)
        with self._lock:
            self.stats.retries += 1
        self.sleep(delay)

    def _rate_limit_wait(self, resp: requests.Response) -> float | None:
        """Seconds to wait when ``resp`` is a rate-limit answer; None for a plain 403/429."""
        h = resp.headers
        retry_after = h.get("retry-after")
        if retry_after is not None:
            try:
                return max(float(retry_after), 0.0)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(retry_after).timestamp()
                    return max(when - self.clock(), 0.0)
                except (TypeError, ValueError):
                    return 60.0
        if h.get("x-ratelimit-remaining") == "0":
            try:
                return max(float(h.get("x-ratelimit-reset", "")) - self.clock(), 0.0) + 1.0
            except ValueError:
                return 60.0
        if resp.status_code == 429 or "rate limit" in _gh_message(resp).lower():
            return 60.0  # secondary limit without headers: GitHub says wait at least a minute
        return None

    def _record(
        self,
        method: str,
        url: str,
        status: int,
        api: bool,
        nbytes: int = 0,
        resp: requests.Response | None = None,
    ) -> None:
        with self._lock:
            self.stats.calls += 1
            if api:
                self.stats.api_calls += 1
            else:
                self.stats.storage_calls += 1
            if status == 304:
                self.stats.not_modified += 1
            self.stats.bytes_downloaded += nbytes
            if resp is not None and api:
                remaining = resp.headers.get("x-ratelimit-remaining")
                if remaining is not None and remaining.isdigit():
                    self.stats.rate_limit_remaining = int(remaining)
        shown = url if api else _redact(url)
        log.debug("GitHub %s %s -> %s", method, shown, status or "no answer")
        if self.on_call is not None:
            self.on_call(method, shown, status)

    def count_bytes(self, n: int) -> None:
        with self._lock:
            self.stats.bytes_downloaded += n

    def _error(self, method: str, url: str, resp: requests.Response) -> GitHubError:
        if resp.status_code >= 500:
            return GitHubUnavailable(
                method, self._display_path(url), _gh_message(resp), self.budget_retry_after, resp.status_code
            )
        return GitHubError(method, self._display_path(url), resp.status_code, _gh_message(resp))


class _CountingRaw(io.RawIOBase):
    """Reads a streamed response body, counting bytes and turning transport errors into ours."""

    def __init__(self, resp: requests.Response, client: GitHubClient, url: str) -> None:
        self._resp = resp
        self._client = client
        self._url = url

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._resp.raw.read(len(buffer))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UpstreamError(f"reading {_redact(self._url)} failed: {type(exc).__name__}") from None
        n = len(data)
        buffer[:n] = data
        self._client.count_bytes(n)
        return n

    def close(self) -> None:
        self._resp.close()
        super().close()
