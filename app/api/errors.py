"""The one map from the exception tree to HTTP, per API family: ours ({"error": {"message", "type", "code"}}),
OpenAI's ({"error": {"message", "type", "param", "code"}}) and Ollama's ({"error": "..."})."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core import errors as e

STATUS: list[tuple[type[e.SwarmError], int]] = [
    (e.Unauthorized, 401),
    (e.Forbidden, 403),
    (e.RequestTimeout, 408),
    (e.NotFound, 404),
    (e.ModelNotFound, 404),
    (e.BudgetExceeded, 429),
    (e.Saturated, 503),
    (e.SolveTimeLimit, 503),
    (e.QueueFull, 429),
    (e.GpuSaturated, 503),
    (e.InfeasibleError, 422),
    (e.ValidationFailed, 422),
    (e.ConfigError, 422),
    (e.BackendTimeout, 504),
    (e.BackendUnavailable, 503),
    (e.BackendError, 502),
    (e.JobCancelled, 409),
    (e.Conflict, 409),
    (e.RoutingError, 500),
]


def status_for(exc: e.SwarmError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def compat_status(exc: e.SwarmError) -> int:
    """Status on the compatibility endpoints: input errors are 400 (as in OpenAI and Ollama), an upstream 4xx is
    relayed (5xx becomes 502), a client that left gets 499 (nginx's convention; nobody reads it)."""
    if isinstance(exc, e.Unsupported):
        return 501
    if isinstance(exc, e.ClientGone):
        return 499
    if isinstance(exc, e.BadBackendResponse) and exc.status is not None:
        # an upstream client error is relayed; an upstream failure is a bad gateway, never our own 500
        return exc.status if exc.status < 500 else 502
    if isinstance(exc, e.ValidationFailed) and exc.code != "exceeds_tenant_config":
        return 400  # a request asking for more than its tenant's configuration is 422, as on /jobs and /route
    return status_for(exc)


def retry_headers(exc: e.SwarmError) -> dict[str, str] | None:
    """Retry-After (whole seconds) on back-pressure errors, in every API family."""
    seconds = getattr(exc, "retry_after_s", None)
    return None if seconds is None else {"retry-after": str(max(1, round(seconds)))}


def ollama_error(exc: e.SwarmError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, compat_status(exc), headers=retry_headers(exc))


OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    429: "insufficient_quota",
}


def openai_error_body(exc: e.SwarmError, status: int | None = None) -> dict[str, Any]:
    not_found = isinstance(exc, e.ModelNotFound)
    status = compat_status(exc) if status is None else status
    return {
        "message": exc.message,
        "type": "invalid_request_error" if not_found else OPENAI_TYPES.get(status, "api_error"),
        "param": "model" if not_found else getattr(exc, "param", None),
        "code": "model_not_found" if not_found else exc.code,
    }


def openai_error(exc: e.SwarmError) -> JSONResponse:
    status = compat_status(exc)
    # Retrying cannot fix a bad request, a missing model or an exhausted budget (openai-python retries 429).
    no_retry = (status < 500 and not isinstance(exc, e.QueueFull)) or isinstance(exc, e.BudgetExceeded)
    headers = {**(retry_headers(exc) or {}), **({"x-should-retry": "false"} if no_retry else {})}
    return JSONResponse({"error": openai_error_body(exc, status)}, status, headers=headers or None)


ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def anthropic_error(exc: e.SwarmError) -> JSONResponse:
    """Anthropic's shape: {"type": "error", "error": {"type", "message"}}."""
    status = compat_status(exc)
    error = {"type": ANTHROPIC_TYPES.get(status, "api_error"), "message": exc.message}
    return JSONResponse({"type": "error", "error": error}, status, headers=retry_headers(exc))


def error_body(message: str, type_: str, code: str | int | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, **extra}}


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        if err.get("type") == "json_invalid":  # FastAPI reports the character offset as the location
            ctx = err.get("ctx") or {}
            out.append({"field": "body", "message": f"invalid JSON: {ctx.get('error', err.get('msg', ''))}"})
        else:
            out.append({"field": _loc(err.get("loc", ())), "message": err.get("msg", "")})
    return out


def body_error(cause: BaseException) -> str:
    """Why a request body could not be read as JSON, as invalid JSON is reported (validation_details)."""
    if isinstance(cause, UnicodeDecodeError):
        return f"invalid JSON: not UTF-8 text (byte 0x{cause.object[cause.start]:02x} at offset {cause.start})"
    if isinstance(cause, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {type(cause).__name__}"


def _leaf_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(prefix, route) for every route, through included routers (FastAPI wraps them)."""
    out: list[tuple[str, Any]] = []
    for route in routes:
        sub = getattr(route, "original_router", None)
        if sub is not None:
            extra = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            out += _leaf_routes(list(sub.routes), prefix + extra)
        else:
            out.append((prefix, route))
    return out


def allowed_methods(request: Request) -> set[str]:
    """Every method some route serves at this request's path."""
    path = request.url.path
    methods: set[str] = set()
    for prefix, route in _leaf_routes(list(request.app.routes)):
        regex = getattr(route, "path_regex", None)
        if regex is not None and path.startswith(prefix) and regex.match(path[len(prefix) :]):
            methods |= set(getattr(route, "methods", None) or ())
    return methods or {"GET"}


def swarm_error(exc: e.SwarmError) -> JSONResponse:
    """Our own endpoints' shape: {"error": {"message", "type", "code"}} (with the field when one is named)."""
    field = getattr(exc, "field", None)
    extra = {"details": [{"field": field, "message": exc.message}]} if isinstance(field, str) else {}
    body = error_body(exc.message, type(exc).__name__, exc.code, **extra)
    return JSONResponse(body, status_for(exc), headers=retry_headers(exc))


def family_error(path: str, exc: e.SwarmError) -> JSONResponse:
    """`exc` in the shape of the API family serving `path` (for answers given before any endpoint runs)."""
    if path.startswith("/api/"):
        return ollama_error(exc)
    if path.startswith("/v1/messages"):
        return anthropic_error(exc)
    if path.startswith("/v1/"):
        return openai_error(exc)
    return swarm_error(exc)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.SwarmError)
    async def _swarm(_: Request, exc: e.SwarmError) -> JSONResponse:
        return swarm_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(list(exc.errors()))
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}"
        return JSONResponse(error_body(message, "invalid_request_error", "invalid_input", details=details), 422)

    @app.exception_handler(ValidationError)
    async def _model(_: Request, exc: ValidationError) -> JSONResponse:
        # A model built inside a handler (e.g. a tenant's stored catalog) rejected its data.
        details = validation_details([dict(e) for e in exc.errors()])
        first = details[0] if details else {"field": "", "message": "invalid data"}
        message = f"{first['field']}: {first['message']}".strip(": ")
        return JSONResponse(error_body(message, "invalid_request_error", "invalid_input", details=details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI could not decode the JSON body
            details = [{"field": "body", "message": body_error(exc.__cause__)}]
            message = f"body: {details[0]['message']}"
            return JSONResponse(error_body(message, "invalid_request_error", "invalid_input", details=details), 422)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the first matching route's methods; the path serves all these
            headers["Allow"] = ", ".join(sorted(allowed_methods(request)))
        return JSONResponse(
            error_body(str(exc.detail), "http_error", exc.status_code), exc.status_code, headers=headers
        )
