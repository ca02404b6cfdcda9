"""GET /metrics: the app's Prometheus registry in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.metrics import metrics_of

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    found = metrics_of(request.app)
    body = generate_latest(found.registry) if found is not None else b""
    return Response(body, media_type=CONTENT_TYPE_LATEST)
