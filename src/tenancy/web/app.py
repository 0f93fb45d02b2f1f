"""`create_app(services)`: the FastAPI application, with the in-process workers it may run."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tenancy import __version__
from tenancy.bootstrap import Services
from tenancy.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from tenancy.web.pages import install_pages
from tenancy.web.routes import auth, itn, metrics, system, tenants

__all__ = ["create_app"]

log = structlog.get_logger(__name__)


def create_app(services: Services, *, workers: int = 0) -> FastAPI:
    """The app over `services`; with `workers` > 0 it also runs that many worker threads."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=services.worker().run_until,
                args=(stop, services.settings.worker_poll_seconds),
                name=f"worker-{number}",
                daemon=True,
            )
            for number in range(workers)
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                # Each worker finishes the step in hand; an unfinished job goes back to the queue.
                thread.join(timeout=30)

    app = FastAPI(title="Tenancy", version=__version__, lifespan=lifespan)
    app.state.services = services
    for router in (itn.router, auth.router, tenants.router, system.router):
        app.include_router(router)
    app.include_router(metrics.build_router(services))
    install_pages(app)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def malformed_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back, and the input may be a password.
        problems = [
            {"loc": list(issue.get("loc", ())), "msg": issue.get("msg", ""), "type": issue.get("type", "")}
            for issue in error.errors()
        ]
        log.info("bad_request", path=request.url.path, problems=[problem["msg"] for problem in problems])
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(AuthenticationError)
    async def authentication_failed(request: Request, error: AuthenticationError) -> JSONResponse:
        log.info("auth_refused", path=request.url.path, reason=error.reason)
        return JSONResponse({"detail": error.reason}, status_code=error.status_code)

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, error: InvalidInputError) -> JSONResponse:
        log.info("bad_request", path=request.url.path, reason=str(error))
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(RateLimitedError)
    async def rate_limited(request: Request, error: RateLimitedError) -> JSONResponse:
        log.warning("rate_limited", path=request.url.path, reason=error.reason)
        return JSONResponse({"detail": error.reason}, status_code=429, headers={"Retry-After": str(error.retry_after)})

    @app.exception_handler(PermanentError)
    async def broken_dependency(request: Request, error: PermanentError) -> JSONResponse:
        # A store or provider refusing for good is our failure, not the caller's: logged with the
        # detail, answered without it (PayFast retries an ITN on a 5xx).
        log.error("dependency_failed", path=request.url.path, error=str(error))
        return JSONResponse({"detail": "temporarily unavailable, try again"}, status_code=503)

    @app.exception_handler(TransientError)
    async def unavailable(request: Request, error: TransientError) -> JSONResponse:
        log.warning("service_unavailable", path=request.url.path, error=str(error))
        return JSONResponse(
            {"detail": "temporarily unavailable, try again"}, status_code=503, headers={"Retry-After": "1"}
        )
