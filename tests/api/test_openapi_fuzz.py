"""An honest OpenAPI document: schemathesis over the live service's spec (stateless, with the admin key and with a
tenant's key), a bounded number of examples per operation: no 500, no undocumented status, every response in
its documented shape and media type; and a 405 names every method the path serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from tests.api.conftest import router_settings, serve, sim_backend

ADMIN = "admin-secret"
# Model management needs a real Ollama: on the simulator these answer 501 by design (tests/api/test_ollama_compat.py).
SIM_CANNOT = ("/api/push", "/api/create", "/api/copy", "/api/delete")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    cfg = router_settings(Path(tmp_path_factory.mktemp("fuzz")), admin_key=ADMIN)
    with serve(create_app(cfg, backend=sim_backend())) as url:
        made = httpx.post(url + "/admin/tenants", json={"name": "fuzzer"}, headers={"Authorization": f"Bearer {ADMIN}"})
        yield url, made.json()["api_key"]


def never_500(ctx: Any, response: Any, case: Any) -> bool:
    """Our own failure is the only server error: 501-504 are documented answers about the upstream."""
    assert response.status_code != 500, f"500 from {case.method} {case.path}: {response.text[:300]}"
    return True


CHECKS = [never_500, status_code_conformance, response_schema_conformance, content_type_conformance]


def fuzz(url: str, key: str) -> dict[str, str]:
    """Every operation of the live spec, a few generated requests each: the first failure per operation."""
    spec = schemathesis.openapi.from_url(url + "/openapi.json")
    failures: dict[str, str] = {}
    for result in spec.get_all_operations():
        op = result.ok()
        if any(op.path.startswith(p) for p in SIM_CANNOT):
            continue

        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {key}"}, timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:
            failures[op.label] = " | ".join(str(exc).splitlines()[:8])[:500]
    return failures


def test_the_spec_holds_for_the_admin_and_a_tenant(service: tuple[str, str]) -> None:
    url, tenant_key = service
    for key in (ADMIN, tenant_key):
        assert fuzz(url, key) == {}


def test_405_allow_lists_every_method(service: tuple[str, str]) -> None:
    resp = httpx.request("PUT", service[0] + "/jobs", headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 405
    assert {"GET", "POST"} <= set(resp.headers["allow"].replace(" ", "").split(",")) <= {"GET", "HEAD", "POST"}
    assert resp.json()["error"]["code"] == 405


@pytest.mark.parametrize("body", [b"3\xff", b"[" * 100_000], ids=["not-utf8", "too-deep"])
def test_undecodable_bodies_are_documented_answers(service: tuple[str, str], body: bytes) -> None:
    """A body that is not UTF-8 or not parseable JSON, sent to every operation that takes one: an answer the spec
    documents, in its documented shape (FastAPI's own answer is an undocumented 400)."""
    url, _ = service
    spec = schemathesis.openapi.from_url(url + "/openapi.json")
    checked = []
    for result in spec.get_all_operations():
        op = result.ok()
        if op.method.upper() != "POST" or any(op.path.startswith(p) for p in SIM_CANNOT) or "{" in op.path:
            continue
        case = op.Case(media_type="application/json")
        headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
        response = httpx.post(url + op.path, content=body, headers=headers, timeout=30)
        assert 400 <= response.status_code < 500, (op.path, response.status_code, response.text[:200])
        case.validate_response(response, checks=CHECKS)
        if not op.path.startswith(("/v1/", "/api/")):
            assert response.json()["error"]["details"][0]["field"] == "body", response.text
        checked.append(op.path)
    assert {"/route", "/jobs", "/bench", "/admin/tenants", "/v1/chat/completions", "/api/chat"} <= set(checked)
