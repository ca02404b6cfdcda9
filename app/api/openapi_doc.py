"""The OpenAPI document as the service really answers: error bodies in each API family's shape, every status an
endpoint returns, request schemas for the proxies (which parse their bodies themselves) and streaming media types."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

REF = "#/components/schemas/"
OURS_STATUSES = ("401", "403", "404", "408", "409", "413", "422", "429", "502", "503", "504")
# The proxies relay an upstream 4xx as is; 499 is a client that left (nobody reads it).
COMPAT_STATUSES = ("4XX", "501", "502", "503", "504")
JSON = "application/json"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
STREAMS = {
    "/api/chat": NDJSON,
    "/api/generate": NDJSON,
    "/api/pull": NDJSON,
    "/api/push": NDJSON,
    "/api/create": NDJSON,
    "/v1/chat/completions": SSE,
    "/v1/completions": SSE,
    "/v1/responses": SSE,
    "/v1/messages": SSE,
}
ONLY = {
    "/jobs/{job_id}/events": SSE,
    "/telemetry/export": NDJSON,
    "/bench/{run_id}/report.csv": "text/csv",
    "/bench/{run_id}/outputs.jsonl": NDJSON,
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": ["string", "integer", "null"]},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
            }
        },
    },
    "OllamaError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    # OpenAI's {"error": {message, type, param, code}}; Anthropic's {"type": "error", "error": {type, message}}
    "CompatError": {"type": "object", "required": ["error"], "properties": {"error": {"type": ["object", "string"]}}},
    "ProxyRequest": {
        "type": "object",
        "description": 'The upstream API\'s own request body (OpenAI, Anthropic or Ollama); model "auto" routes it',
        "required": ["model"],
        "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}},
        "additionalProperties": True,
    },
}


def _family(path: str) -> str:
    if path.startswith("/api/"):
        return "OllamaError"
    if path.startswith("/v1/"):
        return "CompatError"
    return "Error"


def _error(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": REF + schema}}}}


def _patch(path: str, method: str, op: dict[str, Any]) -> None:
    family = _family(path)
    responses: dict[str, Any] = op.setdefault("responses", {})
    statuses = OURS_STATUSES if family == "Error" else COMPAT_STATUSES
    for status in (*statuses, *(["422"] if "422" in responses else [])):
        responses[status] = _error(family, "error (see the README for when)")
    if path == "/jobs" and method == "post":  # ?wait=true answers with the finished job
        responses["200"] = {"description": "the finished job (wait=true)", "content": {JSON: {"schema": {}}}}
    if path == "/readyz":
        responses["503"] = {"description": "a component is not ready", "content": {JSON: {"schema": {}}}}
    ok = next((s for s in ("200", "201", "202") if s in responses), None)
    if ok is not None:
        content = responses[ok].setdefault("content", {})
        if path in ONLY:
            responses[ok]["content"] = {ONLY[path]: {"schema": {}}}
        elif path in STREAMS:
            content.setdefault(JSON, {"schema": {}})
            content[STREAMS[path]] = {"schema": {"type": "string"}}
    if family != "Error" and method in ("post", "delete") and "requestBody" not in op:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": {"$ref": REF + "ProxyRequest"}}}}


def install_openapi(app: FastAPI) -> None:
    """Replace the generated document with the patched one (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(SCHEMAS)
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            for path, ops in doc.get("paths", {}).items():
                for method, op in ops.items():
                    _patch(path, method, op)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
