"""The cold-import reference of the HTTP functions: a bare Powertools handler.

Logger, Metrics and a REST resolver with one route, the pieces every ghapt HTTP function
uses, and no Tracer: the X-Ray SDK is what the HTTP functions no longer load.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths

logger = Logger(service="ghapt-bare")
metrics = Metrics(namespace="ghapt", service="ghapt-bare")
app = APIGatewayRestResolver()


@app.route("/dists/.+", method=["GET", "HEAD"])
def _dists() -> Response[bytes]:
    return Response(200, "text/plain; charset=utf-8", b"")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
