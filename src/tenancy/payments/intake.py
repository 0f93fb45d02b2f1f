"""The ITN use case: run PayFast's six security checks in order, keep the ITN in the ledger,
and turn a genuine COMPLETE payment into exactly one provisioning job, or a subscription's
renewal or cancellation into exactly one change of its subscription."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import structlog

from tenancy.domain.billing import Subscription
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import invoice_number_for, normalized_email_or_none, tenant_id_for
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.domain.plans import PlanCatalogue
from tenancy.errors import InvalidInputError, RateLimitedError, TenancyError, TransientError, UnknownPlanError
from tenancy.payments import payfast
from tenancy.ports import Clock, PaymentConfirmer, PaymentLedger, PurchaseObserver, RateLimiter, SubscriptionStore
from tenancy.secret_source import SecretName, SecretSource

__all__ = ["MAX_ITN_BYTES", "IntakePolicy", "PaymentIntake", "looks_like_email"]

log = structlog.get_logger(__name__)

PAYMENT_STATUSES = ("COMPLETE", "FAILED", "PENDING", "CANCELLED")
_TRANSACTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# An amount as PayFast writes one: ASCII digits with no leading zero, a point, two decimals
# ("299.00"). Nothing else is read as an amount: no exponent, sign, padding, third decimal, NaN or
# other script's digits.
_AMOUNT = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")
# A real ITN is well under 2 KB; anything this large is not from PayFast (every entrypoint refuses it).
MAX_ITN_BYTES = 16_384


def looks_like_email(value: str) -> bool:
    return len(value) <= 254 and _EMAIL.match(value) is not None


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    merchant_id: str
    passphrase: str | None
    source_ranges: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    check_source: bool = True
    confirm_with_payfast: bool = True
    max_per_minute_per_source: int = 300


class _RejectedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PaymentIntake:
    def __init__(
        self,
        policy: IntakePolicy,
        plans: PlanCatalogue,
        ledger: PaymentLedger,
        confirmer: PaymentConfirmer,
        clock: Clock,
        limiter: RateLimiter | None = None,
        observer: PurchaseObserver | None = None,
        subscriptions: SubscriptionStore | None = None,
        secrets: SecretSource | None = None,
        settle: Callable[[str], object] | None = None,
    ) -> None:
        self._subscriptions = subscriptions
        # Applies a checkout's accepted subscription ITNs to its subscription (billing.settle).
        self._settle = settle
        # When given, each ITN's signature is checked with the passphrase it holds now (rotated in
        # SSM without a redeploy), in place of the policy's.
        self._secrets = secrets
        self._policy = policy
        self._observer = observer
        self._plans = plans
        self._ledger = ledger
        self._confirmer = confirmer
        self._clock = clock
        self._limiter = limiter

    def receive(self, body: bytes, peer: str, forwarded_for: str | None = None) -> PaymentRecord:
        """Checks and records one ITN; the returned record's verdict says what happened. A
        subscription ITN kept but not yet applied to its subscription raises TransientError, so
        that it is answered as not received and PayFast sends it again."""
        source_ip = payfast.client_address(peer, forwarded_for, self._policy.trusted_proxies)
        self._throttle(source_ip)
        received_at = format_timestamp(self._clock.now())
        try:
            fields = payfast.parse_itn(body)
        except InvalidInputError as error:
            unreadable = (("_raw", body[:2048].decode("utf-8", errors="replace")),)
            return self._keep(PaymentRecord(received_at, source_ip, unreadable, PaymentVerdict.REJECTED, (str(error),)))

        payment = PaymentRecord(
            received_at=received_at,
            source_ip=source_ip,
            fields=tuple(fields),
            verdict=PaymentVerdict.ACCEPTED,
            pf_payment_id=payfast.field_value(fields, "pf_payment_id"),
            transaction_id=payfast.field_value(fields, "m_payment_id"),
            payment_status=payfast.field_value(fields, "payment_status"),
            # None when refused (invisible or non-ASCII characters): a COMPLETE ITN is then rejected
            # for its email below, and kept with the raw field, like any other rejected ITN.
            email=normalized_email_or_none(payfast.field_value(fields, "email_address")),
            plan=payfast.field_value(fields, "custom_str1"),
            amount_gross=payfast.field_value(fields, "amount_gross"),
            token=(payfast.field_value(fields, "token") or "").strip() or None,
        )
        try:
            renewal = payment.payment_status == "COMPLETE" and self._renewal(fields, payment)
            self._check(fields, payment, renewal)
        except _RejectedError as rejection:
            return self._keep(payment.with_verdict(PaymentVerdict.REJECTED, rejection.reason))
        except TransientError as error:
            # PayFast's validate endpoint, or one of our stores, could not answer: kept as
            # unconfirmed (PayFast sends it again), saying which.
            return self._keep(payment.with_verdict(PaymentVerdict.UNCONFIRMED, f"not checked yet: {error}"))

        first_charge = payment.payment_status == "COMPLETE" and not renewal
        return self._keep(payment, self._job_for(payment) if first_charge else None)

    def _throttle(self, source_ip: str) -> None:
        """A flood from one address outside PayFast's ranges is refused before any work (and
        before the ledger: a flood must not fill it) with a 429."""
        if self._limiter is None:
            return
        if self._policy.check_source and payfast.in_ranges(source_ip, self._policy.source_ranges):
            return  # PayFast's own addresses carry every genuine ITN of a busy merchant
        count = self._limiter.hit(f"itn:source:{source_ip}", window_seconds=60)
        if count > self._policy.max_per_minute_per_source:
            log.warning("itn_rate_limited", source_ip=source_ip, count=count)
            retry_after = 60 - int(self._clock.now().timestamp()) % 60
            raise RateLimitedError("too many ITNs from this address; try again later", retry_after)

    def refuse_unread(self, peer: str, forwarded_for: str | None, reason: str, sample: bytes = b"") -> PaymentRecord:
        """Keeps a body refused before it was read (too large) in the ledger as rejected; a flood
        of them is throttled like any other ITN."""
        source_ip = payfast.client_address(peer, forwarded_for, self._policy.trusted_proxies)
        self._throttle(source_ip)
        unread = (("_raw", sample[:256].decode("utf-8", errors="replace")),)
        record = PaymentRecord(
            format_timestamp(self._clock.now()), source_ip, unread, PaymentVerdict.REJECTED, (reason,)
        )
        return self._keep(record)

    def _passphrase(self) -> str | None:
        if self._secrets is None:
            return self._policy.passphrase
        return self._secrets.get(SecretName.PAYFAST_PASSPHRASE)

    def _check(self, fields: payfast.Fields, payment: PaymentRecord, renewal: bool) -> None:
        policy = self._policy
        for required in ("m_payment_id", "pf_payment_id", "payment_status", "merchant_id", "signature"):
            if not payfast.field_value(fields, required):
                raise _RejectedError(f"missing field {required}")
        # PayFast signs only what precedes `signature`, and sends nothing after it: a field there
        # would be read unsigned (a checkout form's own signature followed by pf_payment_id,
        # payment_status and amount_gross is otherwise a valid ITN). Refusing them also makes
        # every required field above a signed one. Unknown fields before the signature are fine.
        unsigned = payfast.unsigned_fields(fields)
        if unsigned:
            raise _RejectedError(f"field after signature: {unsigned[0][:40]!r} is not signed")
        # The checkout form is signed with the same MD5 and passphrase, and always carries
        # merchant_key, which no ITN does: a signed form must never pass for a notification.
        if payfast.field_value(fields, "merchant_key") is not None:
            raise _RejectedError("merchant_key in an ITN: a checkout form's fields and signature, not a notification")
        # 1. Signature, with our passphrase.
        if not payfast.signature_matches(fields, self._passphrase()):
            raise _RejectedError("signature mismatch")
        # 2. Source address, within PayFast's published ranges.
        if policy.check_source and not payfast.in_ranges(payment.source_ip, policy.source_ranges):
            raise _RejectedError(f"source address {payment.source_ip} is not in PayFast's ranges")
        # 3. Merchant.
        if payfast.field_value(fields, "merchant_id") != policy.merchant_id:
            raise _RejectedError("merchant_id is not ours")
        status = payment.payment_status or ""
        if status not in PAYMENT_STATUSES:
            raise _RejectedError(f"unknown payment_status {status[:20]!r}")
        if not _TRANSACTION_ID.match(payment.transaction_id or ""):
            raise _RejectedError("m_payment_id is not a valid transaction id")
        # A subscription's ITN must carry the token of the checkout's subscription, and no other
        # checkout's token (a renewal signed for one tenant is not replayed at another's).
        self._check_token(fields, payment)
        # 4. Amount, against the price of the plan bought, or a renewal's against the
        # subscription's current recurring amount (CANCELLED carries no amount).
        if status != "CANCELLED":
            self._check_amount(payment, renewal)
        if status == "COMPLETE" and not looks_like_email(payment.email or ""):
            raise _RejectedError("email_address is not a valid email address")
        if status in {"PENDING", "FAILED"} and self._completed_already(payment.pf_payment_id or ""):
            # A replayed older ITN must never look like news after the payment completed.
            raise _RejectedError(f"stale ITN: payment {payment.pf_payment_id} is already COMPLETE")
        # 5. Server confirmation: PayFast says it sent this ITN.
        try:
            confirmed = not policy.confirm_with_payfast or self._confirmer.confirm(payfast.parameter_string(fields))
        except TransientError as error:
            raise TransientError(f"PayFast validate failed: {error}") from None
        if not confirmed:
            raise _RejectedError("PayFast did not confirm the payment")
        # 6. Not processed already: decided atomically by the ledger when the ITN is kept.

    def _completed_already(self, pf_payment_id: str) -> bool:
        return any(
            entry.payment_status == "COMPLETE" and entry.verdict is PaymentVerdict.ACCEPTED
            for entry in self._ledger.find(pf_payment_id=pf_payment_id)
        )

    def _renewal(self, fields: payfast.Fields, payment: PaymentRecord) -> bool:
        """A COMPLETE ITN of a subscription whose first charge the ledger accepted already (under
        another pf_payment_id): a renewal, never a second tenant."""
        if not payfast.field_value(fields, "token"):
            return False
        return any(
            entry.payment_status == "COMPLETE"
            and entry.verdict is PaymentVerdict.ACCEPTED
            and entry.pf_payment_id != payment.pf_payment_id
            for entry in self._ledger.find(transaction_id=payment.transaction_id or "")
        )

    def _check_token(self, fields: payfast.Fields, payment: PaymentRecord) -> None:
        token = (payfast.field_value(fields, "token") or "").strip()
        if not token or self._subscriptions is None:
            return
        transaction_id = payment.transaction_id or ""
        holder = self._subscriptions.find_by_token(token)
        if holder is not None and holder.transaction_id != transaction_id:
            raise _RejectedError("token belongs to another checkout's subscription")
        current = self._subscriptions.find_by_transaction(transaction_id)
        if current is not None and current.token != token:
            raise _RejectedError("token is not the subscription token of this m_payment_id")
        if holder is None and current is None and payment.payment_status == "CANCELLED":
            # Kept and answered (PayFast stops retrying), and named for Finance: no checkout of
            # ours started this subscription, or its first charge never reached us.
            known = self._ledger.find(transaction_id=transaction_id)
            if not any(entry.verdict is PaymentVerdict.ACCEPTED for entry in known):
                log.warning("itn_unknown_subscription", transaction_id=transaction_id, escalate_to="finance")

    def _check_amount(self, payment: PaymentRecord, renewal: bool = False) -> None:
        try:
            plan = self._plans.get(payment.plan or "")
        except UnknownPlanError:
            raise _RejectedError(f"unknown plan {(payment.plan or '')[:40]!r}") from None
        amount = payment.amount_gross
        if amount is None:
            raise _RejectedError("amount_gross is missing")
        if not _AMOUNT.fullmatch(amount):
            raise _RejectedError(f"amount_gross {amount[:24]!r} is not an amount in rands and cents like 299.00")
        # Exactly the price, no tolerance. The spec's `abs(expected - amount_gross) <= 0.01` is
        # PayFast's PHP SDK (Notification.php: `abs((float)$v - (float)$pfData['amount_gross']) > 0.01`,
        # floatval() in older releases): an allowance for comparing floats, not a price tolerance.
        # Exact decimals from a strict string need none, so 298.99 does not pay for 299.00.
        if renewal:
            subscription = self._subscription_of(payment)
            expected = subscription.recurring_amount if subscription else plan.recurring_price_zar
            if Decimal(amount) != expected:
                log.warning("renewal_amount_rejected", transaction_id=payment.transaction_id, escalate_to="finance")
                raise _RejectedError(f"amount_gross does not match the subscription's recurring amount {expected}")
            return
        if Decimal(amount) != plan.price_zar:
            raise _RejectedError(f"amount_gross does not match the {plan.name} price {plan.price_zar}")

    def _subscription_of(self, payment: PaymentRecord) -> Subscription | None:
        if self._subscriptions is None:
            return None
        return self._subscriptions.find_by_transaction(payment.transaction_id or "")

    def _job_for(self, payment: PaymentRecord) -> ProvisioningJob:
        transaction_id = payment.transaction_id or ""
        email = payment.email or ""
        names = [payfast.field_value(payment.fields, key) or "" for key in ("name_first", "name_last")]
        tenant_name = " ".join(name.strip() for name in names if name.strip())[:120] or email
        now = format_timestamp(self._clock.now())
        # A subscription bought for a tenant that exists (custom_str2, signed with the checkout
        # form) is that tenant's: nothing is provisioned, the payment's subscription reactivates it.
        returning_to = (payfast.field_value(payment.fields, "custom_str2") or "").strip() if payment.token else ""
        return ProvisioningJob(
            transaction_id=transaction_id,
            tenant_id=returning_to or tenant_id_for(transaction_id),
            returning=bool(returning_to),
            invoice_number=invoice_number_for(transaction_id),
            email=email,
            plan=payment.plan or "",
            tenant_name=tenant_name,
            status=JobStatus.QUEUED,
            created_at=now,
            updated_at=now,
            pf_payment_id=payment.pf_payment_id,
        )

    def _keep(self, payment: PaymentRecord, job: ProvisioningJob | None = None) -> PaymentRecord:
        kept = self._ledger.record(payment, job)
        settles = self._settle is not None and self._settles(kept)
        unapplied: TenancyError | None = None
        if settles and self._settle is not None:
            try:
                self._settle(kept.transaction_id or "")
            except TenancyError as error:
                unapplied = error
        # A duplicate changes nothing, unless it settled what its first delivery left unapplied;
        # any other verdict may change what the purchase's finding is.
        changes = kept.verdict is not PaymentVerdict.DUPLICATE or settles
        if self._observer is not None and kept.transaction_id and changes:
            self._observer.changed(kept.transaction_id)
        log.info(
            "itn_received",
            verdict=kept.verdict.value,
            reasons=list(kept.reasons),
            transaction_id=kept.transaction_id,
            pf_payment_id=kept.pf_payment_id,
            payment_status=kept.payment_status,
            source_ip=kept.source_ip,
        )
        if unapplied is not None:
            # Kept, but not yet applied: answered as not received, so PayFast sends it again and
            # the copy, a duplicate, settles it (as it does after a crash between the two steps).
            log.warning("subscription_settle_failed", transaction_id=kept.transaction_id, error=str(unapplied))
            raise TransientError(f"ITN kept; its subscription is not updated yet: {unapplied}")
        return kept

    @staticmethod
    def _settles(kept: PaymentRecord) -> bool:
        """Whether keeping `kept` settles its checkout's subscription: a genuine subscription ITN
        (a charge or a cancellation carrying a token), its first delivery or a copy. A copy settles
        too because its first delivery may have been kept and not applied (a crash, a busy store)."""
        return (
            bool(kept.transaction_id)
            and kept.token is not None
            and kept.verdict in {PaymentVerdict.ACCEPTED, PaymentVerdict.DUPLICATE}
            and kept.payment_status in {"COMPLETE", "CANCELLED"}
        )
