"""Signing in from a browser: the sign-in page, the new-password challenge on first sign-in,
forgot password (a reset code by email), and signing out. The JSON API (`POST /auth/login`)
stays as it is; these forms post to their own paths."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tenancy.accounts.roles import OPERATOR_ROLE, roles_of
from tenancy.domain.model import AuthChallenge
from tenancy.errors import (
    AuthenticationError,
    InvalidInputError,
    InvalidSessionError,
    PasswordPolicyError,
    RateLimitedError,
    TransientError,
)
from tenancy.payments.payfast import client_address
from tenancy.web.deps import ServicesDep
from tenancy.web.pages.rendering import redirect, render
from tenancy.web.pages.security import clear_session, read_form, set_session
from tenancy.web.pages.viewer import current_viewer

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)


def safe_next(candidate: str | None) -> str | None:
    """Only a path on this site: never `//host` or a full URL (an open redirect)."""
    if candidate and candidate.startswith("/") and not candidate.startswith("//") and "\\" not in candidate:
        return candidate[:512]
    return None


@router.get("/auth/login")
def login_page(request: Request, next: str = "", changed: str = "") -> Response:
    notice = "Your password is changed. Sign in with it." if changed else None
    context = {"next": safe_next(next) or "", "notice": notice, "email": ""}
    return render(request, "login.html", context, viewer=current_viewer(request))


@router.post("/auth/login/form")
async def sign_in(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    email, password = form.get("email", "").strip(), form.get("password", "")
    next_path = safe_next(form.get("next"))
    peer = request.client.host if request.client else ""
    source = client_address(peer, request.headers.get("x-forwarded-for"), services.settings.trusted_proxies)
    context: dict[str, object] = {"email": email, "next": next_path or ""}
    if not email or not password:
        return render(request, "login.html", {**context, "error": "Enter your email and password"}, status_code=400)
    try:
        result = await run_in_threadpool(services.accounts.login, email, password, source)
    except RateLimitedError as error:
        log.warning("rate_limited", path=request.url.path, reason=error.reason)
        return render(request, "login.html", {**context, "error": error.reason}, status_code=429)
    except AuthenticationError as error:
        log.info("auth_refused", path=request.url.path, reason=error.reason)
        return render(request, "login.html", {**context, "error": error.reason}, status_code=error.status_code)
    if isinstance(result, AuthChallenge):
        return render(request, "new_password.html", {**context, "session": result.session})
    return _signed_in(services, result.id_token, next_path)


@router.post("/auth/new-password")
async def choose_new_password(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    email, session = form.get("email", "").strip(), form.get("session", "")
    new_password, repeated = form.get("new_password", ""), form.get("confirm_password", "")
    next_path = safe_next(form.get("next"))
    context: dict[str, object] = {"email": email, "session": session, "next": next_path or ""}
    if new_password != repeated:
        return render(request, "new_password.html", {**context, "error": "The passwords do not match"}, status_code=400)
    try:
        tokens = await run_in_threadpool(services.accounts.complete_new_password, email, session, new_password)
    except (PasswordPolicyError, InvalidInputError) as error:
        return render(request, "new_password.html", {**context, "error": str(error)}, status_code=400)
    except InvalidSessionError:
        error_text = "Your sign-in took too long. Sign in again with your temporary password."
        return render(request, "login.html", {**context, "error": error_text}, status_code=401)
    except AuthenticationError as error:
        return render(request, "login.html", {**context, "error": error.reason}, status_code=error.status_code)
    return _signed_in(services, tokens.id_token, next_path)


@router.get("/auth/forgot")
def forgot_page(request: Request) -> Response:
    return render(request, "forgot.html", {"email": ""})


@router.post("/auth/forgot")
async def send_reset_code(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    email = form.get("email", "").strip()
    if "@" not in email:
        return render(request, "forgot.html", {"email": email, "error": "Enter your email address"}, status_code=400)
    peer = request.client.host if request.client else ""
    source = client_address(peer, request.headers.get("x-forwarded-for"), services.settings.trusted_proxies)
    try:
        await run_in_threadpool(services.accounts.request_password_reset, email, source)
    except RateLimitedError as error:
        log.warning("rate_limited", path=request.url.path, reason=error.reason)
    # The same answer whether or not the account exists, and whether or not a code went out.
    return render(request, "reset.html", {"email": email, "sent": True})


@router.get("/auth/reset")
def reset_page(request: Request, email: str = "") -> Response:
    return render(request, "reset.html", {"email": email[:254], "sent": False})


@router.post("/auth/reset")
async def reset_password(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    email, code = form.get("email", "").strip(), form.get("code", "").strip()
    new_password, repeated = form.get("new_password", ""), form.get("confirm_password", "")
    context: dict[str, object] = {"email": email, "sent": False}
    if new_password != repeated:
        return render(request, "reset.html", {**context, "error": "The passwords do not match"}, status_code=400)
    peer = request.client.host if request.client else ""
    source = client_address(peer, request.headers.get("x-forwarded-for"), services.settings.trusted_proxies)
    try:
        await run_in_threadpool(services.accounts.confirm_password_reset, email, code, new_password, source)
    except (PasswordPolicyError, InvalidInputError) as error:
        return render(request, "reset.html", {**context, "error": str(error)}, status_code=400)
    except RateLimitedError as error:
        log.warning("rate_limited", path=request.url.path, reason=error.reason)
        return render(request, "reset.html", {**context, "error": error.reason}, status_code=429)
    except TransientError as error:
        # A browser gets a page, not the API's JSON 503.
        log.warning("password_reset_unavailable", error=type(error).__name__)
        error_text = "The service is busy; try again in a minute."
        return render(request, "reset.html", {**context, "error": error_text}, status_code=503)
    except AuthenticationError as error:
        return render(request, "reset.html", {**context, "error": error.reason}, status_code=error.status_code)
    return redirect("/auth/login?changed=1")


@router.post("/auth/logout")
async def sign_out(request: Request, services: ServicesDep) -> Response:
    await read_form(request)
    response = redirect("/auth/login")
    clear_session(response, services.settings)
    return response


def _signed_in(services: ServicesDep, id_token: str, next_path: str | None) -> Response:
    claims = services.identity.verify_id_token(id_token)
    landing = "/ops" if OPERATOR_ROLE in roles_of(claims) and not claims.get("custom:tenant_id") else "/account"
    response = redirect(next_path or landing)
    set_session(response, id_token, services.settings)
    return response
