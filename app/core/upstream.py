"""Credentials for an Ollama behind an authenticating proxy: user:pass@ in the URL becomes a Basic header, extra
headers are checked once; URLs are shown without their credentials."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110 token)
RESERVED = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection"})


def _netloc(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts.netloc, host


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """(the URL without user:pass@, {"Authorization": "Basic ..."} when it had them)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    _, host = _netloc(url)
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    token = base64.b64encode(pair.encode()).decode()
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, {"Authorization": f"Basic {token}"}


def redact_url(url: str | None) -> str | None:
    """The URL as logs and API answers may show it: credentials replaced by ***."""
    if not url:
        return url
    netloc, host = _netloc(url)
    if netloc == host:
        return url
    return url.replace(netloc, f"***@{host}", 1)


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names must be tokens and values single-line (they go onto the wire as written)."""
    out = {}
    for name, value in headers.items():
        if not TOKEN.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if name.lower() in RESERVED:
            raise ValueError(f"header {name!r} is set by the router itself")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r}: the value must be one line of text")
        out[name] = value
    return out


def upstream(url: str, headers: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The URL to connect to and the headers every call sends: the URL's credentials, then the configured headers
    (which win, e.g. a bearer token instead of Basic)."""
    clean, auth = split_credentials(url)
    merged = {**auth, **check_headers(headers or {})}
    return clean, merged


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
