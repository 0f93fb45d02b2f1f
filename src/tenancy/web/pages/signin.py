"""Signing in from a browser: the sign-in page, the new-password challenge on first sign-in,
forgot password (a reset code by email), and signing out. The JSON API (`POST /auth/login`)
stays as it is; these forms post to their own paths."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tenancy.accounts.roles import OPERATOR_ROLE, roles_of
from tenancy.bootstrap import Services
from tenancy.domain.model import AuthChallenge
from tenancy.domain.passwords import password_policy_failures
from tenancy.errors import (
    AuthenticationError,
    InvalidInputError,
    InvalidSessionError,
    PasswordPolicyError,
    RateLimitedError,
    TransientError,
)
from tenancy.web.deps import ServicesDep, client_ip
from tenancy.web.pages.rendering import redirect, render
from tenancy.web.pages.security import clear_session, read_form, session_token, set_session
from tenancy.web.pages.viewer import current_viewer

__all__ = ["router", "sign_out_browser"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)


def safe_next(candidate: str | None) -> str | None:
    """Only a path on this site: never `//host` or a full URL (an open redirect)."""
    if candidate and candidate.startswith("/") and not candidate.startswith("//") and "\\" not in candidate:
        return candidate[:512]
    return None


@router.get("/auth/login")
def login_page(request: Request, next: str = "", changed: str = "", signed_out: str = "") -> Response:
    notice = "Your password is changed. Sign in with it." if changed else None
    if signed_out:
        notice = "You are signed out."
    context = {"next": safe_next(next) or "", "notice": notice, "email": ""}
    return render(request, "login.html", context, viewer=current_viewer(request))


@router.post("/auth/login/form")
async def sign_in(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    email, password = form.get("email", "").strip(), form.get("password", "")
    next_path = safe_next(form.get("next"))
    source = client_ip(request)
    context: dict[str, object] = {"email": email, "next": next_path or ""}
    if not email or not password:
        return render(request, "login.html", {**context, "error": "Enter your email and password"}, status_code=400)
    try:
        # A slow-down for an account under attack is waited out here, holding no thread.
        await asyncio.sleep(await run_in_threadpool(services.accounts.sign_in_delay, email))
        result = await run_in_threadpool(services.accounts.login, email, password, source)
    except RateLimitedError as error:
        log.warning("rate_limited", path=request.url.path, reason=error.reason)
        return render(request, "login.html", {**context, "error": error.reason}, status_code=429)
    except InvalidInputError as error:  # an address we refuse (a lookalike, an invisible character)
        log.info("bad_request", path=request.url.path, reason=str(error))
        return render(request, "login.html", {**context, "error": str(error)}, status_code=400)
    except AuthenticationError as error:
        log.info("auth_refused", path=request.url.path, reason=error.reason)
        return render(request, "login.html", {**context, "error": error.reason}, status_code=error.status_code)
    if isinstance(result, AuthChallenge):
        return render(request, "new_password.html", {**context, "session": result.session})
    return await run_in_threadpool(_signed_in, services, result.id_token, next_path)


@router.post("/auth/new-password")
async def choose_new_password(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    email, session = form.get("email", "").strip(), form.get("session", "")
    new_password, repeated = form.get("new_password", ""), form.get("confirm_password", "")
    next_path = safe_next(form.get("next"))
    context: dict[str, object] = {"email": email, "session": session, "next": next_path or ""}
    problems = _new_password_problems(new_password, repeated)
    if problems:
        return render(request, "new_password.html", {**context, "errors": problems}, status_code=400)
    try:
        tokens = await run_in_threadpool(services.accounts.complete_new_password, email, session, new_password)
    except (PasswordPolicyError, InvalidInputError) as error:
        return render(request, "new_password.html", {**context, "error": str(error)}, status_code=400)
    except InvalidSessionError:
        error_text = "Your sign-in took too long. Sign in again with your temporary password."
        return render(request, "login.html", {**context, "error": error_text}, status_code=401)
    except AuthenticationError as error:
        return render(request, "login.html", {**context, "error": error.reason}, status_code=error.status_code)
    return await run_in_threadpool(_signed_in, services, tokens.id_token, next_path)


@router.get("/auth/forgot")
def forgot_page(request: Request) -> Response:
    return render(request, "forgot.html", {"email": ""})


@router.post("/auth/forgot")
async def send_reset_code(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    email = form.get("email", "").strip()
    if "@" not in email:
        return render(request, "forgot.html", {"email": email, "error": "Enter your email address"}, status_code=400)
    source = client_ip(request)
    try:
        await run_in_threadpool(services.accounts.request_password_reset, email, source)
    except RateLimitedError as error:
        log.warning("rate_limited", path=request.url.path, reason=error.reason)
    except InvalidInputError as error:  # refused for its form alone, whoever has an account
        log.info("bad_request", path=request.url.path, reason=str(error))
        return render(request, "forgot.html", {"email": email, "error": str(error)}, status_code=400)
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
    problems = ["Enter your email address"] if "@" not in email else []
    problems += ["Enter the reset code from the email"] if not code else []
    problems += _new_password_problems(new_password, repeated)
    if problems:
        return render(request, "reset.html", {**context, "errors": problems}, status_code=400)
    try:
        await run_in_threadpool(services.accounts.confirm_password_reset, email, code, new_password)
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


async def sign_out_browser(request: Request, services: Services) -> Response:
    """The sign-out form (`POST /auth/logout`, shared with the API's sign-out): the session ends
    server-side, not only in this browser."""
    await read_form(request)
    token = session_token(request)
    if token is not None:
        await run_in_threadpool(services.sessions.end, token)
    response = redirect("/auth/login?signed_out=1")
    clear_session(response, services.settings)
    return response


def _new_password_problems(new_password: str, repeated: str) -> list[str]:
    """Every problem of a new password at once, before the identity provider is asked (it would
    name only one): the policy it breaks, and a repeat that differs."""
    failures = password_policy_failures(new_password)
    problems = [f"The password must have {', '.join(failures)}"] if failures else []
    return problems + (["The passwords do not match"] if new_password != repeated else [])


def _signed_in(services: Services, id_token: str, next_path: str | None) -> Response:
    claims = services.identity.verify_id_token(id_token)
    landing = "/ops" if OPERATOR_ROLE in roles_of(claims) and not claims.get("custom:tenant_id") else "/account"
    response = redirect(next_path or landing)
    set_session(response, services.sessions.start_browser(claims), services.settings)
    return response
