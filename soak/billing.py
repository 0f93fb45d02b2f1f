"""The soak's subscription traffic (issue 20, third bullet): renewals, cancellations and replays
of both, and the checks that prove no tenant has two subscriptions and no transition was applied
twice.

How it fits soak/run.py:

1. `add_subscriptions(plan, seed)`, right after the plan is made: a seeded fraction (~30%) of the
   `complete` purchases become subscription purchases. Their first COMPLETE ITN is re-signed with
   a `token` and a `billing_date` (today at PayFast), as a real subscription checkout's first ITN
   is; the Itn objects are changed in place, so every copy the first wave sends carries them. For
   each, a chain: 1-3 renewal ITNs (the same token, m_payment_id, custom fields and buyer, a new
   pf_payment_id, `billing_date` one period later each, COMPLETE, the recurring amount) and, for
   ~30%, a final CANCELLED ITN (no amount fields). Each ITN of a chain is replayed ~30% of the
   time: half as a copy fired at the same moment as the original, half later, after every chain
   was sent. The chain's ITNs go into `plan.itns`, so the judge's ledger check (one accepted, the
   rest duplicates, per ITN) covers them.
2. `send_wave(...)`, after the first wave has drained (every first charge provisioned): one unit
   per subscription (renewal n before n+1, the cancellation last; different subscriptions
   concurrently), then the later replays.
3. `check(...)`, on the stores read after the last drain: the problems found, if any.

The random choices come from their own generator (seeded from --seed), so the first wave's mix
for a given seed is what it was before subscriptions were added.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from tenancy.billing.emails import RECEIPT_SUBJECT
from tenancy.config import PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.billing import BillingKind, SubscriptionStatus, add_months
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import EventType
from tenancy.domain.model import TenantStatus
from tenancy.domain.plans import PlanCatalogue
from tenancy.payments import payfast
from tenancy.payments.checkout import payfast_today
from tenancy.payments.simulator import CUSTOM_FIELDS, build_itn, encode_form

__all__ = ["Chain", "SubscriptionTraffic", "add_subscriptions", "check", "send_wave"]

SUBSCRIBED = 0.30  # of the `complete` purchases
CANCELLED = 0.30  # of the subscriptions: a CANCELLED ITN ends the chain
REPLAYED = 0.30  # of the chains' ITNs: sent again (half at the same moment, half later)
MAX_RENEWALS = 3
DELIVERED = frozenset({"stored", "delivered"})


@dataclass
class Chain:
    """One subscription purchase and what the second wave sends for it."""

    purchase: Any  # run.Purchase
    token: str
    billing_date: date
    months: int  # the plan's billing period
    renewals: list[Any]  # run.Itn, in order
    cancellation: Any | None  # run.Itn
    fields: list[tuple[str, str]] = field(default_factory=list)  # the first ITN's, as sent
    number: int = 0  # the purchase's number in the plan (its pf_payment_ids derive from it)

    @property
    def tenant_id(self) -> str:
        return tenant_id_for(self.purchase.transaction_id)

    @property
    def itns(self) -> list[Any]:
        return [*self.renewals, *([self.cancellation] if self.cancellation else [])]


@dataclass
class SubscriptionTraffic:
    chains: list[Chain] = field(default_factory=list)
    wave: list[Any] = field(default_factory=list)  # run.Unit: one per chain, its ITNs in order
    later: list[Any] = field(default_factory=list)  # run.Unit: replays after the wave

    @property
    def sends(self) -> int:
        return sum(step.copies for unit in (*self.wave, *self.later) for step in unit.steps)

    @property
    def renewals(self) -> int:
        return sum(len(chain.renewals) for chain in self.chains)

    @property
    def cancellations(self) -> int:
        return sum(1 for chain in self.chains if chain.cancellation is not None)

    @property
    def replays(self) -> int:
        return self.sends - self.renewals - self.cancellations

    def line(self) -> str:
        return (
            f"subscriptions={len(self.chains)} renewals={self.renewals} cancellations={self.cancellations}"
            f" replays={self.replays}"
        )


def _resign(fields: list[tuple[str, str]], **changes: Any) -> bytes:
    """The ITN `fields` (as posted) built again with `changes` (status, pf_payment_id, token,
    billing_date...), signed with the soak's passphrase; custom fields and buyer kept."""
    value = dict(fields)
    arguments: dict[str, Any] = {
        "transaction_id": value["m_payment_id"],
        "email": value["email_address"],
        "plan": value["custom_str1"],
        "amount": value.get("amount_gross") or "0.00",
        "merchant_id": value["merchant_id"],
        "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
        "status": value["payment_status"],
        "pf_payment_id": value["pf_payment_id"],
        "name_first": value.get("name_first", ""),
        "name_last": value.get("name_last", ""),
        "custom": {name: value[name] for name in CUSTOM_FIELDS if name != "custom_str1" and value.get(name)},
        "token": value.get("token"),
        "billing_date": value.get("billing_date"),
    }
    arguments.update(changes)
    return encode_form(build_itn(**arguments))


def add_subscriptions(
    plan: Any,
    seed: int,
    catalogue: PlanCatalogue,
    classes: tuple[type, type, type],
    fraction: float = SUBSCRIBED,
    today: date | None = None,
) -> SubscriptionTraffic:
    """Turns ~`fraction` of the plan's `complete` purchases into subscription purchases (their
    first ITN re-signed with a token and billing_date) and returns their second-wave traffic; the
    chains' ITNs are added to `plan.itns`. `plan` is run.Plan (run's Itn, Step and Unit classes are
    given as `classes`, so this module does not import run.py, which runs as __main__)."""
    Itn, Step, Unit = classes  # noqa: N806

    rng = random.Random(f"soak-subscriptions-{seed}")
    today = today or payfast_today(datetime.now(UTC))
    first_of = {itn.label: itn for itn in plan.itns}
    traffic = SubscriptionTraffic()
    if fraction <= 0:
        return traffic
    for number, purchase in enumerate(plan.purchases, start=1):
        if purchase.kind != "complete" or rng.random() >= fraction:
            continue
        first = first_of[f"{purchase.transaction_id}/COMPLETE"]
        token = str(uuid.UUID(int=rng.getrandbits(128), version=4))  # shaped as PayFast's: 36 characters
        fields = payfast.parse_itn(first.body)
        sold = catalogue.get(dict(fields)["custom_str1"])
        months = sold.billing.months if sold.billing else 1
        first.body = _resign(fields, token=token, billing_date=today.isoformat())
        purchase.token = token
        renewals = []
        for k in range(1, rng.randint(1, MAX_RENEWALS) + 1):
            pf_payment_id = str(5_000_000_000_000 + seed * 10_000_000 + number * 10 + k)
            body = _resign(
                fields,
                status="COMPLETE",
                pf_payment_id=pf_payment_id,
                amount=sold.recurring_price_zar,
                token=token,
                billing_date=add_months(today, k * months).isoformat(),
            )
            renewals.append(Itn(body, f"{purchase.transaction_id}/renewal-{k}", True, pf_payment_id, "COMPLETE"))
        purchase.renewals = len(renewals)
        chain = Chain(purchase, token, today, months, renewals, None, fields, number)
        traffic.chains.append(chain)
        if rng.random() < CANCELLED:
            _cancel(chain, seed, Itn)
    if traffic.chains and not traffic.cancellations:
        _cancel(traffic.chains[-1], seed, Itn)  # at least one cancellation, however small the run
    for chain in traffic.chains:
        steps = [Step(itn) for itn in chain.itns]
        for step in steps:
            if rng.random() < REPLAYED:
                if rng.random() < 0.5:
                    step.copies += 1  # fired together with the original
                else:
                    traffic.later.append(Unit([Step(step.itn)]))
        traffic.wave.append(Unit(steps))
        plan.itns.extend(chain.itns)
    rng.shuffle(traffic.wave)
    rng.shuffle(traffic.later)
    for unit in (*traffic.wave, *traffic.later):
        for step in unit.steps:
            step.itn.sends += step.copies
    return traffic


def _cancel(chain: Chain, seed: int, itn_class: type) -> None:
    """Ends `chain` with a CANCELLED ITN (a new pf_payment_id, no amount), after its renewals."""
    pf_payment_id = str(5_000_000_000_000 + seed * 10_000_000 + chain.number * 10 + 9)
    body = _resign(
        chain.fields,
        status="CANCELLED",
        pf_payment_id=pf_payment_id,
        token=chain.token,
        billing_date=add_months(chain.billing_date, len(chain.renewals) * chain.months).isoformat(),
    )
    transaction_id = chain.purchase.transaction_id
    chain.cancellation = itn_class(body, f"{transaction_id}/CANCELLED", True, pf_payment_id, "CANCELLED")
    chain.purchase.cancelled = True


def send_wave(send_all: Any, base_url: str, traffic: SubscriptionTraffic, sent: Any, concurrency: int) -> None:
    """The second wave: each chain in order (chains concurrently), then the later replays."""
    send_all(base_url, traffic.wave, sent, concurrency)
    send_all(base_url, traffic.later, sent, concurrency)


def read_histories(services: Any, subscriptions: list[Any]) -> dict[str, list[Any]]:
    """Each subscribed tenant's lifecycle history (its transitions, oldest first)."""
    return {each.tenant_id: services.lifecycle.history(each.tenant_id) for each in subscriptions}


def check(traffic: SubscriptionTraffic, stores: Any) -> list[str]:
    """The subscriptions in the stores against what was sent: one subscription per subscribed
    tenant (with the purchase's token) and none for anyone else, every renewal applied once
    (replays never), a cancellation applied once, the tenant's status as tenant-lifecycle.md has it
    (`cancelling` after a CANCELLED ITN until the paid-through date; `active` otherwise), each
    move in the tenant's history once, and no receipt delivered twice."""
    problems: list[str] = []
    by_tenant: dict[str, list[Any]] = defaultdict(list)
    by_token: dict[str, list[Any]] = defaultdict(list)
    for subscription in stores.subscriptions:
        by_tenant[subscription.tenant_id].append(subscription)
        by_token[subscription.token].append(subscription)
    tenants = {tenant.tenant_id: tenant for tenant in stores.tenants}
    problems += [f"subscriptions: tenant {t} has {len(s)} subscriptions" for t, s in by_tenant.items() if len(s) > 1]
    problems += [f"subscriptions: token {t} held by {len(s)} subscriptions" for t, s in by_token.items() if len(s) > 1]
    expected = {chain.tenant_id for chain in traffic.chains}
    strays = sorted(set(by_tenant) - expected)
    problems += [f"subscriptions: a subscription for {t}, which bought none" for t in strays[:10]]
    receipts: Counter[str] = Counter(
        email.tags.get("pf_payment_id", "")
        for email in stores.emails
        if email.subject.startswith(RECEIPT_SUBJECT) and email.status in DELIVERED
    )
    for chain in traffic.chains:
        name = f"subscriptions: {chain.purchase.transaction_id}"
        held = by_tenant.get(chain.tenant_id, [])
        if len(held) != 1 or held[0].token != chain.token or held[0].transaction_id != chain.purchase.transaction_id:
            found = [(s.token, s.transaction_id) for s in held]
            problems.append(f"{name}: expected one subscription with token {chain.token}, found {found}")
            continue
        subscription = held[0]
        kinds = Counter(entry.kind for entry in subscription.history)
        renewed = Counter(entry.pf_payment_id for entry in subscription.history if entry.kind is BillingKind.RENEWAL)
        sent_renewals = {itn.pf_payment_id for itn in chain.renewals}
        cancelled = chain.cancellation is not None
        if set(renewed) != sent_renewals or any(count > 1 for count in renewed.values()):
            problems.append(f"{name}: renewals applied {dict(renewed)}, sent {sorted(sent_renewals)} (once each)")
        if kinds[BillingKind.FIRST_CHARGE] != 1:
            problems.append(f"{name}: {kinds[BillingKind.FIRST_CHARGE]} first charges in its billing history")
        if subscription.periods_paid != 1 + len(chain.renewals):
            problems.append(f"{name}: {subscription.periods_paid} periods paid, expected {1 + len(chain.renewals)}")
        if subscription.billing_date != chain.billing_date:
            problems.append(f"{name}: billing date {subscription.billing_date}, the first ITN's {chain.billing_date}")
        through = add_months(chain.billing_date, (1 + len(chain.renewals)) * chain.months)
        if subscription.paid_through != through:
            problems.append(f"{name}: paid through {subscription.paid_through}, expected {through}")
        if kinds[BillingKind.CANCELLATION] != (1 if cancelled else 0):
            problems.append(f"{name}: {kinds[BillingKind.CANCELLATION]} cancellations in its billing history,"
                            f" expected {1 if cancelled else 0}")  # fmt: skip
        status = SubscriptionStatus.CANCELLING if cancelled else SubscriptionStatus.ACTIVE
        if subscription.status is not status:
            problems.append(f"{name}: subscription {subscription.status.value}, expected {status.value}")
        tenant = tenants.get(chain.tenant_id)
        tenant_status = TenantStatus.CANCELLING if cancelled else TenantStatus.ACTIVE
        if tenant is None or tenant.status is not tenant_status:
            problems.append(f"{name}: tenant {tenant.status.value if tenant else 'missing'},"
                            f" expected {tenant_status.value}")  # fmt: skip
        # The tenant's history: activated once, renewed once per renewal, cancelling once.
        moves = Counter(transition.event for transition in stores.histories.get(chain.tenant_id, []))
        wanted = {
            EventType.ACTIVATED: 1,
            EventType.RENEWED: len(chain.renewals),
            EventType.CANCELLING: 1 if cancelled else 0,
        }
        wrong = {event.value: (moves[event], count) for event, count in wanted.items() if moves[event] != count}
        others = {event.value: count for event, count in moves.items() if event not in wanted}
        if wrong or others:
            problems.append(f"{name}: lifecycle history (found, expected) {wrong}, unexpected moves {others}")
        twice = {pf: count for pf, count in receipts.items() if pf in sent_renewals and count > 1}
        if twice:
            problems.append(f"{name}: receipts delivered more than once: {twice}")
    return problems
