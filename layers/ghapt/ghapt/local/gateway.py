"""A local stand-in for API Gateway, as a WSGI app: authorizer first, then the route.

Each HTTP request becomes the REST API proxy event that API Gateway would send; routes that
need authentication first go through the REQUEST authorizer handler, whose policy is honoured
(and cached per Authorization header for the TTL, as API Gateway does); then the route's Lambda
handler runs, and its response (status, headers, base64 bodies) is mapped back to HTTP. The
handlers are the very functions the Lambda functions run.

Like API Gateway, it bounds request bodies before reading them (per route, refused with a 413
by ``Content-Length`` or once a chunked body passes the cap), tells the handlers the domain
it answered on (``requestContext.domainName``: the configured listen address, never the
client's ``Host``), and answers HEAD with the headers and ``Content-Length`` of GET.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
import io
import itertools
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ghapt.aws import handlers
from ghapt.bootstrap import Services
from ghapt.core.errors import GhaptError
from ghapt.local.folder import FolderReleaseSource
from ghapt.local.signedurls import ASSET_PREFIX
from ghapt.webhook import MAX_BODY as WEBHOOK_MAX_BODY

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
LambdaHandler = Callable[[dict[str, Any], Any], Any]
ACCOUNT = "000000000000"
API_ID = "ghaptlocal"
SMALL_BODY = 64 * 1024  # routes that take no payload still get a little room
READ_CHUNK = 64 * 1024
DECODED_CACHE_BYTES = 32 * 1024 * 1024
DECODED_MIN_TEXT = 512  # smaller bodies decode faster than they are looked up
WRAPPED_BODY = 16 * 1024  # bodies from this size on go to the server as a file (no copy)


@dataclass(frozen=True)
class Route:
    path: str  # exact path, or a prefix ending in "/" for {proxy+} routes
    methods: frozenset[str]
    handler: str  # attribute of ghapt.handlers, looked up per call so tests can patch it
    auth: bool
    max_body: int = SMALL_BODY  # larger bodies are refused with a 413 before they are read

    @functools.cached_property
    def proxy(self) -> bool:
        """A ``{proxy+}`` route (``/dists/``); the root ``/`` is an exact route."""
        return self.path.endswith("/") and self.path != "/"

    @functools.cached_property
    def resource(self) -> str:
        return f"{self.path}{{proxy+}}" if self.proxy else self.path

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) and len(path) > len(self.path) if self.proxy else path == self.path


ROUTES = (
    Route("/public.key", frozenset({"GET", "HEAD"}), "publickey_handler", auth=False),
    Route("/webhook", frozenset({"POST"}), "webhook_handler", auth=False, max_body=WEBHOOK_MAX_BODY),
    Route("/dists/", frozenset({"GET", "HEAD"}), "metadata_handler", auth=True),
    Route("/pool/", frozenset({"GET", "HEAD"}), "pool_handler", auth=True),
    Route("/token", frozenset({"POST"}), "token_handler", auth=True),
    Route("/", frozenset({"GET", "HEAD"}), "metadata_handler", auth=True),
    Route("/index.html", frozenset({"GET", "HEAD"}), "metadata_handler", auth=True),
)


class _RequestIds:
    """Ids shaped like UUIDs, as Lambda and API Gateway give each request, unique in this
    server: a random prefix drawn per process (again in a forked child) and a counter. A
    ``uuid4`` per id costs a system call, twice per request."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        h = f"{random.SystemRandom().getrandbits(80):020x}"
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-"
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) % (1 << 48):012x}"


request_id = _RequestIds()


class LambdaContext:
    """Just enough of Lambda's context object for Powertools."""

    def __init__(self, name: str) -> None:
        self.function_name = f"ghapt-{name}"
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:{ACCOUNT}:function:{self.function_name}"
        self.memory_limit_in_mb = 128
        self.aws_request_id = request_id()
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


MAX_BODY = max(r.max_body for r in ROUTES)  # what the HTTP server itself should accept at most


class DecodedBodies:
    """Base64 response bodies decoded once, keyed by the base64 text itself.

    The metadata handler answers a file with the very base64 string its branch cache keeps for
    that blob, so the same text comes back request after request; decoding 100 KB of it costs
    far more than the handler's whole run. Keyed by content, an entry can never be wrong: a
    new commit's file is another text. A Python string keeps its hash, so looking up the
    handler's cached string costs no pass over it. Least recently used entries go first once
    the texts and bytes kept pass ``max_bytes``; texts shorter than ``min_text`` are just
    decoded."""

    def __init__(self, max_bytes: int = DECODED_CACHE_BYTES, min_text: int = DECODED_MIN_TEXT) -> None:
        self.max_bytes = max_bytes
        self.min_text = min_text
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def decode(self, text: str) -> bytes:
        if len(text) < self.min_text:
            return base64.b64decode(text)
        with self._lock:
            data = self._entries.get(text)
            if data is not None:
                self._entries.move_to_end(text)
                return data
        data = base64.b64decode(text)
        cost = len(text) + len(data)
        if cost <= self.max_bytes // 4:
            with self._lock:
                if text not in self._entries:
                    self._entries[text] = data
                    self._bytes += cost
                    while self._bytes > self.max_bytes:
                        old_text, old = self._entries.popitem(last=False)
                        self._bytes -= len(old_text) + len(old)
        return data


class ApiGateway:
    """The WSGI application. ``stage`` only shapes ARNs and request contexts.

    ``domain`` (host:port) is where clients reach this server, for redirects to itself; by
    default it is the WSGI server's own ``SERVER_NAME:SERVER_PORT``, never the ``Host`` header."""

    def __init__(
        self,
        services: Services,
        *,
        stage: str = "local",
        auth_ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        access_log: list[tuple[str, str, int]] | None = None,
        domain: str | None = None,
    ) -> None:
        handlers.configure(services)
        self.services = services
        self.stage = stage
        self.domain = domain
        self.auth_ttl = services.settings.auth_cache_seconds if auth_ttl is None else auth_ttl
        self.clock = clock
        self.access_log = access_log
        # Authorization header's hash -> (when, users file version it was made under, policy).
        self._policies: dict[str, tuple[float, object, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._users_seen: object = None  # the users file's version the cached policies were made with
        self.bodies = DecodedBodies()

    # --- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        raw_uri = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        if self.access_log is not None:
            log_list, inner = self.access_log, start_response

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                log_list.append((method, raw_uri, int(status.split()[0])))
                return inner(status, headers, exc_info) if exc_info else inner(status, headers)

        split = urlsplit(raw_uri)
        raw_path, query = split.path or "/", split.query
        result = self._dispatch(method, raw_path, query, environ, start_response)
        if method != "HEAD":
            return result
        # Every branch has set Content-Length to what GET would send; HEAD sends no body.
        close = getattr(result, "close", None)
        if close is not None:
            close()
        return [b""]

    def _dispatch(
        self, method: str, raw_path: str, query: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            if raw_path.startswith(ASSET_PREFIX):
                return self._asset(method, raw_path[len(ASSET_PREFIX) :], query, environ, start_response)
            route = next((r for r in ROUTES if r.matches(raw_path)), None)
            if route is None:
                return _text(start_response, 404, f"no route for {raw_path}\n")
            if method not in route.methods:
                return _text(start_response, 405, f"{method} is not allowed on {route.resource}\n")
            body = _read_body(environ, route.max_body)
            if body is None:
                return _text(
                    start_response,
                    413,
                    f"the body is larger than {route.max_body} bytes ({route.resource})\n",
                )
            event = self._event(route, method, raw_path, query, environ, body)
            del body  # the event holds the one copy from here on
            authorizer_context: dict[str, Any] = {}
            if route.auth:
                denied, authorizer_context = self._authorize(route, event)
                if denied is not None:
                    status, message, extra = denied
                    return _text(start_response, status, message, extra)
            event["requestContext"]["authorizer"] = authorizer_context
            result = getattr(handlers, route.handler)(event, LambdaContext(route.handler))
            return self._respond(result, method, start_response, environ)
        except Exception:
            log.exception("local gateway error")
            return _text(start_response, 500, "internal error\n")

    # --- API Gateway behaviour ------------------------------------------------------------------
    def _event(
        self,
        route: Route,
        method: str,
        raw_path: str,
        query: str,
        environ: dict[str, Any],
        body: bytes | bytearray,
    ) -> dict[str, Any]:
        headers = {_header_name(key): value for key, value in environ.items() if key[:5] == "HTTP_"}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[_header_name(key)] = environ[key]
        # API Gateway says itself how the request reached it; so does this server. (Every
        # spelling of the client's header arrives here as this one name.)
        headers["X-Forwarded-Proto"] = environ.get("wsgi.url_scheme", "http")
        multi = {name: [value] for name, value in headers.items()}
        domain = (
            self.domain or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
        )
        text = _text_body(body)
        params = parse_qsl(query, keep_blank_values=True) if query else []
        path_params = {"proxy": unquote(raw_path[len(route.path) :])} if route.proxy else None
        return {
            "resource": route.resource,
            "path": raw_path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": multi,
            "queryStringParameters": dict(params) or None,
            "multiValueQueryStringParameters": _multi(params) or None,
            "pathParameters": path_params,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.resource,
                "httpMethod": method,
                "path": raw_path,
                "stage": self.stage,
                "domainName": domain,
                "requestId": request_id(),
                "accountId": ACCOUNT,
                "apiId": API_ID,
                "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "requestTimeEpoch": int(time.time() * 1000),
                "identity": {
                    "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                    "userAgent": headers.get("User-Agent"),
                },
            },
            # Text stays text (one copy of the body); anything else is base64, as API Gateway does.
            "body": (text if text is not None else base64.b64encode(body).decode()) if body else None,
            "isBase64Encoded": bool(body) and text is None,
        }

    def _method_arn(self, method: str, raw_path: str) -> str:
        return f"arn:aws:execute-api:local:{ACCOUNT}:{API_ID}/{self.stage}/{method}{raw_path}"

    def _authorize(
        self, route: Route, event: dict[str, Any]
    ) -> tuple[tuple[int, str, dict[str, str]] | None, dict[str, Any]]:
        """Returns (denial, context). Missing identity source → 401 without calling the authorizer."""
        header = event["headers"].get("Authorization")  # the one spelling ``_event`` gives it
        if not header:
            return self._unauthorized(), {}
        users = self._forget_policies_if_users_changed()
        method_arn = self._method_arn(event["httpMethod"], event["path"])
        cache_key = hashlib.sha256(header.encode("utf-8", "surrogateescape")).hexdigest()
        now = self.clock()
        with self._lock:
            cached = self._policies.get(cache_key)
        # Only a decision made under the users file as it is now: one made while the file was
        # changing (stored after the change dropped the others) must not outlive the old file.
        if cached is not None and cached[1] == users and now - cached[0] < self.auth_ttl:
            policy = cached[2]
        else:
            auth_event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                "resource": event["resource"],
                "path": event["path"],
                "httpMethod": event["httpMethod"],
                "headers": event["headers"],
                "multiValueHeaders": event["multiValueHeaders"],
                "queryStringParameters": event["queryStringParameters"],
                "multiValueQueryStringParameters": event["multiValueQueryStringParameters"],
                "pathParameters": event["pathParameters"],
                "stageVariables": None,
                "requestContext": event["requestContext"],
            }
            try:
                policy = handlers.authorizer_handler(auth_event, LambdaContext("authorizer"))
            except Exception as exc:  # noqa: BLE001 - API Gateway turns any authorizer failure into 401/500
                if str(exc) == "Unauthorized":
                    return self._unauthorized(), {}
                log.error("authorizer failed: %s", type(exc).__name__)
                return (500, "authorizer configuration error\n", {}), {}
            with self._lock:
                # Drop expired decisions so a long-running server does not keep every token seen.
                for key in [k for k, (t, _, _) in self._policies.items() if now - t >= self.auth_ttl]:
                    del self._policies[key]
                self._policies[cache_key] = (now, users, policy)
        if not _allows(policy, method_arn):
            return (403, "User is not authorized to access this resource with an explicit deny\n", {}), {}
        context = dict(policy.get("context") or {})
        context["principalId"] = policy.get("principalId")
        return None, context

    def _unauthorized(self) -> tuple[int, str, dict[str, str]]:
        return 401, "Unauthorized\n", {"WWW-Authenticate": f'Basic realm="{self.services.settings.realm}"'}

    def _forget_policies_if_users_changed(self) -> object:
        """Unlike API Gateway, the local server can see the users file change: drop every cached
        decision then, so a removed user or an old password is refused on the next request.
        Returns the users file's version, which a decision made now is tagged with."""
        try:
            version_of = getattr(self.services.authenticator.users, "version", None)
            version = version_of() if callable(version_of) else None
        except Exception:  # noqa: BLE001 - the authorizer reports a broken configuration itself (fail closed)
            version = None
        if version != self._users_seen:
            with self._lock:
                if version != self._users_seen:
                    self._policies.clear()
                    self._users_seen = version
        return version

    def _respond(
        self, result: dict[str, Any], method: str, start_response: StartResponse, environ: dict[str, Any]
    ) -> Iterable[bytes]:
        status = int(result.get("statusCode", 500))
        headers = [
            (name, v if type(v) is str else str(v))
            for name, values in (result.get("multiValueHeaders") or {}).items()
            for v in values
        ]
        single = result.get("headers")
        if single:
            seen = {n.lower() for n, _ in headers}
            headers += [(n, str(v)) for n, v in single.items() if n.lower() not in seen]
        body_field = result.get("body") or ""
        if result.get("isBase64Encoded"):
            body = self.bodies.decode(str(body_field))
        else:
            body = str(body_field).encode()
        if method == "HEAD":
            if not any(n.lower() == "content-length" for n, _ in headers):
                headers.append(("Content-Length", str(len(body))))
            body = b""
        start_response(_status_line(status), headers)
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and len(body) >= WRAPPED_BODY:
            # The server then sends straight from the body (a BytesIO shares its bytes) rather
            # than copying it into its output buffer first.
            return wrapper(io.BytesIO(body), READ_CHUNK)  # type: ignore[no-any-return]
        return [body]

    # --- the local pool's own storage: signed URLs, served without credentials ------------------
    def _asset(
        self, method: str, raw_rel: str, query: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        if method not in ("GET", "HEAD"):
            return _text(start_response, 405, "method not allowed\n")
        source = self.services.source
        if not isinstance(source, FolderReleaseSource):
            return _text(start_response, 404, "no local assets with this backend\n")
        try:
            rel, fingerprint = self.services.asset_urls.check(raw_rel, dict(parse_qsl(query)))
            path = source.resolve(rel)
            if not path.is_file():
                return _text(start_response, 404, "asset no longer exists\n")
            if fingerprint and source.fingerprint_of(rel) != fingerprint:
                return _text(
                    start_response, 410, "asset changed since it was indexed; a rebuild is pending\n"
                )
        except GhaptError as exc:
            return _text(start_response, exc.status, f"{exc}\n")
        size = path.stat().st_size
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/vnd.debian.binary-package"),
                ("Content-Length", str(size)),
                ("Cache-Control", "no-store"),
            ],
        )
        if method == "HEAD":
            return [b""]
        fh = path.open("rb")
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(fh, 1 << 20) if wrapper else iter(lambda: fh.read(1 << 20), b"")


def _allows(policy: dict[str, Any], method_arn: str) -> bool:
    """IAM evaluation as API Gateway does it: an explicit Deny wins; else some Allow must match."""
    statements = (policy.get("policyDocument") or {}).get("Statement") or []
    allowed = False
    for st in statements:
        resources = st.get("Resource")
        resources = [resources] if isinstance(resources, str) else resources or []
        if any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            if st.get("Effect") == "Deny":
                return False
            allowed = allowed or st.get("Effect") == "Allow"
    return allowed


@functools.lru_cache(maxsize=1024)
def _header_name(key: str) -> str:
    """The header name API Gateway would show for a WSGI environ key of a header
    (``HTTP_USER_AGENT`` is ``User-Agent``); remembered, as the same few come with every request."""
    return "-".join(p.capitalize() for p in key.removeprefix("HTTP_").split("_"))


def _read_body(environ: dict[str, Any], limit: int) -> bytearray | None:
    """The request body, or None when it is larger than ``limit``: refused by its declared
    length before anything is read, or after ``limit + 1`` bytes of a body without one."""
    declared = environ.get("CONTENT_LENGTH") or ""
    length = int(declared) if declared.isdigit() else None
    if length is not None and length > limit:
        return None
    stream = environ["wsgi.input"]
    want = limit + 1 if length is None else length
    buf = bytearray()
    while len(buf) < want:
        chunk = stream.read(min(READ_CHUNK, want - len(buf)))
        if not chunk:
            break
        buf += chunk
    return None if len(buf) > limit else buf


def _text_body(body: bytes | bytearray) -> str | None:
    """``body`` as text when it is UTF-8 (a webhook's JSON always is), else None."""
    if not body:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _multi(params: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in params:
        out.setdefault(k, []).append(v)
    return out


_REASONS = {
    200: "OK",
    204: "No Content",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    413: "Content Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    202: "Accepted",
}


def _status_line(status: int) -> str:
    return f"{status} {_REASONS.get(status, 'Status')}"


def _text(
    start_response: StartResponse, status: int, body: str, headers: dict[str, str] | None = None
) -> Iterable[bytes]:
    data = body.encode()
    start_response(
        _status_line(status),
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(data))),
            *(headers or {}).items(),
        ],
    )
    return [data]
