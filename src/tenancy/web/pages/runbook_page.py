"""The runbook page of the operations console (operators only): RB-001 as the product ships it,
each numbered section at its anchor (`/ops/runbook#4-2`), where findings and alerts link to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from tenancy.runbook.runbook_doc import DOCUMENT_NAME, RUNBOOK_PATH, load_runbook
from tenancy.web.pages.ops import _page
from tenancy.web.pages.viewer import require_operator

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get(RUNBOOK_PATH)
def runbook(request: Request) -> Response:
    viewer = require_operator(request)
    document = load_runbook()
    context: dict[str, Any] = {"name": DOCUMENT_NAME, "document": None, "body": None}
    if document is None:
        # A package built without the document: the page says so, every link to it lands here.
        response = _page(request, viewer, "ops/runbook.html", "runbook", context)
        response.status_code = 404
        return response
    # The HTML is the Markdown renderer's own, raw HTML in the text escaped (runbook_doc).
    body = Markup(document.html())  # noqa: S704
    context = {**context, "document": document, "body": body}
    return _page(request, viewer, "ops/runbook.html", "runbook", context)
