"""The stores on DynamoDB: tenants, users, the provisioning journal, the payment ledger and the
repair trail, each meeting its port's contract (tenancy.ports) with the item shapes of
shared/spec/data-contract.md, so RB-001's own `aws dynamodb` commands read and write them.

Base-table reads are strongly consistent, as the embedded backend is; look-ups through a global
secondary index (by email, tenant, status, transaction) are eventually consistent, as GSIs are.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import structlog
from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import aws_errors, error_code
from tenancy.adapters.aws._fanout import each
from tenancy.adapters.aws._items import (
    ITN_ENTRY_TYPE,
    ITN_PREFIX,
    Item,
    accepted_marker_item,
    attribute,
    job_from_item,
    job_item,
    ordered_id,
    payment_from_item,
    payment_item,
    repair_from_item,
    repair_item,
    tenant_from_item,
    tenant_item,
    user_from_item,
    user_item,
)
from tenancy.adapters.aws._pages import count_matching as _count
from tenancy.adapters.aws._pages import query_pages as _query
from tenancy.adapters.aws._pages import scan_pages as _scan
from tenancy.domain.ids import normalize_email, tenant_id_for
from tenancy.domain.model import (
    JobStatus,
    PaymentRecord,
    PaymentVerdict,
    ProvisioningJob,
    RepairRecord,
    Tenant,
    TenantStatus,
    UserRecord,
    UserStatus,
)
from tenancy.errors import ItemAlreadyExistsError, NotFoundError, PermanentError, TenancyError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        PutItemInputTypeDef,
        QueryInputTypeDef,
        ScanInputTypeDef,
        TransactWriteItemTypeDef,
    )

    from tenancy.ports import JobQueue

__all__ = [
    "RECEIVED_INDEX",
    "DynamoJournal",
    "DynamoLedger",
    "DynamoRepairTrail",
    "DynamoTenantStore",
    "DynamoUserStore",
]

log = structlog.get_logger(__name__)

EMAIL_INDEX = "email-index"
TENANT_INDEX = "tenant-index"
STATUS_INDEX = "status-index"
TRANSACTION_INDEX = "transaction-index"
# The payments table's ITN entries by arrival (entry_type = "ITN", entry_key): the ledger's
# "oldest first, in batches" and the alert watch's `since` window as one ranged query each.
RECEIVED_INDEX = "received-index"


def _batches(pages: Iterator[list[Item]], read: Callable[[Item], Any]) -> Iterator[list[Any]]:
    for page in pages:
        if page:  # a last page can come back empty; the embedded backend never yields one
            yield [read(item) for item in page]


def _by_hour(timestamps: Iterable[str]) -> dict[str, int]:
    """How many of the contract timestamps fall in each hour (`2026-01-18T09`)."""
    return dict(Counter(timestamp[:13] for timestamp in timestamps))


def _everything(pages: Iterator[list[Item]]) -> list[Item]:
    return [item for page in pages for item in page]


def _get(client: DynamoDBClient, table: str, key: dict[str, str], doing: str) -> Item | None:
    with aws_errors(doing):
        response = client.get_item(
            TableName=table, Key={name: attribute(value) for name, value in key.items()}, ConsistentRead=True
        )
    return response.get("Item")


# BatchGetItem takes at most this many keys a call, and an IN condition as many values.
_BATCH_GET_KEYS = 100
_FILTER_VALUES = 100
_UNPROCESSED_BACKOFF_SECONDS = 0.05


def _batch_get(client: DynamoDBClient, table: str, key: str, values: Sequence[str], doing: str) -> list[Item]:
    """The items whose `key` is one of `values` (strongly consistent, as `_get`), 100 keys a call,
    asking again for the keys DynamoDB left unprocessed. An empty value is never a key: none."""
    distinct = [value for value in dict.fromkeys(values) if value]
    found: list[Item] = []
    for start in range(0, len(distinct), _BATCH_GET_KEYS):
        keys = [{key: attribute(value)} for value in distinct[start : start + _BATCH_GET_KEYS]]
        request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        for attempt in range(100):
            with aws_errors(doing):
                response = client.batch_get_item(RequestItems=request)
            found.extend(response.get("Responses", {}).get(table, []))
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                break
            time.sleep(_UNPROCESSED_BACKOFF_SECONDS * min(2**attempt, 20) * random.uniform(0.5, 1.5))
        else:
            raise TransientError(f"{doing}: DynamoDB kept keys unprocessed")
    return found


def _put(client: DynamoDBClient, table: str, item: Item, doing: str, *, absent: str | None = None) -> None:
    """PutItem; with `absent`, only if no item has that key (else ItemAlreadyExistsError)."""
    with aws_errors(doing):
        if absent is None:
            client.put_item(TableName=table, Item=item)
        else:
            client.put_item(
                TableName=table,
                Item=item,
                ConditionExpression="attribute_not_exists(#key)",
                ExpressionAttributeNames={"#key": absent},
            )


class DynamoTenantStore:
    """The `tenants` table: one item per tenant, exactly RB-001 4.3's put-item shape."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def get(self, tenant_id: str) -> Tenant | None:
        item = _get(self._client, self._table, {"tenant_id": tenant_id}, "reading a tenant")
        return tenant_from_item(item) if item else None

    def create(self, tenant: Tenant) -> None:
        _put(self._client, self._table, tenant_item(tenant), "creating a tenant", absent="tenant_id")

    def put(self, tenant: Tenant) -> None:
        _put(self._client, self._table, tenant_item(tenant), "writing a tenant")

    def set_owner(self, tenant_id: str, owner_user_id: str, updated_at: str) -> None:
        self._update(tenant_id, "owner_user_id", owner_user_id, updated_at)

    def set_status(self, tenant_id: str, status: TenantStatus, updated_at: str) -> None:
        self._update(tenant_id, "status", status.value, updated_at)

    def _update(self, tenant_id: str, name: str, value: str, updated_at: str) -> None:
        try:
            with aws_errors(f"setting a tenant's {name}"):
                self._client.update_item(
                    TableName=self._table,
                    Key={"tenant_id": attribute(tenant_id)},
                    UpdateExpression="SET #name = :value, #updated_at = :updated_at",
                    # Without the condition UpdateItem would create a tenant holding only these fields.
                    ConditionExpression="attribute_exists(#tenant_id)",
                    ExpressionAttributeNames={"#name": name, "#updated_at": "updated_at", "#tenant_id": "tenant_id"},
                    ExpressionAttributeValues={":value": attribute(value), ":updated_at": attribute(updated_at)},
                )
        except ItemAlreadyExistsError:  # the failed condition here means "no such tenant"
            raise NotFoundError(f"tenant {tenant_id} not found") from None

    def find_by_transaction(self, transaction_id: str) -> Tenant | None:
        # The project's own tenant has the id derived from the transaction: one GetItem.
        derived = self.get(tenant_id_for(transaction_id))
        if derived is not None and derived.billing.transaction_id == transaction_id:
            return derived
        # An operator's hand-made tenant (RB-001 4.3's ten_NEWID) is found only by its billing.
        request: ScanInputTypeDef = {
            "TableName": self._table,
            "FilterExpression": "#billing.#transaction_id = :transaction_id",
            "ExpressionAttributeNames": {"#billing": "billing", "#transaction_id": "transaction_id"},
            "ExpressionAttributeValues": {":transaction_id": attribute(transaction_id)},
            "ConsistentRead": True,
        }
        found = [
            tenant_from_item(item)
            for item in _everything(_scan(self._client, request, "finding a tenant by transaction"))
        ]
        # The embedded store answers the earliest created one when several carry the transaction.
        return min(found, key=lambda tenant: (tenant.created_at, tenant.tenant_id), default=None)

    def count_by_status(self) -> dict[TenantStatus, int]:
        # A scan of one attribute: DynamoDB keeps no counts. The console's tenants by state cost a
        # read of every tenant; a counts item kept by each move is the step at scale.
        request: ScanInputTypeDef = {
            "TableName": self._table,
            "ProjectionExpression": "#status",
            "ExpressionAttributeNames": {"#status": "status"},
        }
        counts: dict[TenantStatus, int] = {}
        for page in _scan(self._client, request, "counting tenants by status"):
            for item in page:
                status = TenantStatus(item["status"]["S"])
                counts[status] = counts.get(status, 0) + 1
        return counts

    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Tenant]:
        items = _batch_get(self._client, self._table, "tenant_id", tenant_ids, "reading tenants")
        return {tenant.tenant_id: tenant for tenant in map(tenant_from_item, items)}

    def find_by_transactions(self, transaction_ids: Sequence[str]) -> dict[str, Tenant]:
        # The project's own tenants in one batch; the rest (hand-made, or none) one by one, as
        # find_by_transaction finds them.
        derived = self.get_many([tenant_id_for(transaction_id) for transaction_id in transaction_ids])
        found: dict[str, Tenant] = {}
        for transaction_id in dict.fromkeys(transaction_ids):
            own = derived.get(tenant_id_for(transaction_id))
            if own is not None and own.billing.transaction_id == transaction_id:
                found[transaction_id] = own
        rest = [transaction_id for transaction_id in dict.fromkeys(transaction_ids) if transaction_id not in found]
        for start in range(0, len(rest), _FILTER_VALUES):
            found.update(self._billed_to(rest[start : start + _FILTER_VALUES]))
        return found

    def _billed_to(self, transaction_ids: list[str]) -> dict[str, Tenant]:
        """The earliest created tenant billed to each transaction id: one scan for them all."""
        values = {f":t{number}": attribute(value) for number, value in enumerate(transaction_ids)}
        request: ScanInputTypeDef = {
            "TableName": self._table,
            "FilterExpression": f"#billing.#transaction_id IN ({', '.join(values)})",
            "ExpressionAttributeNames": {"#billing": "billing", "#transaction_id": "transaction_id"},
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        chosen: dict[str, Tenant] = {}
        for item in _everything(_scan(self._client, request, "finding tenants by transaction")):
            tenant = tenant_from_item(item)
            transaction_id = tenant.billing.transaction_id
            # As find_by_transaction chooses among hand-made ones: the earliest created.
            if transaction_id not in chosen or (tenant.created_at, tenant.tenant_id) < (
                chosen[transaction_id].created_at,
                chosen[transaction_id].tenant_id,
            ):
                chosen[transaction_id] = tenant
        return chosen

    def scan_created(self, batch_size: int = 1000) -> Iterator[list[tuple[str, str, str]]]:
        # A scan reads (and is charged for) whole items whatever it sends back: read them as `scan` does.
        for tenants in self.scan(batch_size):
            yield [(tenant.tenant_id, tenant.billing.transaction_id, tenant.created_at) for tenant in tenants]

    def delete(self, tenant_id: str) -> None:
        with aws_errors("deleting a tenant"):
            self._client.delete_item(TableName=self._table, Key={"tenant_id": attribute(tenant_id)})

    def scan(self, batch_size: int = 1000) -> Iterator[list[Tenant]]:
        request: ScanInputTypeDef = {"TableName": self._table, "Limit": batch_size, "ConsistentRead": True}
        yield from _batches(_scan(self._client, request, "scanning tenants"), tenant_from_item)


class DynamoUserStore:
    """The `users` table: RB-001 4.2's item; emails are stored lower-cased and looked up through
    `email-index`, never by the shape of `user_id` (hand-made `user_…` ids are as good as subs)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def get(self, user_id: str) -> UserRecord | None:
        item = _get(self._client, self._table, {"user_id": user_id}, "reading a users record")
        return user_from_item(item) if item else None

    def get_many(self, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        items = _batch_get(self._client, self._table, "user_id", user_ids, "reading users records")
        return {user.user_id: user for user in map(user_from_item, items)}

    def find_by_email(self, email: str) -> list[UserRecord]:
        if not normalize_email(email):
            return []  # no record has an empty email (an index key cannot be empty)
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": EMAIL_INDEX,
            "KeyConditionExpression": "#email = :email",
            "ExpressionAttributeNames": {"#email": "email"},
            "ExpressionAttributeValues": {":email": attribute(normalize_email(email))},
        }
        users = [user_from_item(item) for item in _everything(_query(self._client, request, "finding users"))]
        # The contract's index has no sort key: order as the embedded store does.
        return sorted(users, key=lambda user: (user.created_at, user.user_id))

    def find_by_tenant(self, tenant_id: str) -> list[UserRecord]:
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": TENANT_INDEX,
            "KeyConditionExpression": "#tenant_id = :tenant_id",
            "ExpressionAttributeNames": {"#tenant_id": "tenant_id"},
            "ExpressionAttributeValues": {":tenant_id": attribute(tenant_id)},
        }
        users = [
            user_from_item(item) for item in _everything(_query(self._client, request, "finding a tenant's users"))
        ]
        # The index is read eventually consistently: each record is read again, consistently.
        fresh = [self.get(user.user_id) for user in users]
        found = [user for user in fresh if user is not None and user.tenant_id == tenant_id]
        return sorted(found, key=lambda user: (user.created_at, user.user_id))

    def find_by_emails(self, emails: Sequence[str]) -> dict[str, list[UserRecord]]:
        # One query of the email index per address (an index is read one key at a time).
        return {email: found for email, found in each(self.find_by_email, emails).items() if found}

    def create(self, user: UserRecord) -> None:
        _put(self._client, self._table, user_item(user), "creating a users record", absent="user_id")

    def put(self, user: UserRecord) -> None:
        _put(self._client, self._table, user_item(user), "writing a users record")

    def delete(self, user_id: str) -> None:
        with aws_errors("deleting a users record"):
            self._client.delete_item(TableName=self._table, Key={"user_id": attribute(user_id)})

    def record_sign_in(self, email: str, at: str) -> None:
        for user in self.find_by_email(email):
            if user.status is not UserStatus.ACTIVE:
                continue
            try:
                with aws_errors("noting a sign-in"):
                    self._client.update_item(
                        TableName=self._table,
                        Key={"user_id": attribute(user.user_id)},
                        UpdateExpression="SET last_sign_in_at = :at",
                        ConditionExpression="attribute_exists(user_id)",
                        ExpressionAttributeValues={":at": attribute(at)},
                    )
            except ItemAlreadyExistsError:
                continue  # deleted meanwhile: nothing to note

    def scan(self, batch_size: int = 1000) -> Iterator[list[UserRecord]]:
        request: ScanInputTypeDef = {"TableName": self._table, "Limit": batch_size, "ConsistentRead": True}
        yield from _batches(_scan(self._client, request, "scanning users"), user_from_item)


def _oldest_first(jobs: list[ProvisioningJob]) -> list[ProvisioningJob]:
    return sorted(jobs, key=lambda job: (job.created_at, job.transaction_id))


class DynamoJournal:
    """The `provisioning` table: one item per transaction id (see `_items.job_item` for its shape)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def get(self, transaction_id: str) -> ProvisioningJob | None:
        item = _get(self._client, self._table, {"transaction_id": transaction_id}, "reading a provisioning job")
        return job_from_item(item) if item else None

    def get_many(self, transaction_ids: Sequence[str]) -> dict[str, ProvisioningJob]:
        items = _batch_get(self._client, self._table, "transaction_id", transaction_ids, "reading provisioning jobs")
        return {job.transaction_id: job for job in map(job_from_item, items)}

    def tenant_ids(self, transaction_ids: Sequence[str]) -> dict[str, str]:
        # BatchGetItem is charged by the item whatever it sends back: the jobs, read as `get` reads them.
        return {transaction_id: job.tenant_id for transaction_id, job in self.get_many(transaction_ids).items()}

    def create(self, job: ProvisioningJob) -> bool:
        try:
            _put(self._client, self._table, job_item(job), "creating a provisioning job", absent="transaction_id")
        except ItemAlreadyExistsError:
            return False
        return True

    def stale_jobs(self, status: str, updated_before: str, limit: int = 1000) -> list[ProvisioningJob]:
        query: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status AND #updated_at < :before",
            "ExpressionAttributeNames": {"#status": "status", "#updated_at": "updated_at"},
            "ExpressionAttributeValues": {":status": attribute(status), ":before": attribute(updated_before)},
            "ScanIndexForward": True,  # the index sorts by updated_at: oldest first
            "Limit": limit,
        }
        found: list[ProvisioningJob] = []
        for page in _query(self._client, query, "listing stale jobs"):
            found.extend(job_from_item(item) for item in page)
            if len(found) >= limit:
                break
        return found[:limit]

    def save_claimed(self, job: ProvisioningJob, *, expected_claim: str | None) -> bool:
        request: PutItemInputTypeDef = {
            "TableName": self._table,
            "Item": job_item(job),
            # An item written by hand may hold the claim as a NULL: that is no claim too.
            "ConditionExpression": "attribute_exists(#key) AND "
            "(attribute_not_exists(#claim) OR attribute_type(#claim, :null))",
            "ExpressionAttributeNames": {"#key": "transaction_id", "#claim": "claim"},
            "ExpressionAttributeValues": {":null": {"S": "NULL"}},
        }
        if expected_claim is not None:
            request["ConditionExpression"] = "attribute_exists(#key) AND #claim = :claim"
            request["ExpressionAttributeValues"] = {":claim": attribute(expected_claim)}
        try:
            with aws_errors("saving a claimed provisioning job"):
                self._client.put_item(**request)
        except ItemAlreadyExistsError:  # the failed condition: another run holds the job now
            return False
        return True

    def save(self, job: ProvisioningJob) -> None:
        _put(self._client, self._table, job_item(job), "saving a provisioning job")

    def list_jobs(self, status: str | None = None, limit: int = 100) -> list[ProvisioningJob]:
        if status is None:
            # The newest of each status, merged: a few bounded queries, never a scan of the table.
            newest = [job for each in JobStatus for job in self.list_jobs(each.value, limit)]
            return sorted(newest, key=lambda job: job.updated_at, reverse=True)[:limit]
        query: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": attribute(status)},
            "ScanIndexForward": False,  # the index sorts by updated_at: newest first
            "Limit": limit,
        }
        found: list[ProvisioningJob] = []
        for page in _query(self._client, query, "listing jobs by status"):
            found.extend(job_from_item(item) for item in page)
            if len(found) >= limit:
                break
        return found[:limit]

    def find(self, *, email: str | None = None, tenant_id: str | None = None) -> list[ProvisioningJob]:
        if (email is not None and not normalize_email(email)) or tenant_id == "":
            return []  # index keys are never empty, so no job has an empty email or tenant id
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if email is not None:
            names["#email"], values[":email"] = "email", attribute(normalize_email(email))
        if tenant_id is not None:
            names["#tenant_id"], values[":tenant_id"] = "tenant_id", attribute(tenant_id)
        if not names:
            request: ScanInputTypeDef = {"TableName": self._table, "ConsistentRead": True}
            pages = _scan(self._client, request, "finding jobs")
        else:
            # The first filter given picks the index; the other one (if given) filters its result.
            index, key = (EMAIL_INDEX, "#email") if email is not None else (TENANT_INDEX, "#tenant_id")
            query: QueryInputTypeDef = {
                "TableName": self._table,
                "IndexName": index,
                "KeyConditionExpression": f"{key} = {key.replace('#', ':')}",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
            if len(names) == 2:
                query["FilterExpression"] = "#tenant_id = :tenant_id"
            pages = _query(self._client, query, "finding jobs")
        return _oldest_first([job_from_item(item) for item in _everything(pages)])

    def scan(self, batch_size: int = 1000) -> Iterator[list[ProvisioningJob]]:
        request: ScanInputTypeDef = {"TableName": self._table, "Limit": batch_size, "ConsistentRead": True}
        yield from _batches(_scan(self._client, request, "scanning jobs"), job_from_item)

    def count_by_status(self) -> dict[JobStatus, int]:
        # One COUNT query of the status index per status (DynamoDB has no GROUP BY).
        counts = {status: self._count(status.value) for status in JobStatus}
        return {status: count for status, count in counts.items() if count}

    def succeeded_by_hour(self, since: str) -> dict[str, int]:
        # The status index's range from the hour's start, bringing back only each job's update time.
        query: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status AND #updated_at >= :since",
            "ExpressionAttributeNames": {"#status": "status", "#updated_at": "updated_at"},
            "ExpressionAttributeValues": {
                ":status": attribute(JobStatus.SUCCEEDED.value),
                ":since": attribute(since[:13]),
            },
            "ProjectionExpression": "#updated_at",
        }
        pages = _query(self._client, query, "counting jobs")
        return _by_hour(item["updated_at"]["S"] for page in pages for item in page)

    def count_updated_since(self, status: str, updated_since: str, *, min_attempts: int = 0) -> int:
        return self._count(status, updated_since=updated_since, min_attempts=min_attempts)

    def _count(self, status: str, *, updated_since: str | None = None, min_attempts: int = 0) -> int:
        key = "#status = :status"
        names = {"#status": "status"}
        values: dict[str, Any] = {":status": attribute(status)}
        if updated_since is not None:
            key += " AND #updated_at >= :since"
            names["#updated_at"], values[":since"] = "updated_at", attribute(updated_since)
        query: QueryInputTypeDef = {"TableName": self._table, "IndexName": STATUS_INDEX, "KeyConditionExpression": key}
        if min_attempts > 0:
            query["FilterExpression"] = "#attempts >= :attempts"
            names["#attempts"], values[":attempts"] = "attempts", attribute(min_attempts)
        query["ExpressionAttributeNames"] = names
        query["ExpressionAttributeValues"] = values
        return _count(self._client, query, "counting jobs")


# TransactWriteItems cancellation reasons worth another try: the same items were in another
# transaction at the same moment (a concurrent copy of the ITN), or the table was throttled.
_RETRYABLE_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_TRANSACTION_ATTEMPTS = 6
_CONFLICT_BACKOFF_SECONDS = 0.05
_CONDITION_FAILED = "ConditionalCheckFailed"
_NO_REASON = "None"  # the code DynamoDB gives an item that did not cancel the transaction


class DynamoLedger:
    """The `payments` table, keyed (pf_payment_id, entry_key).

    Every ITN is one item with entry_key `ITN#<received_at>#<UUIDv7>` (so a partition and every
    index list entries oldest first); ITNs without a pf_payment_id go under `unknown`. Each
    accepted (pf_payment_id, payment_status) also has a marker item `ACCEPTED#<status>` whose
    conditional put is the dedupe (ITN check 6): the marker, the entry and the provisioning job
    are written in one TransactWriteItems, so concurrent copies cannot both be accepted and an
    accepted payment never exists without its job.

    The queue message is sent after that transaction commits: SQS cannot join a DynamoDB
    transaction. If the send fails, the job stays in the journal as `queued` with no message;
    `tenancy diagnose`/`tenancy audit` then report it as lost and `tenancy repair` re-runs it,
    so nothing is lost silently (the failure is also logged as `job_enqueue_failed`).
    """

    def __init__(self, client: DynamoDBClient, payments_table: str, journal_table: str, queue: JobQueue) -> None:
        self._client = client
        self._table = payments_table
        self._journal_table = journal_table
        self._queue = queue

    def record(self, payment: PaymentRecord, job: ProvisioningJob | None) -> PaymentRecord:
        entry_key = f"{ITN_PREFIX}{payment.received_at}#{ordered_id()}"
        dedupe = payment.pf_payment_id and payment.payment_status is not None
        if payment.verdict is not PaymentVerdict.ACCEPTED or not dedupe:
            # Nothing to dedupe: a verdict other than accepted, or no pf_payment_id + status to
            # dedupe on (the embedded ledger's unique index ignores NULLs the same way).
            _put(self._client, self._table, payment_item(payment, entry_key), "recording a payment")
            return payment
        pending_job = job
        for attempt in range(_TRANSACTION_ATTEMPTS):
            reasons = self._accept(payment, entry_key, pending_job)
            if reasons is None:
                if pending_job is not None:
                    self._enqueue(pending_job)
                return payment
            marker, entry, job_reason = reasons
            if marker == _CONDITION_FAILED:  # this pf_payment_id + status was accepted before
                duplicate = replace(payment, verdict=PaymentVerdict.DUPLICATE, reasons=("already processed",))
                _put(self._client, self._table, payment_item(duplicate, entry_key), "recording a duplicate payment")
                return duplicate
            others = {marker, entry}
            if job_reason == _CONDITION_FAILED:
                pending_job = None  # a job for this transaction exists: accept without another one
            else:
                others.add(job_reason)
            if not others <= _RETRYABLE_CANCELLATIONS | {_NO_REASON}:
                raise PermanentError(f"recording a payment: transaction cancelled ({', '.join(reasons)})")
            if others != {_NO_REASON}:  # a conflict or throttling: give the other writer a moment
                time.sleep(_CONFLICT_BACKOFF_SECONDS * 2**attempt * random.uniform(0.5, 1.5))
        raise TransientError("recording a payment: the transaction kept conflicting")

    def _accept(
        self, payment: PaymentRecord, entry_key: str, job: ProvisioningJob | None
    ) -> tuple[str, str, str] | None:
        """One TransactWriteItems: None if it committed, else the cancellation reason codes of
        (marker, entry, job), "None" for an item that did not fail (and for a job not written)."""
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": accepted_marker_item(payment, entry_key),
                    "ConditionExpression": "attribute_not_exists(#key)",
                    "ExpressionAttributeNames": {"#key": "pf_payment_id"},
                }
            },
            {"Put": {"TableName": self._table, "Item": payment_item(payment, entry_key)}},
        ]
        if job is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self._journal_table,
                        "Item": job_item(job),
                        "ConditionExpression": "attribute_not_exists(#key)",
                        "ExpressionAttributeNames": {"#key": "transaction_id"},
                    }
                }
            )
        with aws_errors("recording a payment"):
            try:
                # The token makes the SDK's own retries of this call (after a timeout that did
                # commit) idempotent, instead of meeting our own marker and calling the payment
                # a duplicate of itself.
                self._client.transact_write_items(TransactItems=items, ClientRequestToken=str(uuid.uuid4()))
            except ClientError as error:
                if error_code(error) != "TransactionCanceledException":
                    raise
                response = cast("dict[str, Any]", error.response)
                codes = [str(reason.get("Code", _NO_REASON)) for reason in response.get("CancellationReasons", [])]
                codes += [_NO_REASON] * (3 - len(codes))
                return codes[0], codes[1], codes[2]
        return None

    def _enqueue(self, job: ProvisioningJob) -> None:
        try:
            self._queue.send(job.transaction_id)
        except TenancyError as error:
            # The payment and its job are committed; see the class docstring for who finds the job.
            log.error("job_enqueue_failed", transaction_id=job.transaction_id, error=str(error))

    def find(
        self, *, transaction_id: str | None = None, pf_payment_id: str | None = None, email: str | None = None
    ) -> list[PaymentRecord]:
        given = {
            name: value
            for name, value in (("pf_payment_id", pf_payment_id), ("transaction_id", transaction_id), ("email", email))
            if value is not None
        }
        names = {"#entry_key": "entry_key", "#substituted": "substituted", **{f"#{name}": name for name in given}}
        values = {":itn": attribute(ITN_PREFIX), **{f":{name}": attribute(value) for name, value in given.items()}}
        # The first non-empty filter is the key of the query (an empty value is never a key:
        # DynamoDB refuses it, so such values are kept and matched in `substituted`).
        keyed = [name for name, value in given.items() if value != ""]
        filters = [
            f"#{name} = :{name}" if value != "" else f"#substituted.#{name} = :{name}"
            for name, value in given.items()
            if name not in keyed[:1]
        ]
        if pf_payment_id:
            # The `unknown` partition also holds the ITNs that came without a pf_payment_id.
            filters.append("attribute_not_exists(#substituted.#pf_payment_id)")
        request: QueryInputTypeDef = {"TableName": self._table}
        if not keyed:
            request["IndexName"] = RECEIVED_INDEX
            names["#entry_type"], values[":entry_type"] = "entry_type", attribute(ITN_ENTRY_TYPE)
            key = "#entry_type = :entry_type"
        elif keyed[0] == "pf_payment_id":
            request["ConsistentRead"] = True
            key = "#pf_payment_id = :pf_payment_id"
        else:
            request["IndexName"] = TRANSACTION_INDEX if keyed[0] == "transaction_id" else EMAIL_INDEX
            key = f"#{keyed[0]} = :{keyed[0]}"
        # Every index sorts by entry_key, so the pages come oldest first; markers never match ITN#.
        request["KeyConditionExpression"] = f"{key} AND begins_with(#entry_key, :itn)"
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        if not any("#substituted" in condition for condition in filters):
            del names["#substituted"]  # DynamoDB refuses names an expression does not use
        request["ExpressionAttributeNames"] = names
        request["ExpressionAttributeValues"] = values
        return [payment_from_item(item) for item in _everything(_query(self._client, request, "finding payments"))]

    def find_many(self, transaction_ids: Sequence[str], *, with_fields: bool = True) -> dict[str, list[PaymentRecord]]:
        # One query of the transaction index per transaction id.
        found = each(lambda transaction_id: self.find(transaction_id=transaction_id), transaction_ids)
        if not with_fields:
            found = {key: [replace(payment, fields=()) for payment in payments] for key, payments in found.items()}
        return {transaction_id: payments for transaction_id, payments in found.items() if payments}

    def scan_transactions(
        self, since: str | None = None, batch_size: int = 1000
    ) -> Iterator[list[tuple[str | None, PaymentVerdict, str]]]:
        for payments in self.scan(since, batch_size):
            yield [(payment.transaction_id, payment.verdict, payment.received_at) for payment in payments]

    def scan(self, since: str | None = None, batch_size: int = 1000) -> Iterator[list[PaymentRecord]]:
        start = ITN_PREFIX + (since or "")
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": RECEIVED_INDEX,
            "KeyConditionExpression": "#entry_type = :entry_type AND #entry_key >= :start",
            "ExpressionAttributeNames": {"#entry_type": "entry_type", "#entry_key": "entry_key"},
            "ExpressionAttributeValues": {":entry_type": attribute(ITN_ENTRY_TYPE), ":start": attribute(start)},
            "Limit": batch_size,
        }
        yield from _batches(_query(self._client, request, "scanning payments"), payment_from_item)

    def paid_by_hour(self, since: str) -> dict[str, int]:
        request = self._received_since(since[:13])
        request["ProjectionExpression"] = "#verdict, #received_at, #payment_status"
        request["ExpressionAttributeNames"] = {
            **request["ExpressionAttributeNames"],
            "#received_at": "received_at",
            "#payment_status": "payment_status",
        }
        return _by_hour(
            item["received_at"]["S"]
            for page in _query(self._client, request, "counting payments")
            for item in page
            if item["verdict"]["S"] == PaymentVerdict.ACCEPTED.value
            and item.get("payment_status", {}).get("S") == "COMPLETE"
        )

    def count_by_verdict(self, since: str | None = None) -> dict[PaymentVerdict, int]:
        # One pass over the received index bringing back only each entry's verdict: cheaper in
        # read capacity than a COUNT query per verdict, each of which would read every entry again.
        request = self._received_since(since or "")
        request["ProjectionExpression"] = "#verdict"
        counts: dict[PaymentVerdict, int] = {}
        for page in _query(self._client, request, "counting payments"):
            for item in page:
                verdict = PaymentVerdict(item["verdict"]["S"])
                counts[verdict] = counts.get(verdict, 0) + 1
        return counts

    def with_verdict(self, verdict: str, since: str) -> list[PaymentRecord]:
        request = self._received_since(since, verdict)
        request["FilterExpression"] = "#verdict = :verdict"
        return [payment_from_item(item) for item in _everything(_query(self._client, request, "finding payments"))]

    def _received_since(self, since: str, verdict: str | None = None) -> QueryInputTypeDef:
        """A query of the ITN entries received at or after `since` ("": every one), oldest first,
        naming `#verdict` (and `:verdict` when given) for the caller's expression."""
        values: dict[str, Any] = {":entry_type": attribute(ITN_ENTRY_TYPE), ":start": attribute(ITN_PREFIX + since)}
        if verdict is not None:
            values[":verdict"] = attribute(verdict)
        return {
            "TableName": self._table,
            "IndexName": RECEIVED_INDEX,
            "KeyConditionExpression": "#entry_type = :entry_type AND #entry_key >= :start",
            "ExpressionAttributeNames": {"#entry_type": "entry_type", "#entry_key": "entry_key", "#verdict": "verdict"},
            "ExpressionAttributeValues": values,
        }


class DynamoRepairTrail:
    """The `repairs` table: one item per repair, `repair_id` a UUIDv7 (so entries written in the
    same second keep their order); `before`/`after` are JSON strings (see `_items.repair_item`)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def record(self, entry: RepairRecord) -> None:
        repair_id = ordered_id()
        _put(self._client, self._table, repair_item(entry, repair_id), "recording a repair", absent="repair_id")

    def entries(
        self, *, transaction_id: str | None = None, tenant_id: str | None = None, email: str | None = None
    ) -> list[RepairRecord]:
        subjects = {"transaction_id": transaction_id, "tenant_id": tenant_id, "email": email}
        indexes = {"transaction_id": TRANSACTION_INDEX, "tenant_id": TENANT_INDEX, "email": EMAIL_INDEX}
        given = {name: value for name, value in subjects.items() if value}
        found: dict[str, Item] = {}
        if not given:
            request: ScanInputTypeDef = {"TableName": self._table, "ConsistentRead": True}
            items = _everything(_scan(self._client, request, "reading the repair trail"))
        else:
            items = []
            for name, value in given.items():  # "any of": one query per subject, merged
                query: QueryInputTypeDef = {
                    "TableName": self._table,
                    "IndexName": indexes[name],
                    "KeyConditionExpression": "#subject = :subject",
                    "ExpressionAttributeNames": {"#subject": name},
                    "ExpressionAttributeValues": {":subject": attribute(value)},
                }
                items.extend(_everything(_query(self._client, query, "reading the repair trail")))
        for item in items:
            found[str(item["repair_id"].get("S"))] = item
        ordered = sorted(found.items(), key=lambda pair: (str(pair[1]["at"].get("S")), pair[0]))
        return [repair_from_item(item) for _, item in ordered]
