"""The handlers' Powertools routers: a plain view is called directly, its typed errors still
become their HTTP answers, other exceptions still escape; a view with middleware goes through it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from ghapt.aws.handlers import Routes, _OwnEventResolver
from ghapt.core.errors import NotFound

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _event(path: str = "/dists/stable/InRelease") -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "metadata_inrelease.json").read_text())
    event["path"] = event["requestContext"]["path"] = path
    return event


def test_a_plain_view_answers_with_its_own_request() -> None:
    seen: list[str] = []

    def view(event: APIGatewayProxyEvent) -> Response[Any]:
        seen.append(event.path)
        return Response(200, "text/plain", f"you asked for {event.path}\n", headers={"X-Mine": "1"})

    routes = Routes("/dists/.+", ("GET",), view)
    result = routes.resolve(_event("/dists/a"), None)
    assert result["statusCode"] == 200
    assert result["body"] == "you asked for /dists/a\n"
    assert result["multiValueHeaders"]["X-Mine"] == ["1"]
    assert result["multiValueHeaders"]["Content-Type"] == ["text/plain"]
    assert seen == ["/dists/a"]
    assert routes.resolve(_event("/dists/b"), None)["body"] == "you asked for /dists/b\n"


def test_a_typed_error_of_a_plain_view_is_its_http_answer() -> None:
    def view(event: APIGatewayProxyEvent) -> Response[Any]:
        raise NotFound(f"{event.path} does not exist")

    result = Routes("/dists/.+", ("GET",), view).resolve(_event(), None)
    assert result["statusCode"] == 404
    assert result["body"] == "/dists/stable/InRelease does not exist\n"


def test_any_other_exception_of_a_plain_view_escapes_as_powertools_lets_it() -> None:
    def view(event: APIGatewayProxyEvent) -> Response[Any]:
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        Routes("/dists/.+", ("GET",), view).resolve(_event(), None)


def test_a_view_with_middleware_still_goes_through_it() -> None:
    app = _OwnEventResolver()
    calls: list[str] = []

    def middleware(resolver: Any, next_middleware: Any) -> Any:
        calls.append("middleware")
        return next_middleware(resolver)

    def view() -> Response[Any]:
        calls.append("view")
        return Response(200, "text/plain", "ok")

    view.plain_view = True  # type: ignore[attr-defined]
    app.route("/dists/.+", method=["GET"], middlewares=[middleware])(view)
    assert app.resolve(_event(), None)["body"] == "ok"
    assert calls == ["middleware", "view"]


def test_an_unknown_path_is_powertools_404() -> None:
    result = Routes("/dists/.+", ("GET",), lambda event: Response(200, "text/plain", "ok")).resolve(
        _event("/elsewhere"), None
    )
    assert result["statusCode"] == 404


def test_a_powertools_without_the_internals_the_direct_call_uses_gets_its_own_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ghapt.aws.handlers
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    through_powertools: list[str] = []
    real = APIGatewayRestResolver._call_route

    def spy(self: APIGatewayRestResolver, route: Any, arguments: dict[str, str]) -> Any:
        through_powertools.append(self.current_event.path)
        return real(self, route, arguments)

    monkeypatch.setattr(APIGatewayRestResolver, "_call_route", spy)

    def view(event: APIGatewayProxyEvent) -> Response[Any]:
        return Response(200, "text/plain", f"{event.path}\n")

    assert Routes("/dists/.+", ("GET",), view).resolve(_event("/dists/a"), None)["body"] == "/dists/a\n"
    assert through_powertools == []  # the direct call
    monkeypatch.setattr(ghapt.aws.handlers, "_DIRECT_CALL_NEEDS", ("_to_response", "_gone_in_a_release"))
    assert Routes("/dists/.+", ("GET",), view).resolve(_event("/dists/b"), None)["body"] == "/dists/b\n"
    assert through_powertools == ["/dists/b"]
