"""The AWS resources as `tenancy aws bootstrap` creates them: keys, indexes, queues, pool, alarms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenancy.adapters.aws.resources import MAX_RECEIVE_COUNT, ensure_resources
from tenancy.cli import app

from aws_support import AwsContext


def test_tables_have_the_data_contract_keys_and_the_email_index(aws: AwsContext) -> None:
    dynamodb = aws.session.client("dynamodb")

    tenants = dynamodb.describe_table(TableName="tenants")["Table"]
    users = dynamodb.describe_table(TableName="users")["Table"]
    journal = dynamodb.describe_table(TableName="provisioning")["Table"]
    payments = dynamodb.describe_table(TableName="payments")["Table"]

    assert tenants["KeySchema"] == [{"AttributeName": "tenant_id", "KeyType": "HASH"}]
    assert users["KeySchema"] == [{"AttributeName": "user_id", "KeyType": "HASH"}]
    assert sorted(index["IndexName"] for index in users["GlobalSecondaryIndexes"]) == ["email-index", "tenant-index"]
    assert journal["KeySchema"] == [{"AttributeName": "transaction_id", "KeyType": "HASH"}]
    assert payments["KeySchema"][0] == {"AttributeName": "pf_payment_id", "KeyType": "HASH"}


def test_the_usage_tables_are_keyed_for_the_service_api_and_answers_expire(aws: AwsContext) -> None:
    dynamodb = aws.session.client("dynamodb")

    answers = dynamodb.describe_table(TableName="usage-answers")["Table"]
    keys = dynamodb.describe_table(TableName="service-keys")["Table"]
    ttl = dynamodb.describe_time_to_live(TableName="usage-answers")["TimeToLiveDescription"]

    assert answers["KeySchema"] == [
        {"AttributeName": "tenant_id", "KeyType": "HASH"},
        {"AttributeName": "idempotency_key", "KeyType": "RANGE"},
    ]
    assert keys["KeySchema"] == [{"AttributeName": "name", "KeyType": "HASH"}]
    # An idempotency key is remembered 7 days: DynamoDB's TTL forgets its answer after that.
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_the_invitations_table_is_keyed_by_invitation_and_lists_a_tenants_by_creation(aws: AwsContext) -> None:
    dynamodb = aws.session.client("dynamodb")

    invitations = dynamodb.describe_table(TableName="invitations")["Table"]

    assert invitations["KeySchema"] == [{"AttributeName": "invitation_id", "KeyType": "HASH"}]
    [index] = invitations["GlobalSecondaryIndexes"]
    assert (index["IndexName"], index["KeySchema"]) == (
        "tenant-index",
        [{"AttributeName": "tenant_id", "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}],
    )


def test_the_queue_dead_letters_after_the_max_receive_count(aws: AwsContext) -> None:
    sqs = aws.session.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=aws.resources.queue_url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=aws.resources.dlq_url, AttributeNames=["QueueArn"])["Attributes"]

    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == dlq_arn["QueueArn"]
    assert int(policy["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    assert int(attributes["VisibilityTimeout"]) > 30  # longer than the provisioning function's timeout


def test_the_user_pool_has_the_custom_attributes_and_an_admin_auth_client(aws: AwsContext) -> None:
    cognito = aws.session.client("cognito-idp")
    pool = cognito.describe_user_pool(UserPoolId=aws.resources.user_pool_id)["UserPool"]
    client = cognito.describe_user_pool_client(
        UserPoolId=aws.resources.user_pool_id, ClientId=aws.resources.user_pool_client_id
    )["UserPoolClient"]

    attributes = {attribute["Name"] for attribute in pool["SchemaAttributes"]}
    assert {"custom:tenant_id", "custom:roles"} <= attributes
    assert "ALLOW_ADMIN_USER_PASSWORD_AUTH" in client["ExplicitAuthFlows"]
    # A user who could write custom:roles could make themselves an operator.
    assert not {"custom:tenant_id", "custom:roles"} & set(client["WriteAttributes"])
    assert {"custom:tenant_id", "custom:roles"} <= set(client["ReadAttributes"])


def test_alarms_watch_the_dlq_and_both_functions(aws: AwsContext) -> None:
    alarms = aws.session.client("cloudwatch").describe_alarms()["MetricAlarms"]

    by_name = {alarm["AlarmName"]: alarm for alarm in alarms}
    assert set(by_name) == {
        "site-builder-dev-dlq-not-empty",
        "site-builder-dev-itn-handler-errors",
        "site-builder-dev-provisioning-errors",
    }
    assert by_name["site-builder-dev-dlq-not-empty"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert all(alarm["AlarmActions"] == [aws.resources.alarm_topic_arn] for alarm in alarms)


def test_bootstrap_is_idempotent_and_prints_the_settings_to_export(aws: AwsContext) -> None:
    again = ensure_resources(aws.session, aws.settings)

    assert again == aws.resources
    exported = again.as_settings()
    assert exported["TENANCY_BACKEND"] == "aws"
    assert exported["TENANCY_QUEUE_URL"].endswith("/provisioning")
    assert exported["TENANCY_DLQ_URL"].endswith("/provisioning-dlq")
    assert {"TENANCY_USER_POOL_ID", "TENANCY_USER_POOL_CLIENT_ID", "TENANCY_TENANTS_TABLE"} <= set(exported)
    assert exported["TENANCY_USAGE_ANSWERS_TABLE"] == "usage-answers"
    assert exported["TENANCY_SERVICE_KEYS_TABLE"] == "service-keys"
    assert exported["TENANCY_INVITATIONS_TABLE"] == "invitations"
    identities = aws.session.client("ses").list_identities()["Identities"]
    assert "noreply@kimmyai.io" in identities


@pytest.mark.parametrize("pepper", [None, "p" * 32], ids=["pepper unset", "pepper set"])
def test_the_bootstrap_command_prints_the_usage_tables_and_keeps_a_pepper_already_set_in_ssm(
    aws: AwsContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pepper: str | None
) -> None:
    monkeypatch.setenv("TENANCY_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("TENANCY_AWS_REGION", "eu-west-1")
    if pepper is None:
        monkeypatch.delenv("TENANCY_SERVICE_KEY_PEPPER", raising=False)
    else:
        monkeypatch.setenv("TENANCY_SERVICE_KEY_PEPPER", pepper)

    result = CliRunner().invoke(app, ["aws", "bootstrap", "--format", "json"])

    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)  # the reminder never spoils what `eval` or a JSON parser reads
    assert exported["TENANCY_USAGE_ANSWERS_TABLE"] == "usage-answers"
    assert exported["TENANCY_SERVICE_KEYS_TABLE"] == "service-keys"
    assert exported["TENANCY_INVITATIONS_TABLE"] == "invitations"
    assert "TENANCY_SERVICE_KEY_PEPPER" not in exported  # a secret is never printed
    # The pepper's SSM parameter: the one this shell already uses (changing it would void every
    # service key), else a random one; never shown.
    stored = aws.session.client("ssm").get_parameter(
        Name=f"{exported['TENANCY_SECRETS_PATH']}service-key-pepper", WithDecryption=True
    )["Parameter"]["Value"]
    assert stored == pepper or (pepper is None and len(stored) == 64)
    assert stored not in result.output


def test_bootstrap_adds_an_index_a_table_made_before_it_lacks(aws: AwsContext) -> None:
    dynamodb = aws.session.client("dynamodb")
    dynamodb.delete_table(TableName="users")
    dynamodb.get_waiter("table_not_exists").wait(TableName="users")
    # The users table as an older version made it: the contract's email-index only.
    dynamodb.create_table(
        TableName="users",
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "user_id", "AttributeType": "S"},
            {"AttributeName": "email", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "email-index",
                "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(
        TableName="users",
        Item={"user_id": {"S": "user_1"}, "tenant_id": {"S": "ten_old"}, "email": {"S": "old@example.com"}},
    )

    ensure_resources(aws.session, aws.settings)

    users = dynamodb.describe_table(TableName="users")["Table"]
    assert sorted(index["IndexName"] for index in users["GlobalSecondaryIndexes"]) == ["email-index", "tenant-index"]
    found = dynamodb.query(
        TableName="users",
        IndexName="tenant-index",
        KeyConditionExpression="tenant_id = :tenant",
        ExpressionAttributeValues={":tenant": {"S": "ten_old"}},
    )["Items"]
    assert [item["user_id"]["S"] for item in found] == ["user_1"]
