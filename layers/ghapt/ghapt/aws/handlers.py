"""Lambda entry points: each a line or two over a Powertools router.

The local server calls these very functions after ``configure(Services(...))``; in Lambda the
services are built from the environment once, at cold start. Typed errors become HTTP
responses in one place (``_routes``).

``ghapt serve`` calls them from several threads at once, so no request may leave anything
behind that another one reads: each route function gets its event as an argument, and each
thread resolves on its own router (``Routes``), whose event lives on the instance instead of
Powertools' class attribute ``BaseRouter.current_event``, which every router and thread share.
"""

from __future__ import annotations

import base64
import functools
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from ghapt.bootstrap import Services
from ghapt.core.errors import GhaptError
from ghapt.core.settings import Settings
from ghapt.serving import Reply, clean_path, serve_dists


class QuietMetrics(Metrics):
    """Powertools' Metrics, recording nothing while metrics are off, and safe across threads.

    With ``POWERTOOLS_METRICS_DISABLED`` Powertools skips the flush at the end of an invocation
    but keeps adding values, and prints the whole set every 100 values of a metric anyway: a
    blob on stdout every 100 requests of ``ghapt serve``. And its metric set is one class-level
    dict for every instance: on ``ghapt serve``'s threads one request's flush would clear
    another's metrics between its check and its serialization (a 500). Adding and flushing
    hold one lock; each flush publishes what all requests have added since the last one."""

    _lock = threading.Lock()

    def add_metric(self, name: str, unit: Any, value: float, resolution: Any = 60) -> None:
        if not is_metrics_disabled():
            with self._lock:
                super().add_metric(name, unit, value, resolution)

    def add_dimension(self, name: str, value: str) -> None:
        if not is_metrics_disabled():
            with self._lock:
                super().add_dimension(name, value)

    def published(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Like Powertools' ``log_metrics``: flush after the handler, here under the lock."""

        @functools.wraps(handler)
        def decorate(event: Any, context: Any) -> Any:
            try:
                return handler(event, context)
            finally:
                with self._lock:
                    if self.metric_set and not is_metrics_disabled():
                        self.flush_metrics()

        return decorate


logger = Logger(service="ghapt")
metrics = QuietMetrics(namespace="ghapt", service="ghapt")

_services: Services | None = None


@functools.cache
def indexer_tracer() -> Any:
    """The indexer's Powertools Tracer, made on first use: importing the X-Ray SDK costs about
    0.2 s, most of an HTTP function's cold start, so only the indexer pays it."""
    from aws_lambda_powertools import Tracer

    return Tracer(service="ghapt", patch_modules=("requests", "botocore"))


def services() -> Services:
    """The process's services; in Lambda, built from the environment on first use (cold start)."""
    global _services
    if _services is None:
        _services = Services(Settings.from_env(os.environ), os.environ, on_github_call=_count_github_call)
    return _services


def _count_github_call(method: str, url: str, status: int) -> None:
    metrics.add_metric("GitHubCalls", MetricUnit.Count, 1)


def configure(value: Services | None) -> None:
    """Install the services the handlers use (the local server and tests do this)."""
    global _services
    _services = value


def _with_lambda_context(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[..., Any]:
    """Powertools' ``inject_lambda_context`` with the request's id as the correlation id (what
    ``correlation_paths.API_GATEWAY_REST`` names), read from the event directly: Powertools
    would compile and run that JMESPath on every request, a good part of a cached file's cost."""

    @functools.wraps(handler)
    def correlated(event: dict[str, Any], context: Any) -> Any:
        request_context = event.get("requestContext")
        logger.set_correlation_id(
            request_context.get("requestId") if isinstance(request_context, dict) else None
        )
        return handler(event, context)

    return logger.inject_lambda_context(correlated)


HttpResponse = Response[Any]
View = Callable[[APIGatewayProxyEvent], HttpResponse]


class _ResponseBuilder(ResponseBuilder):  # type: ignore[type-arg]
    """Powertools' response builder, without a case-insensitive copy of every request header
    to read ``Accept-Encoding`` when neither the route nor the response compresses."""

    @staticmethod
    def _has_compression_enabled(
        route_compression: bool, response_compression: bool | None, event: Any
    ) -> bool:
        if not route_compression and not response_compression:
            return False
        # Powertools' own check, only where compression may apply.
        check = ResponseBuilder._has_compression_enabled  # noqa: SLF001
        return bool(check(route_compression, response_compression, event))


_DIRECT_CALL_NEEDS = (
    "_to_response",
    "_call_exception_handler",
    "_router_middlewares",
    "_enable_validation",
    "_debug",
    "_serializer",
)


class _OwnEventResolver(APIGatewayRestResolver):
    """Powertools' REST resolver with the event it resolves kept on the instance.

    Powertools assigns the event to ``BaseRouter.current_event``, a class attribute; this
    property shadows it for this resolver, so what it routes and how it builds the response
    come from its own request."""

    _own_event: APIGatewayProxyEvent | None = None

    def __init__(self) -> None:
        super().__init__()
        self._response_builder_class = _ResponseBuilder
        # The direct call below uses Powertools internals; a release without one of them
        # (this is checked, not assumed) gets Powertools' own path for every route.
        self._direct_calls = all(hasattr(self, name) for name in _DIRECT_CALL_NEEDS)

    @property  # type: ignore[override]
    def current_event(self) -> APIGatewayProxyEvent:
        if self._own_event is None:
            raise RuntimeError("no request is being resolved")
        return self._own_event

    @current_event.setter
    def current_event(self, value: APIGatewayProxyEvent) -> None:
        self._own_event = value

    def _to_proxy_event(self, event: dict[str, Any]) -> Any:
        proxy = super()._to_proxy_event(event)
        self._own_event = proxy  # type: ignore[assignment]
        return proxy

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        try:
            return super().resolve(event, context)
        finally:
            self._own_event = None  # a webhook body must not outlive its request

    def _call_route(self, route: Any, route_arguments: dict[str, str]) -> Any:
        """Call a plain view (``plain_view``: no arguments, no middleware, no validation, no
        dependencies) directly; Powertools would wrap it in its middleware frames, which cost
        more than serving a cached file and do nothing here. An exception goes to the exception
        handlers, as Powertools sends it; one no handler takes is re-raised, as it does. Any
        other route takes Powertools' own path."""
        if (
            not self._direct_calls
            or not getattr(route.func, "plain_view", False)
            or getattr(route, "middlewares", True)
            or self._router_middlewares
            or self._enable_validation
            or self._debug
        ):
            return super()._call_route(route, route_arguments)
        try:
            response: Any = self._to_response(route.func())
        except Exception as exc:
            builder = self._call_exception_handler(exc, route)
            if builder is not None:
                return builder
            raise
        return self._response_builder_class(response=response, serializer=self._serializer, route=route)


class Routes:
    """A function's Powertools router (one or more rules to one view), one per thread.

    A router also keeps per-request state of its own (the matched route in ``context``, the
    middleware stack), so threads must not share one; building a router costs about 0.2 ms,
    so each thread keeps its own (Lambda has one thread: one router per container)."""

    def __init__(self, rule: str | Sequence[str], methods: Sequence[str], view: View) -> None:
        self.rules = [rule] if isinstance(rule, str) else list(rule)
        self.methods = list(methods)
        self.view = view
        self._local = threading.local()

    def _build(self) -> _OwnEventResolver:
        app = _OwnEventResolver()

        @app.exception_handler(GhaptError)  # type: ignore[untyped-decorator]
        def _typed(exc: GhaptError) -> HttpResponse:
            if exc.status >= 500:
                logger.error("request failed", extra={"error": type(exc).__name__, "reason": str(exc)})
            else:
                logger.info("request refused", extra={"status": exc.status, "reason": str(exc)})
            headers = {}
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
            return Response(exc.status, "text/plain; charset=utf-8", f"{exc}\n", headers=headers)

        def view() -> HttpResponse:
            return self.view(app.current_event)

        view.plain_view = True  # type: ignore[attr-defined]
        for rule in self.rules:
            app.route(rule, method=self.methods)(view)
        return app

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        app: _OwnEventResolver | None = getattr(self._local, "app", None)
        if app is None:
            app = self._local.app = self._build()
        return app.resolve(event, context)


def _reply(reply: Reply, method: str) -> HttpResponse:
    """The HTTP response of ``reply``; to HEAD, the same status and headers, with the length
    the body would have had (RFC 9110) and no body. A body whose base64 text the branch cache
    already holds goes out as that text, instead of being encoded again by Powertools."""
    headers = dict(reply.headers)
    ctype = headers.pop("Content-Type", "application/octet-stream")
    if method == "HEAD":
        headers["Content-Length"] = str(len(reply.body))
        return Response(reply.status, ctype, b"", headers=headers)
    if reply.body_base64 is not None and reply.body:
        response: HttpResponse = Response(reply.status, ctype, reply.body_base64, headers=headers)
        response.base64_encoded = True
        return response
    return Response(reply.status, ctype, reply.body, headers=headers)


def _base_url(event: APIGatewayProxyEvent) -> str:
    """The public URL of this API (scheme://host[/stage]), for redirects to ourselves.

    It comes from ``GHAPT_PUBLIC_URL`` or from the domain API Gateway (or the local server)
    says it answered on, never from the request's ``Host`` header: a redirect built from a
    client's Host would send other clients wherever that client chose."""
    configured = services().settings.public_url
    if configured:
        return configured.rstrip("/")
    context = event.raw_event.get("requestContext") or {}
    domain = context.get("domainName") or "localhost"
    proto = next(
        (str(v) for k, v in (event.headers or {}).items() if k.lower() == "x-forwarded-proto"), "https"
    )
    proto = proto if proto in ("http", "https") else "https"
    rc_path = context.get("path") or ""
    prefix = rc_path[: -len(event.path)] if rc_path.endswith(event.path) else ""
    return f"{proto}://{domain}{prefix}"


def _proxy_path(event: APIGatewayProxyEvent, prefix: str) -> str:
    raw = event.path[len(prefix) :] if event.path.startswith(prefix) else event.path
    return clean_path(raw, (event.path_parameters or {}).get("proxy"))


def _request_headers(event: APIGatewayProxyEvent) -> Mapping[str, str]:
    """The request's headers as the event has them; the serving code compares names in lower
    case itself, so this spares building Powertools' case-insensitive copy on every request."""
    headers = event.raw_event.get("headers")
    return headers if isinstance(headers, Mapping) else {}


def _raw_body(event: dict[str, Any]) -> bytes:
    """The request body exactly as sent (the webhook's HMAC covers the raw bytes)."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


# --- metadata ----------------------------------------------------------------------------------
def _dists(event: APIGatewayProxyEvent) -> HttpResponse:
    svc = services()
    with svc.serving_budget():
        reply = serve_dists(svc.branch_cache, _proxy_path(event, "/dists/"), _request_headers(event))
    metrics.add_metric("CacheHit" if reply.status == 304 else "Served", MetricUnit.Count, 1)
    return _reply(reply, event.http_method)


def _metadata(event: APIGatewayProxyEvent) -> HttpResponse:
    """``/dists/...`` files, or the repository page at ``/`` and ``/index.html``."""
    if event.path.startswith("/dists/"):
        return _dists(event)
    from ghapt.page import serve_page

    svc = services()
    with svc.serving_budget():
        reply = serve_page(svc.branch_cache, _request_headers(event), _base_url(event))
    return _reply(reply, event.http_method)


metadata_routes = Routes(("/dists/.+", "/", "/index.html"), ("GET", "HEAD"), _metadata)


@_with_lambda_context
@metrics.published
def metadata_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return metadata_routes.resolve(event, context)


# --- pool --------------------------------------------------------------------------------------
def _pool(event: APIGatewayProxyEvent) -> HttpResponse:
    svc = services()
    with svc.serving_budget():
        reply = svc.pool.resolve(_proxy_path(event, "/pool/"), _base_url(event))
    return _reply(reply, event.http_method)


pool_routes = Routes("/pool/.+", ("GET", "HEAD"), _pool)


@_with_lambda_context
@metrics.published
def pool_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pool_routes.resolve(event, context)


# --- public key --------------------------------------------------------------------------------
def _public_key(event: APIGatewayProxyEvent) -> HttpResponse:
    key = services().signer.public_key_armored()
    headers = {"Cache-Control": "public, max-age=300"}
    if event.http_method == "HEAD":
        headers["Content-Length"] = str(len(key.encode()))
        key = ""
    return Response(200, "application/pgp-keys", key, headers=headers)


publickey_routes = Routes("/public.key", ("GET", "HEAD"), _public_key)


@_with_lambda_context
def publickey_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return publickey_routes.resolve(event, context)


# --- authorizer --------------------------------------------------------------------------------
@logger.inject_lambda_context
@metrics.published
def authorizer_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ghapt.aws.authorizer import handle_event

    return handle_event(event, services().authenticator, logger=logger, metrics=metrics)


# --- webhook -----------------------------------------------------------------------------------
def _webhook(event: APIGatewayProxyEvent) -> HttpResponse:
    from ghapt.webhook import handle_delivery

    svc = services()
    reply = handle_delivery(event.headers or {}, _raw_body(event.raw_event), svc.webhook_secret, svc.queue)
    return Response(reply.status, "text/plain; charset=utf-8", reply.message + "\n")


webhook_routes = Routes("/webhook", ("POST",), _webhook)


@_with_lambda_context
@metrics.published
def webhook_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return webhook_routes.resolve(event, context)


# --- indexer -----------------------------------------------------------------------------------
@logger.inject_lambda_context
@metrics.published
def indexer_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS batches (a burst of webhooks becomes one rebuild) and the reconcile schedule.

    Only the indexer loads the X-Ray SDK (about 0.2 s of import), to trace its GitHub and KMS
    calls; the HTTP functions rely on Lambda's active tracing alone and stay fast to start."""
    traced: Any = indexer_tracer().capture_lambda_handler(_rebuild)
    result: dict[str, Any] = traced(event, context)
    return result


def _rebuild(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ghapt.aws.sqs import run_indexer_event

    ready = services()
    return run_indexer_event(event, context, ready.indexer, logger=logger, metrics=metrics, queue=ready.queue)


# --- token exchange ----------------------------------------------------------------------------
def _token(event: APIGatewayProxyEvent) -> HttpResponse:
    """An OIDC principal's exchanged token (``ghapt.tokens``); the authorizer said who it is."""
    import json

    from ghapt.core.errors import NotFound

    tokens = services().tokens
    if tokens is None:
        raise NotFound("token exchange is not enabled: it needs GHAPT_OIDC_ISSUER and a token key")
    context = (event.raw_event.get("requestContext") or {}).get("authorizer")
    exchanged = tokens.exchange(context)
    logger.info(
        f"token exchanged for {context.get('name') if context else ''}",
        extra={"principal": (context or {}).get("name"), "run_id": (context or {}).get("run_id")},
    )
    metrics.add_metric("TokensExchanged", MetricUnit.Count, 1)
    body = json.dumps(exchanged.as_json())
    return Response(200, "application/json", body, headers={"Cache-Control": "no-store"})


token_routes = Routes("/token", ("POST",), _token)


@_with_lambda_context
@metrics.published
def token_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return token_routes.resolve(event, context)
