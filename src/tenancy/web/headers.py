"""Security headers on every answer, the JSON API's included.

The pages set their own (web/pages/security.py: a CSP that lets them load their scripts and
styles, and friends); this middleware only adds what an answer does not already carry, so it
never overrides them. Every answer gets nosniff, X-Frame-Options DENY, a Referrer-Policy and
Cache-Control: no-store (the static scripts and styles get an hour's public caching instead); an
answer that is not HTML also gets a CSP that allows nothing (a JSON body opened in a browser then
runs no script and cannot be framed); and, when TENANCY_PUBLIC_URL is https, every answer carries
HSTS.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_CONTENT_SECURITY_POLICY", "HSTS", "SecurityHeadersMiddleware"]

API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
_EVERY_ANSWER = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


_STATIC_PREFIX = "/static/"
_STATIC_CACHE = "public, max-age=3600"


class SecurityHeadersMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): it touches only the response's start message, so
    streamed bodies and background tasks are left as they are."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if scope["path"].startswith(_STATIC_PREFIX):
                    # The site's own scripts and styles hold nothing private: browsers may keep them.
                    headers.setdefault("Cache-Control", _STATIC_CACHE)
                for name, value in _EVERY_ANSWER.items():
                    headers.setdefault(name, value)
                if not headers.get("content-type", "").lower().startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
