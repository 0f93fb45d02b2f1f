"""`POST /payments/payfast/itn`: PayFast's payment notifications, read from the raw body."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.requests import ClientDisconnect

from tenancy.domain.model import PaymentVerdict
from tenancy.payments.intake import MAX_ITN_BYTES
from tenancy.web.deps import ServicesDep

__all__ = ["MAX_ITN_BYTES", "router"]

router = APIRouter(tags=["payments"])
log = structlog.get_logger(__name__)


@router.post(
    "/payments/payfast/itn",
    summary="Receive a PayFast ITN",
    responses={
        200: {"description": "Accepted, or a duplicate of an accepted ITN"},
        400: {"description": "Rejected by a security check; the reason says which"},
        413: {"description": "Body too large"},
        429: {"description": "Too many ITNs from this address; see Retry-After"},
        503: {
            "description": "PayFast's validate endpoint or one of our stores could not answer, or a kept"
            " subscription ITN is not applied yet; PayFast will retry"
        },
    },
)
async def receive_itn(request: Request, services: ServicesDep) -> Response:
    peer = request.client.host if request.client else ""
    forwarded_for = request.headers.get("x-forwarded-for")
    declared = request.headers.get("content-length", "0")
    body = b""
    if declared.isdigit() and int(declared) <= MAX_ITN_BYTES:
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_ITN_BYTES:
                    break
        except ClientDisconnect:
            # The sender went away mid-body: there is no one to answer and nothing whole to keep.
            # PayFast sends the ITN again when it had no 200.
            log.info("itn_client_disconnected", peer=peer, received_bytes=len(body))
            return Response(status_code=400)
    if len(body) > MAX_ITN_BYTES or not declared.isdigit() or int(declared) > MAX_ITN_BYTES:
        await run_in_threadpool(services.intake.refuse_unread, peer, forwarded_for, "body too large", body)
        return JSONResponse({"detail": "body too large"}, status_code=413)
    record = await run_in_threadpool(services.intake.receive, body, peer, request.headers.get("x-forwarded-for"))
    if record.verdict is PaymentVerdict.REJECTED:
        return JSONResponse({"detail": record.reasons[0] if record.reasons else "rejected"}, status_code=400)
    if record.verdict is PaymentVerdict.UNCONFIRMED:
        return JSONResponse({"detail": "payment could not be confirmed yet"}, status_code=503)
    return PlainTextResponse("OK")
