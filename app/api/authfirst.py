"""ASGI middleware: a request that carries a body is authenticated from its head, before the body is read, so a
caller without a valid key cannot hold a connection by sending its body slowly; a body cut off (the client left,
or was closed for sending it too slowly) ends the request quietly."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import family_error
from app.api.tenancy import TenantResolver, bearer
from app.core.errors import Forbidden, SwarmError, Unauthorized

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip() not in (b"", b"0"))


class AuthFirst:
    """The same rules the endpoints apply (api/tenancy.py's resolver; the admin key for /admin), checked early;
    a rejection closes the connection instead of draining the body. Requests it lets through are authenticated
    again, as ever, by their endpoint."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in BODY_METHODS:
            headers = dict(scope.get("headers") or [])
            resolver: TenantResolver | None = getattr(scope["app"].state, "tenants", None)
            if resolver is not None and has_body(headers):
                try:
                    await _check(resolver, scope["path"], headers)
                except SwarmError as exc:
                    answer = family_error(scope["path"], exc)
                    answer.headers["connection"] = "close"
                    await answer(scope, receive, send)
                    return
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            return  # nobody is left to answer (not a server error)


async def _check(resolver: TenantResolver, path: str, headers: dict[bytes, bytes]) -> None:
    authorization = _text(headers.get(b"authorization"))
    if path.startswith("/admin/") or path == "/admin":  # as api/deps.py's require_admin
        if not resolver.runtime.settings.admin_key:
            raise Forbidden("admin endpoints are disabled: set SWARM_ADMIN_KEY")
        if not resolver.is_admin_key(bearer(authorization)):
            raise Unauthorized("admin key required")
        return
    if authorization is None and (key := _text(headers.get(b"x-api-key"))):
        authorization = f"Bearer {key}"  # Anthropic clients send their key this way (as api/gateway.py)
    await resolver.resolve(authorization)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
