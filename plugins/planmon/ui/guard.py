"""What every request to planmon's app passes through before a route sees it (an ASGI middleware).

- **Response headers** on every answer, pages, API and errors alike: a Content-Security-Policy that
  allows only planmon's own static CSS and script (no inline code), lets Airflow's UI (same origin)
  frame the pages and nothing else, and keeps forms posting to planmon; ``nosniff``; a same-origin
  referrer policy.
- **Same origin for state-changing requests** (POST, PUT, PATCH, DELETE): the ``Origin`` header, or
  the ``Referer`` when a browser sent no ``Origin``, must name the request's own origin (its scheme
  and ``Host``; ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` as a reverse proxy sets them) or a
  configured base URL (``PLANMON_BASE_URL``, Airflow's ``[api] base_url``). A request with neither
  header is let in only with an ``Authorization: Bearer`` header: a script or CLI, which a page on
  another site cannot make a browser send without CORS's consent. Anything else is 403. The session
  cookie is SameSite=Lax, but "same site" spans every port of a host (another app on 127.0.0.1 is
  the same site), so the cookie alone does not prove where a form came from.
- **Bounded bodies**: a ``Content-Length`` over the limit is refused (413) before a byte is read; a
  body without one (chunked) is counted as it arrives and refused as soon as it passes the limit,
  so neither the route nor Starlette's form parser ever reads, holds or spools more than that.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Every resource the pages load comes from planmon itself: one stylesheet and one script (static
# files, no inline code); Airflow's UI frames the pages from the same origin; forms post to planmon.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
DEFAULT_PORTS = {"http": 80, "https": 443}


class BodyTooLarge(HTTPException):
    """A request body passed the limit while it was being read (413)."""


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The largest body accepted (``max_bytes``) and the sentence telling a person what to do."""

    max_bytes: int
    advice: str

    def message(self, what: str) -> str:
        return f"{what}: request bodies over {self.max_bytes} bytes are refused; {self.advice}"


Refusal = Callable[[Request, int, str], Response]


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL, lower case, default port dropped; None when it has none."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def own_origins(request: Request) -> set[str]:
    """The origins the request itself was addressed to: as received, and as a reverse proxy says
    the browser addressed it (``X-Forwarded-Proto`` / ``X-Forwarded-Host``, first values). A page
    on another site cannot set those headers on a browser's request, so trusting them here lets no
    foreign origin in."""
    host = request.headers.get("host", "")
    scheme = request.url.scheme
    found = {origin_of(f"{scheme}://{host}")}
    forwarded_proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip() or scheme
    forwarded_host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or host
    found.add(origin_of(f"{forwarded_proto}://{forwarded_host}"))
    return {o for o in found if o}


def cross_origin_reason(request: Request, configured: Iterable[str]) -> str | None:
    """Why a state-changing request is refused, or None when it comes from planmon's own origin."""
    allowed = own_origins(request) | {o for o in (origin_of(u) for u in configured) if o}
    origin = request.headers.get("origin")
    if origin is not None:
        if origin_of(origin) in allowed:
            return None
        return f"the request comes from another origin ({origin[:200]})"
    referer = request.headers.get("referer")
    if referer is not None:
        if origin_of(referer) in allowed:
            return None
        return f"the request was sent from a page of another origin ({origin_of(referer) or 'unknown'})"
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return None
    return "the request has neither an Origin nor a Referer header (a browser sends one)"


class RequestGuard:
    """The ASGI middleware: security headers, same-origin check, bounded request bodies."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        body_limit: Callable[[], BodyLimit],
        allowed_origins: Callable[[], Iterable[str]],
        refuse: Refusal,
    ) -> None:
        self.app = app
        self.body_limit = body_limit
        self.allowed_origins = allowed_origins
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                message["headers"] = [*headers, *SECURITY_HEADERS]
            await send(message)

        if scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send_with_headers)
            return
        request = Request(scope)
        reason = cross_origin_reason(request, self.allowed_origins())
        if reason is not None:
            log.warning("refused %s %s: %s", request.method, request.url.path, reason)
            message = f"{reason}: planmon accepts changes only from its own pages (docs/ui.md, Security)"
            await self.refuse(request, 403, message)(scope, receive, send_with_headers)
            return
        limit = self.body_limit()
        declared = _content_length(request)
        if declared is not None and declared > limit.max_bytes:
            log.warning(
                "refused %s %s: Content-Length %d over %d bytes, nothing read",
                request.method, request.url.path, declared, limit.max_bytes,
            )  # fmt: skip
            refusal = self.refuse(request, 413, limit.message(f"the body is {declared} bytes"))
            await refusal(scope, receive, send_with_headers)
            return
        counted = _CountedBody(receive, limit, f"{request.method} {request.url.path}")
        await self.app(scope, counted, send_with_headers)


_OURS = frozenset(name for name, _ in SECURITY_HEADERS)


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return max(int(raw), 0)
    except ValueError:
        return None  # uvicorn refuses a malformed Content-Length itself; the count still applies


class _CountedBody:
    """``receive`` that counts body bytes and raises :class:`BodyTooLarge` past the limit, so no
    reader (a route, Starlette's form parser) gets more than ``max_bytes`` of it."""

    def __init__(self, receive: Receive, limit: BodyLimit, request: str) -> None:
        self._receive, self._limit, self._request = receive, limit, request
        self.received = 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._limit.max_bytes:
                log.warning(
                    "refused %s: body over %d bytes, stopped after reading %d",
                    self._request, self._limit.max_bytes, self.received,
                )  # fmt: skip
                what = f"the body passed {self._limit.max_bytes} bytes"
                raise BodyTooLarge(status_code=413, detail=self._limit.message(what))
        return message
