"""Every error the server answers, in one place: domain exceptions → status codes and JSON bodies."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.engine.errors import EmptyInput, EngineError, InputTooLong, UnknownCheckpoint, UnknownLabel, WrongModelKind
from app.web.rooms.room import RoomError
from app.zoo.zoo import UnknownModel

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class Overloaded(Exception):
    """Every computation slot is taken: answer 503 with Retry-After instead of queueing without end."""

    retry_after = 1


class BodyTooLarge(Exception):
    def __init__(self, limit: int, setting: str = "max_body_bytes") -> None:
        super().__init__(f"the request body is larger than {limit} bytes ({setting})")


class LimitExceeded(Exception):
    """A request within the schema but over a server limit (e.g. generate length > max_generate)."""


def error_body(error: str, message: str, detail: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "message": message}
    if detail is not None:
        body["detail"] = detail
    return body


def classify(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, error name) of a domain exception; the stream maps the same pairs to close codes."""
    if isinstance(exc, UnknownModel | UnknownCheckpoint | UnknownLabel):
        return 404, "not_found"  # the model, checkpoint or label the request names does not exist
    if isinstance(exc, WrongModelKind):
        return 409, "wrong_model_kind"  # well-formed, but this model is of the other kind
    if isinstance(exc, LimitExceeded):
        return 422, "over_limit"  # a limit the OpenAPI schema states: a schema violation like any other
    if isinstance(exc, InputTooLong):
        return 413, "too_large"
    if isinstance(exc, BodyTooLarge):
        return 413, "too_large"
    if isinstance(exc, Overloaded):
        return 503, "busy"
    if isinstance(exc, EmptyInput | EngineError):
        return 422, "invalid"
    return 500, "internal"


def _validation_message(errors: list[Any]) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"{where}: {first.get('msg', 'invalid request')}"


def _json_safe(errors: list[Any]) -> list[dict[str, Any]]:
    """Validation errors may carry the offending input (bytes, NaN…): keep only what JSON can hold."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in errors]  # fmt: skip


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path takes (GET and DELETE /api/models/{id} are two routes)."""
    routes = request.app.router.routes
    return [m for m in METHODS if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)]


def install(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        status, name = classify(exc)
        headers = {"Retry-After": str(Overloaded.retry_after)} if status == 503 else None
        return JSONResponse(error_body(name, str(exc)), status_code=status, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        return JSONResponse(error_body("invalid", _validation_message(errors), _json_safe(errors)), status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        names = {400: "malformed", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
                 415: "unsupported_media_type"}  # fmt: skip
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the methods of the first route of the path only
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return JSONResponse(
            error_body(names.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=headers,
        )

    async def room_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RoomError)  # its own status and name (a WebSocket closes with 4000 + the status)
        headers = {"Retry-After": "60"} if exc.status in (429, 503) else None
        return JSONResponse(error_body(exc.error, str(exc)), status_code=exc.status, headers=headers)

    app.add_exception_handler(RoomError, room_error)
    for exc_type in (UnknownModel, EngineError, Overloaded, BodyTooLarge, LimitExceeded):
        app.add_exception_handler(exc_type, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
