"""The API Gateway REQUEST authorizer: an event in, an Allow policy or a 401 out.

Who is let in is ``ghapt.auth.authenticator``'s business; this module only speaks API
Gateway's event and policy shapes, logs the reason of a denial and counts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ghapt.auth.authenticator import Authenticator, Principal, authorization_header
from ghapt.core.errors import GhaptError, Unauthorized


def _allow_all(method_arn: str, principal: Principal) -> dict[str, Any]:
    """An Allow for every method and path of the stage: API Gateway caches the policy and
    reuses it for other paths, so allowing only ``methodArn`` would break the next request."""
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerResponse,
    )

    # arn:{partition}:execute-api:{region}:{account}:{apiId}/{stage}/{verb}/{path...}
    parts = method_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "execute-api":
        raise ValueError("methodArn is not an execute-api ARN")
    _, partition, _, region, account, rest = parts
    api_id, _, tail = rest.partition("/")
    stage = tail.split("/", 1)[0]
    if not (partition and region and account and api_id and stage):
        raise ValueError("methodArn lacks a region, account, API id or stage")
    # Powertools' from_route_arn drops the partition (aws-cn, aws-us-gov), so build it here.
    response = APIGatewayAuthorizerResponse(
        principal_id=principal.principal_id,
        region=region,
        aws_account_id=account,
        api_id=api_id,
        stage=stage,
        context=principal.context(),
        partition=partition,
    )
    response.allow_all_routes()
    return response.asdict()


def _metric(metrics: Any, name: str, method: str) -> None:
    if metrics is None:
        return
    from aws_lambda_powertools.metrics import MetricUnit

    # One authorizer call emits one metric, flushed per invocation by ``log_metrics``.
    metrics.add_dimension(name="method", value=method)
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def handle_event(
    event: Mapping[str, Any], authenticator: Authenticator, *, logger: Any, metrics: Any = None
) -> dict[str, Any]:
    """Answer a REST API REQUEST authorizer event: an Allow policy for the whole API, or
    ``Exception("Unauthorized")``, which API Gateway turns into a 401."""
    method = "malformed"
    try:
        header = authorization_header(event)
        method = authenticator.method_of(header)
        principal = authenticator.authenticate(header)
        policy = _allow_all(str(event.get("methodArn", "")), principal)
    except Unauthorized as exc:
        logger.warning(
            f"authorization denied ({method}): {exc}", extra={"reason": str(exc), "method": method}
        )
        _metric(metrics, "AuthDenied", method)
        raise Exception("Unauthorized") from None  # no chain: it could carry the credential
    except Exception as exc:  # noqa: BLE001 - an authorizer fails closed, whatever went wrong
        # Fail closed with a 401, not a 500. Our own errors (a missing secret) say what is wrong
        # and never hold credentials; for anything else the type must do.
        reason = f"{exc.__class__.__name__}: {exc}" if isinstance(exc, GhaptError) else exc.__class__.__name__
        logger.error(f"authorizer failure ({method}): {reason}", extra={"reason": reason, "method": method})
        _metric(metrics, "AuthDenied", method)
        raise Exception("Unauthorized") from None
    logger.info(
        f"authorization allowed ({principal.kind}): {principal.name}",
        extra={"method": principal.kind, "principal": principal.name},
    )
    _metric(metrics, "AuthAllowed", principal.kind)
    return policy
