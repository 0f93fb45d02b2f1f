"""Errors answered to a browser as a page, to a program as JSON: the same exception handlers
serve both, chosen by what the request accepts (a browser navigating asks for text/html). The page
is written for people: a plain title, and the framework's bare reason phrases ("Not Found")
replaced by what happened and what to do next."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from fastapi import Request
from starlette.responses import Response

from tenancy.web.pages.rendering import render
from tenancy.web.pages.viewer import Viewer, current_viewer

__all__ = ["error_page", "viewer_if_any", "wants_page"]

_TITLES = {
    400: "Something in the request is wrong",
    401: "Please sign in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not available here",
    413: "Too much data",
    422: "Something in the request is wrong",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}

# Said instead of a bare reason phrase, which is all the framework gives for these.
_EXPLANATIONS = {
    400: "We could not read that request. Go back, check what you entered, and try again.",
    401: "Sign in to see this page.",
    403: "You are not allowed to see this page.",
    404: "There is no page at this address. Check the link, or start again from the pricing page.",
    405: "This address does not take that kind of request. Start again from the pricing page.",
    413: "That was more data than we accept. Send less and try again.",
    422: "We could not read that request. Go back, check what you entered, and try again.",
    500: "Something went wrong on our side. Try again in a minute.",
    503: "The service is busy or briefly unavailable. Try again in a minute.",
}


def wants_page(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    title = _TITLES.get(status_code, "Something went wrong")
    context = {"title": title, "message": _human(status_code, message)}
    response = render(request, "error.html", context, status_code=status_code, viewer=viewer_if_any(request))
    response.headers.update(headers or {})
    return response


def _human(status_code: int, message: str) -> str:
    """`message`, unless it is only the status's reason phrase (or says nothing)."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = ""
    if message.strip() and message.strip().lower() != phrase.lower():
        return message
    return _EXPLANATIONS.get(status_code, "Something went wrong. Try again, or start from the pricing page.")


def viewer_if_any(request: Request) -> Viewer | None:
    """Who is signed in, for an error page's links; None when that cannot be told."""
    try:
        return current_viewer(request)
    except Exception:  # noqa: BLE001 - the identity provider failing is why we are here, perhaps
        return None
