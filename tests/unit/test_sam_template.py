"""deploy/template.yaml declares what `tenancy aws bootstrap` creates: the same tables and indexes,
the same queue attributes and alarms, and functions wired to the handlers in tenancy.lambdas."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from tenancy import lambdas
from tenancy.adapters.aws.resources import (
    DLQ_NAME,
    MAX_RECEIVE_COUNT,
    QUEUE_NAME,
    QUEUE_VISIBILITY_TIMEOUT,
    AwsResources,
    table_definitions,
)
from tenancy.background import background_threads
from tenancy.bootstrap import Services
from tenancy.config import Settings
from tenancy.provisioning.worker import STALLED_AFTER

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    # cfn-lint's nodes are dict/list subclasses carrying line marks; plain values compare cleanly.
    plain: dict[str, Any] = json.loads(json.dumps(decoded))
    return plain


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == kind}


def substitute(value: Any, env: str = "dev") -> Any:
    """A `!Sub` of the Env parameter, resolved (the only parameter the names use)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return str(value["Fn::Sub"]).replace("${Env}", env)
    return value


def normalised_table(definition: dict[str, Any]) -> dict[str, Any]:
    """A table's definition with its order-free lists sorted."""
    return {
        "TableName": definition["TableName"],
        "KeySchema": definition["KeySchema"],
        "AttributeDefinitions": sorted(definition["AttributeDefinitions"], key=lambda item: item["AttributeName"]),
        "BillingMode": definition["BillingMode"],
        "GlobalSecondaryIndexes": sorted(
            definition.get("GlobalSecondaryIndexes", []), key=lambda index: index["IndexName"]
        ),
    }


def test_cfn_lint_passes_on_the_template() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(TEMPLATE)], capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tables_are_exactly_the_ones_bootstrap_creates(template: dict[str, Any], settings: Settings) -> None:
    declared = {
        resource["Properties"]["TableName"]: normalised_table(resource["Properties"])
        for resource in resources_of(template, "AWS::DynamoDB::Table").values()
    }
    expected = {definition["TableName"]: normalised_table(definition) for definition in table_definitions(settings)}

    assert declared == expected
    assert declared["tenants"]["KeySchema"] == [{"AttributeName": "tenant_id", "KeyType": "HASH"}]


def test_the_queue_redrives_to_the_dlq_with_bootstraps_attributes(template: dict[str, Any]) -> None:
    queues = {
        resource["Properties"]["QueueName"]: resource for resource in resources_of(template, "AWS::SQS::Queue").values()
    }
    work, dead_letters = queues[QUEUE_NAME]["Properties"], queues[DLQ_NAME]

    assert set(queues) == {QUEUE_NAME, DLQ_NAME}
    assert work["VisibilityTimeout"] == QUEUE_VISIBILITY_TIMEOUT
    assert work["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVE_COUNT
    dlq_name = next(name for name, resource in template["Resources"].items() if resource is dead_letters)
    assert work["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_name, "Arn"]}


def test_the_functions_have_the_contract_names_and_the_lambda_handlers(
    template: dict[str, Any], settings: Settings
) -> None:
    functions = resources_of(template, "AWS::Serverless::Function")
    by_name = {
        substitute(resource["Properties"]["FunctionName"]): resource["Properties"] for resource in functions.values()
    }
    globals_ = template["Globals"]["Function"]

    assert set(by_name) == {
        settings.function_name(role)
        for role in ("itn-handler", "web", "provisioning", "audit", "lifecycle", "alerts", "pre-token")
    }
    assert globals_["Runtime"] == "python3.11"
    for properties in by_name.values():
        module, _, function = properties["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), function))
    itn = by_name[settings.function_name("itn-handler")]
    assert itn["Events"]["Itn"] == {
        "Type": "HttpApi",
        "Properties": {"Path": "/payments/payfast/itn", "Method": "POST"},
    }
    assert itn["FunctionUrlConfig"]["AuthType"] == "NONE"
    # Every other path reaches the whole app (the ITN route is the more specific, so PayFast's
    # POST stays with the ITN function, which runs the same app).
    web = by_name[settings.function_name("web")]
    assert web["Handler"] == "tenancy.lambdas.web_handler"
    assert sorted((event["Properties"]["Path"], event["Properties"]["Method"]) for event in web["Events"].values()) == [
        ("/", "ANY"),
        ("/{proxy+}", "ANY"),
    ]


def provisioning_function(template: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The provisioning function's Properties."""
    return next(
        resource["Properties"]
        for resource in resources_of(template, "AWS::Serverless::Function").values()
        if substitute(resource["Properties"]["FunctionName"]) == settings.function_name("provisioning")
    )


def test_the_provisioning_function_reads_the_queue_in_small_batches_within_the_visibility_timeout(
    template: dict[str, Any], settings: Settings
) -> None:
    properties = provisioning_function(template, settings)
    (event,) = [event for event in properties["Events"].values() if event["Type"] == "SQS"]
    timeout = properties.get("Timeout", template["Globals"]["Function"]["Timeout"])

    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["ProvisioningQueue", "Arn"]}
    assert event["Properties"]["BatchSize"] <= 10
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert timeout < QUEUE_VISIBILITY_TIMEOUT


def test_the_provisioning_function_sweeps_for_stalled_jobs_on_a_schedule(
    template: dict[str, Any], settings: Settings
) -> None:
    properties = provisioning_function(template, settings)

    (schedule,) = [event for event in properties["Events"].values() if event["Type"] == "Schedule"]

    # More often than a job counts as stalled, so none waits much longer than STALLED_AFTER.
    assert schedule["Properties"]["Schedule"] == "rate(5 minutes)"
    assert timedelta(minutes=5) < STALLED_AFTER


def test_every_setting_bootstrap_prints_is_given_to_the_functions(template: dict[str, Any]) -> None:
    placeholder = AwsResources(**{field.name: "x" for field in fields(AwsResources)})
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert set(placeholder.as_settings()) <= set(variables)
    assert variables["TENANCY_BACKEND"] == "aws"
    assert variables["TENANCY_QUEUE_URL"] == {"Ref": "ProvisioningQueue"}
    assert variables["TENANCY_DLQ_URL"] == {"Ref": "ProvisioningDeadLetterQueue"}


def test_the_log_groups_are_the_ones_rb001_searches(template: dict[str, Any], settings: Settings) -> None:
    groups = {
        substitute(resource["Properties"]["LogGroupName"])
        for resource in resources_of(template, "AWS::Logs::LogGroup").values()
    }

    roles = ("itn-handler", "web", "provisioning", "audit", "lifecycle", "alerts", "pre-token")
    assert groups == {settings.log_group(role) for role in roles}


def test_the_weekly_audit_runs_on_a_schedule_with_time_to_finish(template: dict[str, Any], settings: Settings) -> None:
    properties = next(
        resource["Properties"]
        for resource in resources_of(template, "AWS::Serverless::Function").values()
        if substitute(resource["Properties"]["FunctionName"]) == settings.function_name("audit")
    )

    assert properties["Handler"] == "tenancy.lambdas.audit_handler"
    assert properties["Events"]["Weekly"]["Properties"]["Schedule"] == "rate(7 days)"
    assert properties["Timeout"] == 900  # Lambda's longest: a full audit reads every store


def test_the_lifecycle_sweeps_every_five_minutes_and_delivers_notices_every_minute(
    template: dict[str, Any], settings: Settings
) -> None:
    properties = next(
        resource["Properties"]
        for resource in resources_of(template, "AWS::Serverless::Function").values()
        if substitute(resource["Properties"]["FunctionName"]) == settings.function_name("lifecycle")
    )
    events = properties["Events"]

    assert properties["Handler"] == "tenancy.lambdas.lifecycle_handler"
    assert (events["Sweep"]["Properties"]["Schedule"], json.loads(events["Sweep"]["Properties"]["Input"])) == (
        "rate(5 minutes)",
        {"job": "sweep"},
    )
    assert (events["Notices"]["Properties"]["Schedule"], json.loads(events["Notices"]["Properties"]["Input"])) == (
        "rate(1 minute)",
        {"job": "notices"},
    )


def test_the_user_pool_puts_the_tenant_status_in_id_tokens_through_the_pre_token_function(
    template: dict[str, Any], settings: Settings
) -> None:
    resources = template["Resources"]
    pool = resources_of(template, "AWS::Cognito::UserPool")
    [(_, user_pool)] = pool.items()
    trigger = user_pool["Properties"]["LambdaConfig"]["PreTokenGeneration"]
    function = resources[trigger["Fn::GetAtt"][0]]["Properties"]
    [permission] = resources_of(template, "AWS::Lambda::Permission").values()

    assert function["Handler"] == "tenancy.lambdas.pre_token_handler"
    assert substitute(function["FunctionName"]) == settings.function_name("pre-token")
    # Blanked: a reference to the pool here would make the pool and its trigger depend on each other.
    assert function["Environment"]["Variables"] == {"TENANCY_USER_POOL_ID": "", "TENANCY_USER_POOL_CLIENT_ID": ""}
    assert permission["Properties"]["Principal"] == "cognito-idp.amazonaws.com"
    assert permission["Properties"]["FunctionName"] == {"Fn::GetAtt": [trigger["Fn::GetAtt"][0], "Arn"]}


def alarms_by_name(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        substitute(resource["Properties"]["AlarmName"]): resource["Properties"]
        for resource in resources_of(template, "AWS::CloudWatch::Alarm").values()
    }


def test_alarms_watch_the_dlq_and_both_functions_into_one_topic(template: dict[str, Any]) -> None:
    alarms = alarms_by_name(template)

    assert {
        "site-builder-dev-dlq-not-empty",
        "site-builder-dev-itn-handler-errors",
        "site-builder-dev-web-errors",
        "site-builder-dev-provisioning-errors",
    } <= set(alarms)
    dlq = alarms["site-builder-dev-dlq-not-empty"]
    assert (dlq["Namespace"], dlq["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    for name in (
        "site-builder-dev-itn-handler-errors",
        "site-builder-dev-web-errors",
        "site-builder-dev-provisioning-errors",
    ):
        assert (alarms[name]["Namespace"], alarms[name]["MetricName"]) == ("AWS/Lambda", "Errors")
    for alarm in alarms.values():
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


def test_the_user_pool_carries_the_tenant_attributes_and_an_admin_auth_client(template: dict[str, Any]) -> None:
    (pool,) = resources_of(template, "AWS::Cognito::UserPool").values()
    (client,) = resources_of(template, "AWS::Cognito::UserPoolClient").values()

    attributes = {attribute["Name"] for attribute in pool["Properties"]["Schema"]}
    assert {"tenant_id", "roles"} <= attributes
    assert pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert client["Properties"]["ExplicitAuthFlows"] == ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    (identity,) = resources_of(template, "AWS::SES::EmailIdentity").values()
    assert identity["Properties"]["EmailIdentity"] == {"Ref": "EmailFrom"}
    assert template["Parameters"]["EmailFrom"]["Default"] == "noreply@kimmyai.io"


def test_the_expiring_tables_have_a_ttl_on_expires_at_as_bootstrap_enables(template: dict[str, Any]) -> None:
    ttls = {
        resource["Properties"]["TableName"]: resource["Properties"]["TimeToLiveSpecification"]
        for resource in resources_of(template, "AWS::DynamoDB::Table").values()
        if "TimeToLiveSpecification" in resource["Properties"]
    }

    # Bootstrap enables TTL on these three (resources._ensure_tables): usage answers are kept 7 days.
    assert set(ttls) == {"rate-limits", "sessions", "usage-answers"}
    assert all(ttl == {"AttributeName": "expires_at", "Enabled": True} for ttl in ttls.values())


def test_the_service_api_tables_and_pepper_reach_every_function(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["TENANCY_USAGE_ANSWERS_TABLE"] == {"Ref": "UsageAnswersTable"}
    assert variables["TENANCY_SERVICE_KEYS_TABLE"] == {"Ref": "ServiceKeysTable"}
    # The pepper, like every secret, is read from SSM under the path every function is given
    # (tests/unit/test_template_secrets.py).
    assert variables["TENANCY_SECRETS_PATH"] == {"Fn::Sub": "/site-builder/${Env}/"}
    assert "TENANCY_SERVICE_KEY_PEPPER" not in variables


def test_the_functions_that_move_tenants_may_write_their_usage_answers(
    template: dict[str, Any], settings: Settings
) -> None:
    functions = {
        substitute(resource["Properties"]["FunctionName"]): resource["Properties"]
        for resource in resources_of(template, "AWS::Serverless::Function").values()
    }

    for role in ("provisioning", "lifecycle"):
        policies = functions[settings.function_name(role)]["Policies"]
        assert {"DynamoDBCrudPolicy": {"TableName": {"Ref": "UsageAnswersTable"}}} in policies


def test_the_invitations_table_reaches_every_function_and_the_lifecycle_sweep_may_expire_invitations(
    template: dict[str, Any], settings: Settings
) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    functions = {
        substitute(resource["Properties"]["FunctionName"]): resource["Properties"]
        for resource in resources_of(template, "AWS::Serverless::Function").values()
    }
    (invitations,) = (
        resource["Properties"]
        for resource in resources_of(template, "AWS::DynamoDB::Table").values()
        if resource["Properties"]["TableName"] == settings.invitations_table
    )

    assert variables["TENANCY_INVITATIONS_TABLE"] == {"Ref": "InvitationsTable"}
    # The sweep gives an expired invitation's seat back: it writes the invitation and the tenant.
    lifecycle = functions[settings.function_name("lifecycle")]["Policies"]
    assert {"DynamoDBCrudPolicy": {"TableName": {"Ref": "InvitationsTable"}}} in lifecycle
    assert {"DynamoDBCrudPolicy": {"TableName": {"Ref": "TenantsTable"}}} in lifecycle
    # Expiry is the sweep's, never TTL's: a TTL deletion would keep the seat held for good.
    assert "TimeToLiveSpecification" not in invitations


# The schedules: every periodic job of the embedded worker runs on AWS from its own EventBridge rule.

# The threads `tenancy serve` and `tenancy worker` start (tenancy.background), by the job each runs.
EMBEDDED_JOBS = {
    "worker-0": "stalled-job-sweep",  # the first worker also sweeps for stalled jobs
    "audit-schedule": "weekly-audit",
    "lifecycle-sweep": "lifecycle-sweep",
    "notices": "lifecycle-notices",
    "alert-watcher": "alert-watch",
}


def schedules_of(template: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every Schedule event by its rule's name: (the event's Properties, its function's Properties)."""
    return {
        substitute(event["Properties"].get("Name")): (event["Properties"], function["Properties"])
        for function in resources_of(template, "AWS::Serverless::Function").values()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "Schedule"
    }


def test_every_periodic_job_of_the_embedded_worker_is_a_scheduled_job_of_the_lambdas(services: Services) -> None:
    threads = background_threads(services, threading.Event(), workers=2, alert_watch_seconds=60)

    # A second worker only works the queue: the loops that run on a clock are the rest.
    periodic = {thread.name for thread in threads} - {"worker-1"}

    assert periodic == set(EMBEDDED_JOBS)
    assert {EMBEDDED_JOBS[name] for name in periodic} == {job.name for job in lambdas.SCHEDULED_JOBS}


def test_every_scheduled_job_has_its_named_rule_on_the_function_of_its_handler(template: dict[str, Any]) -> None:
    schedules = schedules_of(template)

    assert set(schedules) == {f"site-builder-dev-{job.name}" for job in lambdas.SCHEDULED_JOBS}
    for job in lambdas.SCHEDULED_JOBS:
        rule, function = schedules[f"site-builder-dev-{job.name}"]
        assert function["Handler"] == f"tenancy.lambdas.{job.handler}", job
        # EventBridge sends a rule's Input instead of the scheduled event: the only way the handler
        # of two schedules tells them apart. Without one, the handler gets the scheduled event.
        assert (json.loads(rule["Input"]) if "Input" in rule else None) == job.rule_input, job
        assert rule["Schedule"].startswith("rate("), job


def test_every_scheduled_job_has_its_own_alarm_on_the_metric_its_failures_count(template: dict[str, Any]) -> None:
    alarms = alarms_by_name(template)

    assert len({job.failure_metric for job in lambdas.SCHEDULED_JOBS}) == len(lambdas.SCHEDULED_JOBS)
    for job in lambdas.SCHEDULED_JOBS:
        alarm = alarms[f"site-builder-dev-{job.name}-failed"]
        assert (alarm["Namespace"], alarm["MetricName"]) == (lambdas.metrics.namespace, job.failure_metric)
        # Powertools' metrics carry the service dimension: an alarm on another set would watch nothing.
        assert alarm["Dimensions"] == [{"Name": "service", "Value": lambdas.metrics.service}]
        assert (alarm["Statistic"], alarm["TreatMissingData"]) == ("Sum", "notBreaching")


def test_every_function_on_a_schedule_has_an_errors_alarm_for_its_crashes_and_timeouts(
    template: dict[str, Any],
) -> None:
    on_a_schedule = {
        name
        for name, function in resources_of(template, "AWS::Serverless::Function").items()
        if any(event["Type"] == "Schedule" for event in function["Properties"].get("Events", {}).values())
    }
    watched = {
        alarm["Dimensions"][0]["Value"]["Ref"]
        for alarm in alarms_by_name(template).values()
        if (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    }

    assert on_a_schedule == {"ProvisioningFunction", "AuditFunction", "LifecycleFunction", "AlertWatchFunction"}
    assert on_a_schedule <= watched


def test_the_alert_watcher_runs_every_minute_and_may_read_what_its_rules_read(
    template: dict[str, Any], settings: Settings
) -> None:
    rule, function = schedules_of(template)["site-builder-dev-alert-watch"]
    policies = function["Policies"]

    assert substitute(function["FunctionName"]) == settings.function_name("alerts")
    # As often as `tenancy serve` checks by default (TENANCY_ALERT_WATCH_SECONDS).
    assert (rule["Schedule"], settings.alert_watch_seconds) == ("rate(1 minute)", 60)
    for table in ("ProvisioningTable", "PaymentsTable", "FindingsTable", "LifecycleTable"):
        assert {"DynamoDBReadPolicy": {"TableName": {"Ref": table}}} in policies
    [depths] = [policy["Statement"][0] for policy in policies if "Statement" in policy]
    assert depths["Action"] == ["sqs:GetQueueAttributes"]
    assert depths["Resource"] == [
        {"Fn::GetAtt": ["ProvisioningQueue", "Arn"]},
        {"Fn::GetAtt": ["ProvisioningDeadLetterQueue", "Arn"]},
    ]
    # Email alerts go out through SES, kept in the mail log.
    assert {"SESCrudPolicy": {"IdentityName": {"Ref": "EmailFrom"}}} in policies
    assert {"DynamoDBCrudPolicy": {"TableName": {"Ref": "MailLogTable"}}} in policies
