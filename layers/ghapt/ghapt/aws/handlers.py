"""Lambda entry points: each a line or two over a Powertools router.

The local server calls these very functions after ``configure(Services(...))``; in Lambda the
services are built from the environment once, at cold start. Typed errors become HTTP
responses in one place (``_router``).
"""

from __future__ import annotations

import base64
import functools
import math
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from ghapt.bootstrap import Services
from ghapt.core.errors import GhaptError
from ghapt.core.settings import Settings
from ghapt.serving import Reply, clean_path, serve_dists

logger = Logger(service="ghapt")
metrics = Metrics(namespace="ghapt", service="ghapt")

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


def _router() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()

    @app.exception_handler(GhaptError)
    def _typed(exc: GhaptError) -> Response:
        if exc.status >= 500:
            logger.error("request failed", extra={"error": type(exc).__name__, "reason": str(exc)})
        else:
            logger.info("request refused", extra={"status": exc.status, "reason": str(exc)})
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return Response(exc.status, "text/plain; charset=utf-8", f"{exc}\n", headers=headers)

    return app


def _reply(reply: Reply, method: str) -> Response:
    body = b"" if method == "HEAD" else reply.body
    headers = dict(reply.headers)
    ctype = headers.pop("Content-Type", "application/octet-stream")
    return Response(reply.status, ctype, body, headers=headers)


def _base_url(event: Any) -> str:
    """The public URL of this API (scheme://host[/stage]), for redirects to ourselves."""
    configured = services().settings.public_url
    if configured:
        return configured.rstrip("/")
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    proto = headers.get("x-forwarded-proto", "https")
    rc_path = (event.request_context.raw_event or {}).get("path") or ""
    prefix = rc_path[: -len(event.path)] if rc_path.endswith(event.path) else ""
    return f"{proto}://{headers.get('host', 'localhost')}{prefix}"


def _proxy_path(event: Any, prefix: str) -> str:
    raw = event.path[len(prefix) :] if event.path.startswith(prefix) else event.path
    return clean_path(raw, (event.path_parameters or {}).get("proxy"))


def _raw_body(event: dict[str, Any]) -> bytes:
    """The request body exactly as sent (the webhook's HMAC covers the raw bytes)."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


# --- metadata ----------------------------------------------------------------------------------
metadata_app = _router()


@metadata_app.route("/dists/.+", method=["GET", "HEAD"])
def _dists() -> Response:
    event = metadata_app.current_event
    svc = services()
    with svc.serving_budget():
        reply = serve_dists(svc.branch_cache, _proxy_path(event, "/dists/"), event.headers or {})
    metrics.add_metric("CacheHit" if reply.status == 304 else "Served", MetricUnit.Count, 1)
    return _reply(reply, event.http_method)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def metadata_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return metadata_app.resolve(event, context)


# --- pool --------------------------------------------------------------------------------------
pool_app = _router()


@pool_app.route("/pool/.+", method=["GET", "HEAD"])
def _pool() -> Response:
    event = pool_app.current_event
    svc = services()
    with svc.serving_budget():
        reply = svc.pool.resolve(_proxy_path(event, "/pool/"), _base_url(event))
    return _reply(reply, event.http_method)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def pool_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pool_app.resolve(event, context)


# --- public key --------------------------------------------------------------------------------
publickey_app = _router()


@publickey_app.get("/public.key")
def _public_key() -> Response:
    key = services().signer.public_key_armored()
    return Response(200, "application/pgp-keys", key, headers={"Cache-Control": "public, max-age=300"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def publickey_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return publickey_app.resolve(event, context)


# --- authorizer --------------------------------------------------------------------------------
@logger.inject_lambda_context
@metrics.log_metrics
def authorizer_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ghapt.aws.authorizer import handle_event

    return handle_event(event, services().authenticator, logger=logger, metrics=metrics)


# --- webhook -----------------------------------------------------------------------------------
webhook_app = _router()


@webhook_app.post("/webhook")
def _webhook() -> Response:
    from ghapt.webhook import handle_delivery

    event = webhook_app.current_event
    svc = services()
    reply = handle_delivery(event.headers or {}, _raw_body(event.raw_event), svc.webhook_secret, svc.queue)
    return Response(reply.status, "text/plain; charset=utf-8", reply.message + "\n")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def webhook_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return webhook_app.resolve(event, context)


# --- indexer -----------------------------------------------------------------------------------
@logger.inject_lambda_context
@metrics.log_metrics
def indexer_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS batches (a burst of webhooks becomes one rebuild) and the reconcile schedule.

    Only the indexer loads the X-Ray SDK (about 0.2 s of import), to trace its GitHub and KMS
    calls; the HTTP functions rely on Lambda's active tracing alone and stay fast to start."""
    traced: Any = indexer_tracer().capture_lambda_handler(_rebuild)
    return traced(event, context)


def _rebuild(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from ghapt.aws.sqs import run_indexer_event

    return run_indexer_event(event, context, services().indexer, logger=logger, metrics=metrics)


# --- token exchange ----------------------------------------------------------------------------
token_app = _router()


@token_app.post("/token")
def _token() -> Response:
    """An OIDC principal's exchanged token (``ghapt.tokens``); the authorizer said who it is."""
    import json

    from ghapt.core.errors import NotFound

    event = token_app.current_event
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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def token_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return token_app.resolve(event, context)
