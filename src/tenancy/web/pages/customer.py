"""The buyer's pages: pricing, checkout (the signed PayFast form, or a simulated payment offline),
the return page that follows provisioning, and the account page. A signed-in owner is led to their
account rather than sold a second site, which provisioning would stop for review (RB-001 section 6)."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Annotated
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from tenancy.bootstrap import Services
from tenancy.config import PayfastMode
from tenancy.domain.billing import SubscriptionStatus
from tenancy.domain.ids import new_transaction_id
from tenancy.domain.model import PaymentVerdict, TenantStatus
from tenancy.errors import InvalidInputError, TenancyError, UnknownPlanError
from tenancy.payfast_offline import first_charge_itn
from tenancy.payments.checkout import (
    CheckoutLinks,
    checkout_fields,
    checkout_signature_matches,
    new_status_key,
    parse_buyer,
    payfast_today,
)
from tenancy.payments.payfast import field_value
from tenancy.payments.simulator import CUSTOM_FIELDS, encode_form
from tenancy.provisioning.status import NO_RECORD, purchase_status
from tenancy.secret_source import SecretName
from tenancy.web.deps import ServicesDep
from tenancy.web.pages.account import account_page
from tenancy.web.pages.rendering import STATIC_DIR, redirect, render
from tenancy.web.pages.security import read_form
from tenancy.web.pages.team_view import is_tenant_admin
from tenancy.web.pages.viewer import Viewer, current_viewer, require_viewer

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

_TRANSACTION_ID = re.compile(r"^TXN-[A-Za-z0-9_-]{1,64}$")
# How long the return page polls while every answer is "no record" before it says so and stops: a
# genuine ITN normally arrives within seconds, and a later one is picked up by reloading the page.
NO_RECORD_LIMIT_SECONDS = 90
# Stand-ins for the other field, so that parse_buyer judges one field at a time.
_VALID_NAME, _VALID_EMAIL = "A", "a@example.com"


@router.get("/")
def home() -> Response:
    return redirect("/pricing")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    # Asked for by browsers (and tools) that ignore the page's <link rel="icon">.
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/pricing")
def pricing(request: Request, services: ServicesDep) -> Response:
    viewer = current_viewer(request)
    context = {"plans": services.plans.plans, "owner": _ownership(services, viewer)}
    return render(request, "pricing.html", context, viewer=viewer)


@router.get("/checkout")
def checkout(request: Request, services: ServicesDep, plan: str = "", cancelled: str = "") -> Response:
    viewer = current_viewer(request)
    owner = _ownership(services, viewer)
    if owner is not None and "subscribe_again" not in owner:
        return render(request, "checkout_owner.html", {"owner": owner}, viewer=viewer)
    try:
        chosen = services.plans.get(plan)
    except UnknownPlanError:
        return _unknown_plan(request, plan)
    notice = "Payment cancelled: nothing was charged. You can try again." if cancelled else None
    context: dict[str, object] = {
        "plan": chosen,
        "notice": notice,
        "form": {},
        "returning": _returning_email(viewer, owner),
    }
    return render(request, "checkout.html", context, viewer=viewer)


def _returning_email(viewer: Viewer | None, owner: dict[str, str] | None) -> str | None:
    """The owner's own email when they subscribe again for their site: the payment must come
    from the tenant's member, so it is not theirs to change on the form."""
    return viewer.email if viewer is not None and owner is not None and "subscribe_again" in owner else None


@router.post("/checkout")
async def start_checkout(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    viewer = current_viewer(request)
    owner = _ownership(services, viewer)
    if owner is not None and "subscribe_again" not in owner:
        # A second purchase would be paid for and then stopped for review: nothing to sell here.
        return render(request, "checkout_owner.html", {"owner": owner}, status_code=409, viewer=viewer)
    try:
        plan = services.plans.get(form.get("plan", ""))
    except UnknownPlanError:
        return _unknown_plan(request, form.get("plan", ""))
    # An owner subscribing again pays for their own site, from their own email: never a form's.
    returning = _returning_email(viewer, owner)
    email = returning or form.get("email", "")
    problems = _buyer_problems(form.get("name", ""), email)
    if problems:
        log.info("bad_request", path=request.url.path, reason="; ".join(problems.values()))
        context = {
            "plan": plan, "errors": list(problems.values()), "invalid": set(problems), "form": form,
            "returning": returning,
        }  # fmt: skip
        return render(request, "checkout.html", context, status_code=400, viewer=viewer)
    buyer = parse_buyer(form.get("name", ""), email)
    settings = services.settings
    fields = checkout_fields(
        plan=plan,
        buyer=buyer,
        transaction_id=new_transaction_id(),
        status_key=new_status_key(),
        merchant_id=settings.payfast_merchant_id,
        # As they are now: a rotated key or passphrase signs the next checkout (SSM on AWS).
        merchant_key=services.current_secret(SecretName.PAYFAST_MERCHANT_KEY) or "",
        links=CheckoutLinks(settings.public_base_url),
        passphrase=services.current_secret(SecretName.PAYFAST_PASSPHRASE),
        today=payfast_today(services.clock.now()),
        # The session's tenant (never the form's): the payment reactivates that site.
        tenant_id=viewer.tenant_id if returning and viewer is not None else None,
    )
    context = {"plan": plan, "buyer": buyer, "fields": fields, "process_url": settings.payfast_process_url}
    return render(request, "checkout_pay.html", context, viewer=viewer)


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
    if not checkout_signature_matches(fields, services.current_secret(SecretName.PAYFAST_PASSPHRASE)):
        log.warning("simulated_payment_refused", reason="checkout signature mismatch")
        message = "The payment form was changed after it was signed. Start the checkout again."
        return render(request, "error.html", {"title": "Payment refused", "message": message}, status_code=400)
    transaction_id = field_value(fields, "m_payment_id") or ""
    # The signed form says what was bought: a subscription's ITN carries PayFast's token for it.
    subscription = field_value(fields, "subscription_type") == "1"
    try:
        itn = first_charge_itn(
            services,
            transaction_id=transaction_id,
            email=field_value(fields, "email_address") or "",
            plan=field_value(fields, "custom_str1") or "",
            amount=field_value(fields, "amount") or "0",
            name_first=field_value(fields, "name_first") or "",
            name_last=field_value(fields, "name_last") or "",
            # One payment per checkout: pressing the button twice sends PayFast's retry, a duplicate.
            pf_payment_id=_simulated_payment_id(transaction_id),
            custom={name: value for name, value in fields if name in CUSTOM_FIELDS},  # the status key's digest too
            token=_simulated_token(transaction_id) if subscription else None,
        )
    except TenancyError as error:
        log.warning("simulated_payment_refused", reason=str(error))
        message = "This plan cannot be bought right now. Start again from the pricing page."
        return render(request, "error.html", {"title": "Payment refused", "message": message}, status_code=400)
    peer = request.client.host if request.client else ""
    record = await run_in_threadpool(services.intake.receive, encode_form(itn), peer, None)
    if record.verdict is PaymentVerdict.REJECTED:
        # The reasons are the payment checks' own words, for the log; the buyer is told what to do.
        log.warning("simulated_payment_rejected", transaction_id=transaction_id, reasons=list(record.reasons))
        message = "This shop's payment checks refused the simulated payment. Start again from the pricing page."
        context = {"title": "Payment refused", "message": message, "reference": transaction_id}
        return render(request, "error.html", context, status_code=400)
    status_key = CheckoutLinks.status_key_in(field_value(fields, "return_url") or "")
    return redirect(CheckoutLinks("").return_url(transaction_id, status_key))


@router.get("/checkout/return")
def checkout_return(request: Request, services: ServicesDep, txn: str = "", key: str = "") -> Response:
    if not _TRANSACTION_ID.match(txn):
        message = "This link has no valid transaction id. Check that the address is complete."
        return render(request, "error.html", {"title": "Unknown purchase", "message": message}, status_code=400)
    if not key:  # nothing could ever open it: no page that waits
        message = f"{NO_RECORD}. If you have paid, check your email for your sign-in details."
        unknown = {"title": "Unknown purchase", "message": message, "reference": txn}
        return render(request, "error.html", unknown, status_code=404, viewer=current_viewer(request))
    status = purchase_status(txn, key, services.journal, services.ledger)
    context = {
        "status": status,
        "status_url": f"/checkout/status?{urlencode({'txn': txn, 'key': key})}",
        "no_record_limit_seconds": NO_RECORD_LIMIT_SECONDS,
    }
    return render(request, "checkout_return.html", context, viewer=current_viewer(request))


@router.get("/checkout/status", include_in_schema=True, tags=["pages"], responses={404: {"description": NO_RECORD}})
def checkout_status(
    services: ServicesDep,
    txn: Annotated[str, Query(pattern=_TRANSACTION_ID.pattern, max_length=68)],
    key: Annotated[str, Query(description="The status key of the return URL.")] = "",
) -> dict[str, object]:
    """What the return page polls: the purchase's state and the message to show, for the holder of
    the checkout's status key; otherwise the 404 of an unknown transaction. No personal data."""
    status = purchase_status(txn, key, services.journal, services.ledger)
    if not status.known:
        raise HTTPException(status_code=404, detail=NO_RECORD)
    return status.as_document()


@router.get("/account")
def account(request: Request, services: ServicesDep, billing: str = "", team: str = "") -> Response:
    """The signed-in viewer's own tenant (active or cancelling); `billing` and `team` name a
    billing or team change just made, whose news the page shows (see pages.account)."""
    viewer = require_viewer(request)
    if viewer.tenant_id is None and viewer.is_operator:
        return redirect("/ops")
    return account_page(request, services, viewer, done=billing, team_done=team)


def _ownership(services: Services, viewer: Viewer | None) -> dict[str, str] | None:
    """For a signed-in owner (a viewer with a tenant), what to tell them of the site they have:
    its plan's name ("" when unknown) and, when its owner may subscribe for it again (its
    subscription cancelled), `subscribe_again`; None for everyone else, who may buy. A site bought
    once keeps RB-001's flow: nothing to buy here."""
    if viewer is None or viewer.tenant_id is None:
        return None
    tenant = services.tenants.get(viewer.tenant_id)
    if tenant is None:
        return {"plan_name": ""}
    try:
        ownership = {"plan_name": services.plans.get(tenant.plan).display_name}
    except UnknownPlanError:  # a plan since taken out of the catalogue
        ownership = {"plan_name": tenant.plan}
    subscription = services.subscriptions.get(tenant.tenant_id)
    ended = subscription is not None and subscription.status is not SubscriptionStatus.ACTIVE
    # A payment that did not come (past due, suspended): paying anew is a new subscription.
    unpaid = subscription is not None and tenant.status in {TenantStatus.PAST_DUE, TenantStatus.SUSPENDED}
    if is_tenant_admin(services, viewer) and (ended or unpaid):
        ownership["subscribe_again"] = "yes"
    return ownership


def _buyer_problems(name: str, email: str) -> dict[str, str]:
    """Every problem of the checkout form, by field: parse_buyer names only the first it meets, so
    each field is judged alone, beside a valid stand-in for the other."""
    problems: dict[str, str] = {}
    for field, attempt in (("name", (name, _VALID_EMAIL)), ("email", (_VALID_NAME, email))):
        try:
            parse_buyer(*attempt)
        except InvalidInputError as error:
            problems[field] = str(error)
    return problems


def _simulated_payment_id(transaction_id: str) -> str:
    digest = hashlib.sha256(f"simulated:{transaction_id}".encode()).digest()
    return str(10**9 + int.from_bytes(digest[:4], "big") % 10**9)


def _simulated_token(transaction_id: str) -> str:
    """The simulated subscription's token: UUID4-shaped like PayFast's, and the same for every press
    of the button, as PayFast's retry of an ITN repeats its token with its pf_payment_id."""
    digest = hashlib.sha256(f"simulated-token:{transaction_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _unknown_plan(request: Request, plan: str) -> Response:
    message = "We have no plan by that name. Choose one from the pricing page."
    return render(request, "error.html", {"title": "Unknown plan", "message": message}, status_code=404)
