"""Jinja2 rendering for the pages: autoescaped templates from the package, each response with
the security headers and the browser's CSRF cookie."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse, RedirectResponse

from tenancy.bootstrap import Services
from tenancy.web.pages.security import CSRF_FIELD, csrf_token_for, remember_csrf_token, security_headers
from tenancy.web.pages.text_filters import install_filters
from tenancy.web.pages.viewer import Viewer

__all__ = ["STATIC_DIR", "redirect", "render"]

_WEB_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = _WEB_DIR / "static"
templates = Jinja2Templates(directory=str(_WEB_DIR / "templates"))
install_filters(templates.env)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    viewer: Viewer | None = None,
) -> HTMLResponse:
    """`template` with `context`, the CSRF field's name and value, and who is signed in (`viewer`)."""
    services: Services = request.app.state.services
    full_context = {
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token_for(request),
        "viewer": viewer,
        "offline_payments": services.settings.payfast_mode.value == "offline",
        # Every "contact support" on a page names the address (TENANCY_SUPPORT_EMAIL).
        "support_email": services.settings.effective_support_email,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, template, full_context, status_code=status_code)
    remember_csrf_token(request, response, services.settings)
    security_headers(response)
    return response


def redirect(location: str) -> RedirectResponse:
    """A 303, so the browser follows a form post with a GET."""
    return RedirectResponse(location, status_code=303)
