"""The buyer's pages: pricing, checkout (the signed PayFast form, or a simulated payment offline),
the return page that follows provisioning, and the account page."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tenancy.config import PayfastMode
from tenancy.domain.ids import new_transaction_id
from tenancy.domain.model import PaymentVerdict
from tenancy.errors import InvalidInputError, TenantNotFoundError, UnknownPlanError
from tenancy.payments.checkout import CheckoutLinks, checkout_fields, checkout_signature_matches, parse_buyer
from tenancy.payments.payfast import field_value
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.provisioning.status import purchase_status
from tenancy.web.deps import ServicesDep
from tenancy.web.pages.rendering import redirect, render
from tenancy.web.pages.security import read_form
from tenancy.web.pages.viewer import current_viewer, require_viewer

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

_TRANSACTION_ID = re.compile(r"^TXN-[A-Za-z0-9_-]{1,64}$")


@router.get("/")
def home() -> Response:
    return redirect("/pricing")


@router.get("/pricing")
def pricing(request: Request, services: ServicesDep) -> Response:
    return render(request, "pricing.html", {"plans": services.plans.plans}, viewer=current_viewer(request))


@router.get("/checkout")
def checkout(request: Request, services: ServicesDep, plan: str = "", cancelled: str = "") -> Response:
    try:
        chosen = services.plans.get(plan)
    except UnknownPlanError:
        return _unknown_plan(request, plan)
    notice = "Payment cancelled: nothing was charged. You can try again." if cancelled else None
    return render(request, "checkout.html", {"plan": chosen, "notice": notice, "form": {}})


@router.post("/checkout")
async def start_checkout(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    try:
        plan = services.plans.get(form.get("plan", ""))
    except UnknownPlanError:
        return _unknown_plan(request, form.get("plan", ""))
    try:
        buyer = parse_buyer(form.get("name", ""), form.get("email", ""))
    except InvalidInputError as error:
        log.info("bad_request", path=request.url.path, reason=str(error))
        context = {"plan": plan, "error": str(error), "form": form}
        return render(request, "checkout.html", context, status_code=400)
    settings = services.settings
    fields = checkout_fields(
        plan=plan,
        buyer=buyer,
        transaction_id=new_transaction_id(),
        merchant_id=settings.payfast_merchant_id,
        merchant_key=settings.payfast_merchant_key.get_secret_value(),
        links=CheckoutLinks(settings.public_base_url),
        passphrase=settings.passphrase,
    )
    context = {"plan": plan, "buyer": buyer, "fields": fields, "process_url": settings.payfast_process_url}
    return render(request, "checkout_pay.html", context)


@router.post("/checkout/simulate")
async def simulate_payment(request: Request, services: ServicesDep) -> Response:
    """Offline mode only: PayFast's part played here, with a genuinely signed ITN through intake."""
    settings = services.settings
    if settings.payfast_mode is not PayfastMode.OFFLINE:
        return render(
            request,
            "error.html",
            {"title": "Not available", "message": "Payments are not simulated here."},
            status_code=404,
        )
    fields = list((await read_form(request)).items())
    if not checkout_signature_matches(fields, settings.passphrase):
        log.warning("simulated_payment_refused", reason="checkout signature mismatch")
        message = "The payment form was changed after it was signed. Start the checkout again."
        return render(request, "error.html", {"title": "Payment refused", "message": message}, status_code=400)
    transaction_id = field_value(fields, "m_payment_id") or ""
    itn = build_itn(
        transaction_id=transaction_id,
        email=field_value(fields, "email_address") or "",
        plan=field_value(fields, "custom_str1") or "",
        amount=field_value(fields, "amount") or "0",
        merchant_id=settings.payfast_merchant_id,
        passphrase=settings.passphrase,
        name_first=field_value(fields, "name_first") or "",
        name_last=field_value(fields, "name_last") or "",
        # One payment per checkout: pressing the button twice sends PayFast's retry, a duplicate.
        pf_payment_id=_simulated_payment_id(transaction_id),
    )
    peer = request.client.host if request.client else ""
    record = await run_in_threadpool(services.intake.receive, encode_form(itn), peer, None)
    if record.verdict is PaymentVerdict.REJECTED:
        message = f"The simulated payment was refused: {record.reasons[0] if record.reasons else 'rejected'}."
        return render(request, "error.html", {"title": "Payment refused", "message": message}, status_code=400)
    return redirect(CheckoutLinks("").return_url(transaction_id))


@router.get("/checkout/return")
def checkout_return(request: Request, services: ServicesDep, txn: str = "") -> Response:
    if not _TRANSACTION_ID.match(txn):
        message = "This link has no valid transaction id. Check the link, or contact support."
        return render(request, "error.html", {"title": "Unknown purchase", "message": message}, status_code=400)
    status = purchase_status(txn, services.journal, services.ledger)
    return render(request, "checkout_return.html", {"status": status}, viewer=current_viewer(request))


@router.get("/checkout/status", include_in_schema=True, tags=["pages"])
def checkout_status(
    services: ServicesDep, txn: Annotated[str, Query(pattern=_TRANSACTION_ID.pattern, max_length=68)]
) -> dict[str, object]:
    """What the return page polls: the purchase's state and the message to show. No personal data."""
    return purchase_status(txn, services.journal, services.ledger).as_document()


@router.get("/account")
def account(request: Request, services: ServicesDep) -> Response:
    viewer = require_viewer(request)
    if viewer.tenant_id is None and viewer.is_operator:
        return redirect("/ops")
    try:
        # The tenant comes from the verified token alone, never from the request.
        tenant = services.accounts.tenant_for_token(viewer.token) if viewer.tenant_id else None
    except TenantNotFoundError:
        tenant = None
    if tenant is None:
        message = "Tenant not found: this account has no active site. Contact support."
        context = {"title": "Tenant not found", "message": message}
        return render(request, "error.html", context, status_code=403, viewer=viewer)
    try:
        plan_name = services.plans.get(tenant.plan).display_name
    except UnknownPlanError:  # a plan since taken out of the catalogue: the tenant keeps its limits
        plan_name = tenant.plan
    return render(request, "account.html", {"tenant": tenant, "plan_name": plan_name}, viewer=viewer)


def _simulated_payment_id(transaction_id: str) -> str:
    digest = hashlib.sha256(f"simulated:{transaction_id}".encode()).digest()
    return str(10**9 + int.from_bytes(digest[:4], "big") % 10**9)


def _unknown_plan(request: Request, plan: str) -> Response:
    message = "We have no plan by that name. Choose one from the pricing page."
    return render(request, "error.html", {"title": "Unknown plan", "message": message}, status_code=404)
