"""The AWS resources Tenancy runs on, defined once: what `tenancy aws bootstrap` creates through
boto3 (idempotently) and what `deploy/template.yaml` declares for SAM.

Table and index names follow shared/spec/data-contract.md; the indexes beyond the contract's
`email-index` serve the runbook's look-ups (by transaction, tenant, status, recipient).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from tenancy.adapters.aws._errors import aws_errors, error_code
from tenancy.config import Settings

__all__ = [
    "DLQ_NAME",
    "MAX_RECEIVE_COUNT",
    "QUEUE_NAME",
    "QUEUE_VISIBILITY_TIMEOUT",
    "AwsResources",
    "ensure_resources",
    "table_definitions",
]

QUEUE_NAME = "provisioning"
DLQ_NAME = "provisioning-dlq"
MAX_RECEIVE_COUNT = 10
# Longer than the provisioning function's timeout (30 s), as SQS event sources require.
QUEUE_VISIBILITY_TIMEOUT = 60


def _index(name: str, hash_key: str, range_key: str | None = None) -> dict[str, Any]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return {"IndexName": name, "KeySchema": schema, "Projection": {"ProjectionType": "ALL"}}


def _table(name: str, hash_key: str, range_key: str | None, *indexes: dict[str, Any]) -> dict[str, Any]:
    key_schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        key_schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    attributes = {element["AttributeName"] for element in key_schema}
    for index in indexes:
        attributes |= {element["AttributeName"] for element in index["KeySchema"]}
    definition: dict[str, Any] = {
        "TableName": name,
        "KeySchema": key_schema,
        "AttributeDefinitions": [
            {"AttributeName": attribute, "AttributeType": "S"} for attribute in sorted(attributes)
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if indexes:
        definition["GlobalSecondaryIndexes"] = list(indexes)
    return definition


def table_definitions(settings: Settings) -> list[dict[str, Any]]:
    """CreateTable arguments for every table (every key attribute is a string)."""
    return [
        _table(settings.tenants_table, "tenant_id", None),
        # `tenant-index`: a tenant's people (offboarding deletes them all, members too).
        _table(
            settings.users_table, "user_id", None, _index("email-index", "email"), _index("tenant-index", "tenant_id")
        ),
        _table(
            settings.provisioning_table,
            "transaction_id",
            None,
            _index("email-index", "email", "created_at"),
            _index("tenant-index", "tenant_id"),
            _index("status-index", "status", "updated_at"),
        ),
        # One item per ITN (entry_key "ITN#<time>#<id>") plus one marker per accepted
        # pf_payment_id + status (entry_key "ACCEPTED#<status>") whose conditional write is check 6.
        # `received-index` holds only ITN entries (entry_type "ITN"), in arrival order: the
        # ledger's "every entry since, oldest first, in batches" as one ranged query. ITNs come
        # one per payment, far below what a single index partition takes.
        _table(
            settings.payments_table,
            "pf_payment_id",
            "entry_key",
            _index("transaction-index", "transaction_id", "entry_key"),
            _index("email-index", "email", "entry_key"),
            _index("received-index", "entry_type", "entry_key"),
        ),
        _table(
            settings.repairs_table,
            "repair_id",
            None,
            _index("transaction-index", "transaction_id", "at"),
            _index("tenant-index", "tenant_id", "at"),
            _index("email-index", "email", "at"),
        ),
        _table(settings.mail_log_table, "message_id", None, _index("recipient-index", "to_address", "created_at")),
        # Login and ITN rate counters: one item per key and window, expired by TTL (`expires_at`).
        _table(settings.rate_limits_table, "limit_key", None),
        # Sign-in sessions and per-user token marks (session_id "USER#<username>"), expired by TTL
        # (`expires_at`); `username-index` holds only sessions, to end all of a user's at once.
        _table(settings.sessions_table, "session_id", None, _index("username-index", "username")),
        # The findings index (adapters.aws.findings_index): an item per purchase, the counts by
        # finding and the latest full audit; `finding-index` holds only the purchases.
        _table(settings.findings_table, "index_key", None, _index("finding-index", "finding", "changed_at")),
        # Each tenant's subscription and billing history (adapters.aws.subscriptions), found by
        # PayFast's token and by the checkout's m_payment_id.
        _table(
            settings.subscriptions_table,
            "tenant_id",
            None,
            _index("token-index", "token"),
            _index("transaction-index", "transaction_id"),
        ),
        # The tenant lifecycle (adapters.aws.lifecycle): each tenant's history of moves under
        # "TENANT#<id>", and the notices the moves queued (events, owner emails) by status, and
        # a tenant's by status (a purchase's evidence reads its tenant's dead notices).
        _table(
            settings.lifecycle_table,
            "pk",
            "sk",
            _index("status-index", "notice_status", "created_at"),
            _index("tenant-index", "tenant_id", "notice_status"),
        ),
        # Entitlements (adapters.aws.usage): the answer given to each usage record's idempotency
        # key, expired by TTL (`expires_at`), and the service API's keys, hashed, by name.
        _table(settings.usage_answers_table, "tenant_id", "idempotency_key"),
        _table(settings.service_keys_table, "name", None),
        # Team members (adapters.aws.team): invitations, listed by tenant, and the pending markers.
        _table(settings.invitations_table, "invitation_id", None, _index("tenant-index", "tenant_id", "created_at")),
    ]


@dataclass(frozen=True, slots=True)
class AwsResources:
    region: str
    tenants_table: str
    users_table: str
    provisioning_table: str
    payments_table: str
    repairs_table: str
    mail_log_table: str
    rate_limits_table: str
    sessions_table: str
    findings_table: str
    subscriptions_table: str
    lifecycle_table: str
    usage_answers_table: str
    service_keys_table: str
    invitations_table: str
    queue_url: str
    dlq_url: str
    user_pool_id: str
    user_pool_client_id: str
    email_from: str
    alarm_topic_arn: str

    def as_settings(self) -> dict[str, str]:
        """The `TENANCY_*` variables that point the AWS backend at these resources."""
        values = {f"TENANCY_{key.upper()}": value for key, value in asdict(self).items() if key != "region"}
        values.pop("TENANCY_ALARM_TOPIC_ARN")
        return {"TENANCY_BACKEND": "aws", "TENANCY_AWS_REGION": self.region, **values}


def ensure_resources(session: boto3.Session, settings: Settings) -> AwsResources:
    """Creates whatever is missing and returns what exists; running it twice changes nothing."""
    region = settings.aws_region
    _ensure_tables(session.client("dynamodb", region_name=region), settings)
    queue_url, dlq_url = _ensure_queues(session.client("sqs", region_name=region))
    pool_id, client_id = _ensure_user_pool(session.client("cognito-idp", region_name=region), settings)
    with aws_errors("verifying the SES sender"):
        session.client("ses", region_name=region).verify_email_identity(EmailAddress=settings.email_from)
    _ensure_log_groups(session.client("logs", region_name=region), settings)
    _ensure_event_bus(session.client("events", region_name=region), settings)
    topic_arn = _ensure_alarms(session, settings, dlq_url)
    return AwsResources(
        region=region,
        tenants_table=settings.tenants_table,
        users_table=settings.users_table,
        provisioning_table=settings.provisioning_table,
        payments_table=settings.payments_table,
        repairs_table=settings.repairs_table,
        mail_log_table=settings.mail_log_table,
        rate_limits_table=settings.rate_limits_table,
        sessions_table=settings.sessions_table,
        findings_table=settings.findings_table,
        subscriptions_table=settings.subscriptions_table,
        lifecycle_table=settings.lifecycle_table,
        usage_answers_table=settings.usage_answers_table,
        service_keys_table=settings.service_keys_table,
        invitations_table=settings.invitations_table,
        queue_url=queue_url,
        dlq_url=dlq_url,
        user_pool_id=pool_id,
        user_pool_client_id=client_id,
        email_from=settings.email_from,
        alarm_topic_arn=topic_arn,
    )


def _ensure_tables(dynamodb: Any, settings: Settings) -> None:
    existing: set[str] = set()
    with aws_errors("listing tables"):
        for page in dynamodb.get_paginator("list_tables").paginate():
            existing.update(page["TableNames"])
    for definition in table_definitions(settings):
        if definition["TableName"] in existing:
            _add_missing_indexes(dynamodb, definition)
            continue
        with aws_errors(f"creating table {definition['TableName']}"):
            dynamodb.create_table(**definition)
            dynamodb.get_waiter("table_exists").wait(TableName=definition["TableName"])
    for table in (settings.rate_limits_table, settings.sessions_table, settings.usage_answers_table):
        with aws_errors(f"enabling {table}'s TTL"):
            ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
            if ttl.get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}:
                dynamodb.update_time_to_live(
                    TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
                )


def _add_missing_indexes(dynamodb: Any, definition: dict[str, Any]) -> None:
    """An index added since the table was made (the users table's `tenant-index`), created on the
    existing table: DynamoDB builds it from the items already there."""
    name = definition["TableName"]
    with aws_errors(f"describing table {name}"):
        table = dynamodb.describe_table(TableName=name)["Table"]
    present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    for index in definition.get("GlobalSecondaryIndexes", []):
        if index["IndexName"] in present:
            continue
        keys = {element["AttributeName"] for element in index["KeySchema"]}
        with aws_errors(f"adding index {index['IndexName']} to {name}"):
            dynamodb.update_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in sorted(keys)],
                GlobalSecondaryIndexUpdates=[{"Create": index}],
            )


def _ensure_queues(sqs: Any) -> tuple[str, str]:
    with aws_errors("creating the dead-letter queue"):
        dlq_url: str = sqs.create_queue(QueueName=DLQ_NAME, Attributes={"MessageRetentionPeriod": "1209600"})[
            "QueueUrl"
        ]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {
        "VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
    }
    try:
        queue_url: str = sqs.create_queue(QueueName=QUEUE_NAME, Attributes=attributes)["QueueUrl"]
    except ClientError as error:
        # An existing queue with other attributes: bring it in line instead of failing.
        if error_code(error) != "QueueAlreadyExists":
            raise
        queue_url = sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"]
        with aws_errors("updating the queue"):
            sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=attributes)
    return queue_url, dlq_url


def _ensure_user_pool(cognito: Any, settings: Settings) -> tuple[str, str]:
    pool_name = f"site-builder-{settings.env}"
    with aws_errors("listing user pools"):
        pools = [pool for page in cognito.get_paginator("list_user_pools").paginate(MaxResults=60)
                 for pool in page["UserPools"] if pool["Name"] == pool_name]  # fmt: skip
    if pools:
        pool_id: str = pools[0]["Id"]
    else:
        with aws_errors("creating the user pool"):
            pool_id = cognito.create_user_pool(
                PoolName=pool_name,
                Schema=[
                    {"Name": "email", "AttributeDataType": "String", "Mutable": True, "Required": False},
                    {"Name": "tenant_id", "AttributeDataType": "String", "Mutable": True},
                    {"Name": "roles", "AttributeDataType": "String", "Mutable": True},
                ],
                Policies={"PasswordPolicy": {"MinimumLength": 8, "RequireUppercase": True, "RequireLowercase": True,
                                             "RequireNumbers": True, "RequireSymbols": True,
                                             "TemporaryPasswordValidityDays": settings.temporary_password_ttl_days}},
                AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
            )["UserPool"]["Id"]  # fmt: skip
    client_name = f"site-builder-{settings.env}-tenancy"
    with aws_errors("listing user pool clients"):
        clients = [client for client in cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)
                   ["UserPoolClients"] if client["ClientName"] == client_name]  # fmt: skip
    if clients:
        return pool_id, str(clients[0]["ClientId"])
    with aws_errors("creating the user pool client"):
        client_id: str = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=client_name,
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            # The ID token must carry the tenant (data contract); say so rather than rely on defaults.
            ReadAttributes=["email", "email_verified", "custom:tenant_id", "custom:roles"],
            # Users must never write their own tenant or roles (an `operator` role opens /ops):
            # only the admin API, which this client's users cannot call, sets those.
            WriteAttributes=["name"],
            # RB-001 3.1's "Account not found" needs Cognito to say when a user does not exist.
            PreventUserExistenceErrors="LEGACY",
        )["UserPoolClient"]["ClientId"]
    return pool_id, client_id


def _ensure_log_groups(logs: Any, settings: Settings) -> None:
    for role in ("itn-handler", "provisioning", "audit", "lifecycle", "pre-token"):
        try:
            logs.create_log_group(logGroupName=settings.log_group(role))
        except ClientError as error:
            if error_code(error) != "ResourceAlreadyExistsException":
                with aws_errors("creating a log group"):
                    raise


def _ensure_event_bus(events: Any, settings: Settings) -> None:
    """The bus lifecycle events are put on, for the Site Builder application's rules."""
    try:
        events.create_event_bus(Name=settings.effective_event_bus_name)
    except ClientError as error:
        if error_code(error) != "ResourceAlreadyExistsException":
            with aws_errors("creating the event bus"):
                raise


def _ensure_alarms(session: boto3.Session, settings: Settings, dlq_url: str) -> str:
    """RB-001 section 7: alarms on a non-empty DLQ and on function errors, to one SNS topic."""
    region = settings.aws_region
    with aws_errors("creating the alarm topic"):
        topic_arn: str = session.client("sns", region_name=region).create_topic(
            Name=f"site-builder-{settings.env}-alerts"
        )["TopicArn"]
    cloudwatch = session.client("cloudwatch", region_name=region)
    dlq_name = dlq_url.rsplit("/", 1)[-1]
    alarms = [
        (f"site-builder-{settings.env}-dlq-not-empty", "AWS/SQS", "ApproximateNumberOfMessagesVisible",
         "QueueName", dlq_name, "Maximum"),
        *((f"{settings.function_name(role)}-errors", "AWS/Lambda", "Errors", "FunctionName",
           settings.function_name(role), "Sum") for role in ("itn-handler", "provisioning")),
    ]  # fmt: skip
    for name, namespace, metric, dimension, value, statistic in alarms:
        with aws_errors(f"creating alarm {name}"):
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace=namespace,
                MetricName=metric,
                Dimensions=[{"Name": dimension, "Value": value}],
                Statistic=statistic,  # type: ignore[arg-type]
                Period=60,
                EvaluationPeriods=1,
                Threshold=0,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
                AlarmActions=[topic_arn],
            )
    return topic_arn
