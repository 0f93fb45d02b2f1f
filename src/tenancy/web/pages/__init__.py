"""The server-rendered pages (Jinja2, a little plain JavaScript): the buyer's pricing, checkout
and account pages, browser sign-in, and the operators' console under /ops."""

from __future__ import annotations

from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from tenancy.web.pages import account, customer, join, ops, runbook_page, signin, team
from tenancy.web.pages.errors import viewer_if_any
from tenancy.web.pages.rendering import STATIC_DIR, redirect, render
from tenancy.web.pages.security import CsrfError
from tenancy.web.pages.viewer import LoginRequiredError, OperatorsOnlyError, current_viewer

__all__ = ["install_pages"]

log = structlog.get_logger(__name__)


def install_pages(app: FastAPI) -> None:
    pages = (customer, account, team, join, signin, ops, runbook_page)
    for router in (page.router for page in pages):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(LoginRequiredError)
    async def login_required(_request: Request, error: LoginRequiredError) -> Response:
        if not error.next_path:
            return redirect("/auth/login")
        return redirect(f"/auth/login?next={quote(error.next_path, safe='/')}")

    @app.exception_handler(OperatorsOnlyError)
    async def operators_only(request: Request, _error: OperatorsOnlyError) -> Response:
        message = "The operations console is for operators only. Your account is not an operator account."
        context = {"title": "Operators only", "message": message}
        return render(request, "error.html", context, status_code=403, viewer=current_viewer(request))

    @app.exception_handler(CsrfError)
    async def csrf_refused(request: Request, error: CsrfError) -> Response:
        log.warning("csrf_refused", path=request.url.path, reason=str(error))
        context = {"title": "Form expired", "message": f"We did not accept this form: {error}."}
        return render(request, "error.html", context, status_code=403, viewer=viewer_if_any(request))
