"""The serving benchmark's reference: no-op Lambda handlers built from the same Powertools pieces
as ``ghapt.handlers`` (Logger, Metrics, Tracer patching requests/botocore, a REST resolver),
with the same decorators, doing nothing but adding the one metric each real handler adds.

Importing this module in a fresh process is the reference for ghapt.handlers' cold import;
calling its handlers is the reference for the warm latencies.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="ghapt-noop")
metrics = Metrics(namespace="ghapt", service="ghapt-noop")
tracer = Tracer(service="ghapt-noop", patch_modules=("requests", "botocore"))

app = APIGatewayRestResolver()


@app.route("/dists/.+", method=["GET", "HEAD"])
def _dists() -> Response[bytes]:
    metrics.add_metric("Served", MetricUnit.Count, 1)
    return Response(200, "text/plain; charset=utf-8", b"")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def metadata_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)


_POLICY = {
    "principalId": "noop",
    "policyDocument": {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ["*"]}],
    },
}


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def authorizer_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_metric("AuthAllowed", MetricUnit.Count, 1)
    return _POLICY
