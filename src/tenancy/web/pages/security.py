"""Browser-facing security for the pages: the session cookie, CSRF on every form post, and the
headers (Content-Security-Policy and friends) every page is served with.

The session cookie names a server-side session (`accounts.sessions`), so signing out, a password
reset or an operator's demotion ends it at once. CSRF: a signed-in browser's token is derived from
its session's secret (an attacker who plants a cookie cannot know it); before signing in, a random
value in a SameSite=Strict cookie that each form echoes in a hidden field (double submit). Every
form post must also name this site, scheme, host and port, in `Origin` (or `Referer`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import Response

from tenancy.accounts.sessions import session_secret
from tenancy.config import Settings

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "CsrfError",
    "clear_session",
    "cookie_name",
    "csrf_token_for",
    "read_form",
    "remember_csrf_token",
    "security_headers",
    "session_token",
    "set_session",
]

# `__Host-` cookies are Secure, host-only and for path / by the browser's own rule, so a sibling
# subdomain cannot plant one (which would defeat the double submit). Without Secure cookies
# (TENANCY_COOKIE_SECURE=false, plain HTTP off localhost) browsers refuse the prefix.
SESSION_COOKIE = "__Host-tenancy_session"
CSRF_COOKIE = "__Host-tenancy_csrf"
CSRF_FIELD = "csrf_token"
# The checkout form posts to PayFast itself, so PayFast is the one other form target allowed.
# Browsers apply form-action to the redirects after the post too, and /eng/process answers with a
# redirect to its payment page: PayFast's own hosts, whichever of them it picks.
_PAYFAST_FORM_TARGETS = "https://www.payfast.co.za https://sandbox.payfast.co.za https://*.payfast.co.za https://*.payfast.io"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    f"form-action 'self' {_PAYFAST_FORM_TARGETS}; frame-ancestors 'none'; base-uri 'none'"
)
MAX_FORM_FIELDS = 64
MAX_FIELD_LENGTH = 4096


class CsrfError(Exception):
    """A form post without a matching CSRF token, or from another site."""


def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def cookie_name(name: str, settings: Settings) -> str:
    return name if settings.cookie_secure else name.removeprefix("__Host-")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


def csrf_token_for(request: Request) -> str:
    """The form token: bound to the signed-in session, or (signed out) the CSRF cookie's, or a new
    one that `remember_csrf_token` will set."""
    secret = session_secret(session_token(request) or "")
    if secret is not None:
        digest = hmac.new(secret.encode("ascii"), b"csrf", hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
    existing = request.cookies.get(cookie_name(CSRF_COOKIE, _settings(request)), "")
    if len(existing) == 43 and existing.replace("-", "").replace("_", "").isalnum():
        return existing
    token: str | None = getattr(request.state, "new_csrf_token", None)
    if token is None:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf_token = token
    return token


def remember_csrf_token(request: Request, response: Response, settings: Settings) -> None:
    token: str | None = getattr(request.state, "new_csrf_token", None)
    if token is not None:
        name = cookie_name(CSRF_COOKIE, settings)
        response.set_cookie(name, token, httponly=True, secure=settings.cookie_secure, samesite="strict", path="/")


async def read_form(request: Request) -> dict[str, str]:
    """The posted form, once its origin and CSRF token are checked; CsrfError otherwise."""
    _check_origin(request)
    form: FormData = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    expected = csrf_token_for(request)
    posted = fields.pop(CSRF_FIELD, "")
    if getattr(request.state, "new_csrf_token", None) == expected or not hmac.compare_digest(
        expected.encode(), posted.encode()
    ):
        # A token this request just made up matches nothing the browser was given.
        raise CsrfError("the form's security token is missing or stale; reload the page and try again")
    return {key: value[:MAX_FIELD_LENGTH] for key, value in fields.items()}


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, the port made explicit; None if it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def _check_origin(request: Request) -> None:
    # The origin that posted must be this site: the address the request came to, or the public
    # address (a proxy in front may rewrite Host and end TLS), scheme, host and port alike.
    # Browsers send Origin on every POST; a Referer stands in for an old browser's missing Origin.
    claimed = request.headers.get("origin") or request.headers.get("referer")
    sender = _origin_of(claimed) if claimed and claimed != "null" else None
    if sender is None:
        raise CsrfError("the form was posted without naming this site; reload the page and try again")
    here = f"{request.url.scheme}://{request.headers.get('host', '')}"
    ours = {_origin_of(here), _origin_of(_settings(request).public_base_url)}
    if sender not in ours:
        raise CsrfError("the form was posted from another site")


def session_token(request: Request) -> str | None:
    token = request.cookies.get(cookie_name(SESSION_COOKIE, _settings(request)), "").strip()
    return token or None


def set_session(response: Response, session: str, settings: Settings) -> None:
    response.set_cookie(
        cookie_name(SESSION_COOKIE, settings),
        session,
        max_age=settings.session_hours * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )


def clear_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(cookie_name(SESSION_COOKIE, settings), path="/", secure=settings.cookie_secure)
