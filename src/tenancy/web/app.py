"""`create_app(services)`: the FastAPI application, with the in-process workers, the weekly audit's
schedule and the alert watcher it may run (tenancy.background)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tenancy import __version__
from tenancy.background import background_threads
from tenancy.bootstrap import Services
from tenancy.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TenantBlockedError,
    TransientError,
)
from tenancy.web.headers import SecurityHeadersMiddleware
from tenancy.web.pages import install_pages
from tenancy.web.pages.errors import error_page, wants_page
from tenancy.web.routes import auth, itn, members, metrics, service, system, tenants

__all__ = ["create_app"]

log = structlog.get_logger(__name__)


def create_app(
    services: Services, *, workers: int = 0, alert_watch_seconds: float = 0, itn_only: bool = False
) -> FastAPI:
    """The app over `services`; with `workers` > 0 it also runs that many worker threads and the
    weekly audit's schedule, and with `alert_watch_seconds` > 0 the alert watcher (`tenancy alerts
    watch`'s loop) in one more (tenancy.background). `itn_only` serves the ITN route alone, as
    the same code (the ITN function on AWS: its URL and its IAM policy are for PayFast only)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        threads = background_threads(services, stop, workers=workers, alert_watch_seconds=alert_watch_seconds)
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                # Each worker finishes the step in hand (an unfinished job goes back to the queue),
                # the watcher the notification in hand (each destination has its own timeout).
                thread.join(timeout=30)

    # /docs and /redoc load Swagger UI and ReDoc from a CDN without integrity checks: served only
    # when TENANCY_API_DOCS is set (development). /openapi.json, plain JSON, is always served.
    docs = services.settings.api_docs
    app = FastAPI(
        title="Tenancy",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.services = services
    hsts = services.settings.public_base_url.lower().startswith("https://")
    app.add_middleware(SecurityHeadersMiddleware, hsts=hsts)
    app.include_router(itn.router)
    if not itn_only:
        for router in (auth.router, tenants.router, members.router, service.router, system.router):
            app.include_router(router)
        app.include_router(metrics.build_router(services))
        install_pages(app)
    _add_error_handlers(app)
    return app


def _answer(request: Request, status_code: int, detail: object, headers: dict[str, str] | None = None) -> Response:
    """JSON for a program; the error page for a browser (pages and API share these handlers)."""
    if wants_page(request):
        message = detail if isinstance(detail, str) else "The request was malformed."
        return error_page(request, status_code, message, headers)
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def malformed_request(request: Request, error: RequestValidationError) -> Response:
        # FastAPI's default echoes the input back, and the input may be a password.
        problems = [
            {"loc": list(issue.get("loc", ())), "msg": issue.get("msg", ""), "type": issue.get("type", "")}
            for issue in error.errors()
        ]
        log.info("bad_request", path=request.url.path, problems=[problem["msg"] for problem in problems])
        return _answer(request, 422, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if wants_page(request):
            return error_page(request, error.status_code, str(error.detail), dict(error.headers or {}))
        return await http_exception_handler(request, error)

    @app.exception_handler(AuthenticationError)
    async def authentication_failed(request: Request, error: AuthenticationError) -> Response:
        log.info("auth_refused", path=request.url.path, reason=error.reason)
        return _answer(request, error.status_code, error.reason)

    @app.exception_handler(TenantBlockedError)
    async def tenant_blocked(request: Request, error: TenantBlockedError) -> Response:
        # Billing is the one place left open: a browser goes there, a program is told where it is.
        log.info("tenant_blocked", path=request.url.path, status=error.status)
        if wants_page(request):
            return RedirectResponse("/account", status_code=303)
        services = request.app.state.services
        billing_url = f"{services.settings.public_base_url}/account"
        body = {"detail": error.reason, "reason": error.why, "billing_url": billing_url}
        return JSONResponse(body, status_code=error.status_code)

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, error: InvalidInputError) -> Response:
        log.info("bad_request", path=request.url.path, reason=str(error))
        return _answer(request, 400, str(error))

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> Response:
        return _answer(request, 404, str(error))

    @app.exception_handler(RateLimitedError)
    async def rate_limited(request: Request, error: RateLimitedError) -> Response:
        log.warning("rate_limited", path=request.url.path, reason=error.reason)
        return _answer(request, 429, error.reason, {"Retry-After": str(error.retry_after)})

    @app.exception_handler(PermanentError)
    async def broken_dependency(request: Request, error: PermanentError) -> Response:
        # A store or provider refusing for good is our failure, not the caller's: logged with the
        # detail, answered without it (PayFast retries an ITN on a 5xx).
        log.error("dependency_failed", path=request.url.path, error=str(error))
        return _answer(request, 503, "temporarily unavailable, try again")

    @app.exception_handler(TransientError)
    async def unavailable(request: Request, error: TransientError) -> Response:
        log.warning("service_unavailable", path=request.url.path, error=str(error))
        return _answer(request, 503, "temporarily unavailable, try again", {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _error: Exception) -> Response:
        # A bug: the person gets a page that says what to do (Starlette re-raises the error after
        # this answer, so its traceback reaches the server log, never the browser).
        return _answer(request, 500, "Something went wrong on our side. Try again in a minute.")
