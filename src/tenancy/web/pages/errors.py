"""Errors answered to a browser as a page, to a program as JSON: the same exception handlers
serve both, chosen by what the request accepts (a browser navigating asks for text/html)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from starlette.responses import Response

from tenancy.web.pages.rendering import render
from tenancy.web.pages.viewer import Viewer, current_viewer

__all__ = ["error_page", "wants_page"]

_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    413: "Too large",
    422: "Bad request",
    429: "Too many attempts",
    503: "Temporarily unavailable",
}


def wants_page(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def error_page(
    request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    title = _TITLES.get(status_code, "Something went wrong")
    context = {"title": title, "message": message}
    response = render(request, "error.html", context, status_code=status_code, viewer=_viewer(request))
    response.headers.update(headers or {})
    return response


def _viewer(request: Request) -> Viewer | None:
    try:
        return current_viewer(request)
    except Exception:  # noqa: BLE001 - the identity provider failing is why we are here, perhaps
        return None
