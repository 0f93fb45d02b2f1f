"""PayFast's side of a subscription, played by Tenancy itself when there is no PayFast account
(offline mode, `make run`): the ITNs PayFast would send for a subscription's first charge, each
renewal and its cancellation, with the built-in subscription API simulator kept in step (a
first charge registers the subscription there, a renewal charges it, a cancellation cancels it),
so `fetch` answers what the ITNs said. For the entrypoints that play PayFast: `tenancy itn send`
and the simulated checkout."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.billing.settle import token_of
from tenancy.bootstrap import Services
from tenancy.domain.billing import add_months, cents
from tenancy.domain.model import PaymentVerdict
from tenancy.errors import InvalidInputError, NotFoundError
from tenancy.payments.checkout import payfast_today
from tenancy.payments.simulator import build_itn, new_subscription_token

__all__ = ["first_charge_itn", "subscription_itn"]

Fields = list[tuple[str, str]]


def first_charge_itn(
    services: Services,
    *,
    transaction_id: str,
    email: str,
    plan: str,
    amount: Decimal | str | None = None,
    status: str = "COMPLETE",
    pf_payment_id: str | None = None,
    name_first: str = "Test",
    name_last: str = "Customer",
    custom: Mapping[str, str] | None = None,
    token: str | None = None,
) -> Fields:
    """A checkout's ITN. A completed charge of a subscription plan carries a token (`token`, else a
    new one) and today at PayFast as its billing date, and (offline) the simulator learns of the
    subscription."""
    sold = services.plans.get(plan)
    settings = services.settings
    billing_date = None
    if sold.billing is None or status != "COMPLETE":
        token = None
    else:
        token = token or new_subscription_token()
        today = payfast_today(services.clock.now())
        billing_date = today.isoformat()
        simulator = _simulator(services)
        if simulator is not None:
            next_charge = add_months(today, sold.billing.months)
            simulator.register(token, cents(sold.recurring_price_zar), int(sold.billing), next_charge)
    return build_itn(
        transaction_id=transaction_id,
        email=email,
        plan=plan,
        amount=amount if amount is not None else sold.price_zar,
        merchant_id=settings.payfast_merchant_id,
        passphrase=settings.passphrase,
        status=status,
        pf_payment_id=pf_payment_id,
        name_first=name_first,
        name_last=name_last,
        custom=custom,
        token=token,
        billing_date=billing_date,
    )


def subscription_itn(
    services: Services, token: str, *, status: str = "COMPLETE", pf_payment_id: str | None = None
) -> Fields:
    """The ITN PayFast sends for a known subscription: a renewal (COMPLETE, a new payment id, the
    subscription's current recurring amount) or its cancellation (CANCELLED), with the first
    charge's m_payment_id, custom fields and buyer, as PayFast repeats them."""
    subscription = services.subscriptions.find_by_token(token)
    if subscription is None:
        raise NotFoundError(f"no subscription has the token {token!r}")
    first = next(
        (
            payment
            for payment in services.ledger.find(transaction_id=subscription.transaction_id)
            if payment.verdict is PaymentVerdict.ACCEPTED and token_of(payment) == token
        ),
        None,
    )
    if first is None or first.email is None:
        raise InvalidInputError(f"the first charge of {subscription.transaction_id} is not in the ledger")
    custom = {
        name: value for name, value in first.fields if name.startswith("custom_") and name != "custom_str1" and value
    }
    simulator = _simulator(services)
    if simulator is not None:
        if status == "COMPLETE":
            simulator.charge(token)
        elif status == "CANCELLED":
            simulator.cancel(token)
    settings = services.settings
    names = dict(first.fields)
    return build_itn(
        transaction_id=subscription.transaction_id,
        email=first.email,
        plan=first.plan or subscription.plan,
        amount=subscription.recurring_amount,
        merchant_id=settings.payfast_merchant_id,
        passphrase=settings.passphrase,
        status=status,
        pf_payment_id=pf_payment_id,
        name_first=names.get("name_first", ""),
        name_last=names.get("name_last", ""),
        custom=custom,
        token=token,
        billing_date=names.get("billing_date"),
    )


def _simulator(services: Services) -> SimulatedSubscriptionApi | None:
    api = services.subscription_api
    return api if isinstance(api, SimulatedSubscriptionApi) else None
