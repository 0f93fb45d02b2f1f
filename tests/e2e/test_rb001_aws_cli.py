"""RB-001 compatibility on the AWS backend, with moto's server on loopback and the real AWS CLI
(`awscli` from PyPI) and jq.

One way: the project provisions a tenant, and every read command of RB-001 3.2, 4.1, 4.2, 4.3
and 5 runs verbatim (only `--endpoint-url` and ids substituted) and shows what the runbook
expects. The other way: a tenant and user made by hand with RB-001 4.2/4.3's own `put-item` and
`admin-create-user` commands are accepted by `tenancy diagnose` / `repair` / `verify`.

The commands below are copied from shared/spec/RB-001-tenant-provisioning-runbook.md (v1.0,
2026-01-18) character for character; `Runbook.run` substitutes the placeholders it is given
(each must occur) and appends `--endpoint-url` after each `--region eu-west-1`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from awscli.shorthand import ShorthandParseError, ShorthandParser

from tenancy.domain.ids import temporary_password, tenant_id_for

from moto_server import REGION, aws_env, running_moto
from servers import tenancy

AWS = Path(sys.executable).with_name("aws")
JQ = shutil.which("jq")

TRANSACTION_ID = "TXN-123456"
EMAIL = "user@example.com"
PAYLOAD = '{"transactionId":"TXN-123456","email":"user@example.com","plan":"professional"}'
PROVISIONING_LOG_GROUP = "/aws/lambda/site-builder-dev-provisioning"
DLQ_PLACEHOLDER = "https://sqs.eu-west-1.amazonaws.com/ACCOUNT/provisioning-dlq"

# --- RB-001's commands, verbatim -------------------------------------------------------------

# 3.2 Quick Diagnosis
CHECK_TENANT = """\
aws dynamodb get-item \\
  --table-name tenants \\
  --key '{"tenant_id": {"S": "ten_XXXXX"}}' \\
  --region eu-west-1"""

CHECK_USER = """\
aws cognito-idp admin-get-user \\
  --user-pool-id eu-west-1_XXXXX \\
  --username "user@example.com" \\
  --region eu-west-1"""

PROVISIONING_ERRORS = """\
aws logs filter-log-events \\
  --log-group-name "/aws/lambda/site-builder-dev-provisioning" \\
  --filter-pattern "ERROR" \\
  --start-time $(date -d '1 hour ago' +%s)000 \\
  --region eu-west-1"""

# 4.1 steps 2-4
ITN_HANDLER_LOGS = """\
aws logs filter-log-events \\
  --log-group-name "/aws/lambda/site-builder-dev-itn-handler" \\
  --filter-pattern "TXN-123456" \\
  --region eu-west-1"""

PROVISIONING_LOGS = """\
aws logs filter-log-events \\
  --log-group-name "/aws/lambda/site-builder-dev-provisioning" \\
  --filter-pattern "TXN-123456" \\
  --region eu-west-1"""

DLQ = """\
aws sqs receive-message \\
  --queue-url https://sqs.eu-west-1.amazonaws.com/ACCOUNT/provisioning-dlq \\
  --region eu-west-1"""

# 4.2 step 1 (step 2 is CHECK_USER)
TENANT_ITEM = """\
aws dynamodb get-item \\
  --table-name tenants \\
  --key '{"tenant_id": {"S": "ten_XXXXX"}}' \\
  --region eu-west-1 | jq '.Item'"""

# 4.2 Resolution (Create missing user)
CREATE_USER = """\
aws cognito-idp admin-create-user \\
  --user-pool-id eu-west-1_XXXXX \\
  --username "user@example.com" \\
  --user-attributes \\
    Name=email,Value="user@example.com" \\
    Name=email_verified,Value=true \\
    Name=custom:tenant_id,Value="ten_XXXXX" \\
    Name=custom:roles,Value="tenant_admin" \\
  --temporary-password "TempPass123!" \\
  --message-action SUPPRESS \\
  --region eu-west-1"""

CREATE_USERS_RECORD = """\
aws dynamodb put-item \\
  --table-name users \\
  --item '{
    "user_id": {"S": "user_XXXXX"},
    "tenant_id": {"S": "ten_XXXXX"},
    "email": {"S": "user@example.com"},
    "role": {"S": "tenant_admin"},
    "status": {"S": "active"},
    "created_at": {"S": "2026-01-18T00:00:00Z"}
  }' \\
  --region eu-west-1"""

RESET_PASSWORD = """\
aws cognito-idp admin-reset-user-password \\
  --user-pool-id eu-west-1_XXXXX \\
  --username "user@example.com" \\
  --region eu-west-1"""

# 4.3 step 1
THROTTLING = """\
aws cloudwatch get-metric-statistics \\
  --namespace AWS/DynamoDB \\
  --metric-name ThrottledRequests \\
  --dimensions Name=TableName,Value=tenants \\
  --start-time $(date -d '1 hour ago' -u +%Y-%m-%dT%H:%M:%SZ) \\
  --end-time $(date -u +%Y-%m-%dT%H:%M:%SZ) \\
  --period 300 \\
  --statistics Sum \\
  --region eu-west-1"""

# 4.3 Resolution (Create tenant record manually): the three commands, run as one script
# because the second reads the shell variable the first sets.
COGNITO_SUB = """\
COGNITO_SUB=$(aws cognito-idp admin-get-user \\
  --user-pool-id eu-west-1_XXXXX \\
  --username "user@example.com" \\
  --query 'UserAttributes[?Name==`sub`].Value' \\
  --output text \\
  --region eu-west-1)"""

CREATE_TENANT = """\
aws dynamodb put-item \\
  --table-name tenants \\
  --item '{
    "tenant_id": {"S": "ten_NEWID"},
    "owner_user_id": {"S": "'$COGNITO_SUB'"},
    "name": {"S": "User Tenant"},
    "plan": {"S": "professional"},
    "status": {"S": "active"},
    "limits": {"M": {
      "max_sites": {"N": "5"},
      "max_generations_per_month": {"N": "100"},
      "max_storage_mb": {"N": "500"},
      "custom_domain_allowed": {"BOOL": true}
    }},
    "usage": {"M": {
      "sites_count": {"N": "0"},
      "generations_this_month": {"N": "0"},
      "storage_used_mb": {"N": "0"}
    }},
    "storage_prefix": {"S": "tenants/ten_NEWID"},
    "billing": {"M": {
      "transaction_id": {"S": "TXN-123456"},
      "invoice_number": {"S": "INV-123456"}
    }},
    "created_at": {"S": "2026-01-18T00:00:00Z"},
    "updated_at": {"S": "2026-01-18T00:00:00Z"}
  }' \\
  --region eu-west-1"""

LINK_TENANT = """\
aws cognito-idp admin-update-user-attributes \\
  --user-pool-id eu-west-1_XXXXX \\
  --username "user@example.com" \\
  --user-attributes Name=custom:tenant_id,Value=ten_NEWID \\
  --region eu-west-1"""

# 5 Verification Steps, 1 and 2
TENANT_STATUS = """\
aws dynamodb get-item \\
  --table-name tenants \\
  --key '{"tenant_id": {"S": "ten_XXXXX"}}' \\
  --region eu-west-1 | jq '.Item.status.S'"""

SIGN_IN = """\
aws cognito-idp admin-initiate-auth \\
  --user-pool-id eu-west-1_XXXXX \\
  --client-id XXXXXXX \\
  --auth-flow ADMIN_NO_SRP_AUTH \\
  --auth-parameters USERNAME=user@example.com,PASSWORD=TempPass123! \\
  --region eu-west-1"""

# The tenants item of the data contract (RB-001 4.3's shape): attribute -> DynamoDB type.
TENANT_ITEM_TYPES = {
    "tenant_id": "S",
    "owner_user_id": "S",
    "name": "S",
    "plan": "S",
    "status": "S",
    "limits": "M",
    "usage": "M",
    "storage_prefix": "S",
    "billing": "M",
    "created_at": "S",
    "updated_at": "S",
}
UTC_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --- Running them ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Runbook:
    """RB-001's commands as an operator runs them: bash, the AWS CLI and jq on PATH, credentials
    and region from the environment. AWS_ENDPOINT_URL is deliberately not set, so every call
    reaches moto only through the `--endpoint-url` appended to it."""

    endpoint: str
    env: dict[str, str]
    cwd: Path  # an empty directory: nothing in a pasted command can glob-match a file

    def run(
        self, *commands: str, subs: Sequence[tuple[str, str]] = (), then: str = ""
    ) -> subprocess.CompletedProcess[str]:
        script = "\n".join(commands)
        for placeholder, value in subs:
            assert placeholder in script, f"{placeholder!r} is not in the runbook command"
            script = script.replace(placeholder, value)
        assert "--region eu-west-1" in script
        script = script.replace("--region eu-west-1", f"--region eu-west-1 --endpoint-url {self.endpoint}")
        # errexit/pipefail only make a failing `aws` fail the script rather than feed jq nothing.
        return subprocess.run(
            ["bash", "-c", f"set -eo pipefail\n{script}\n{then}"],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *commands: str, subs: Sequence[tuple[str, str]] = (), then: str = "") -> str:
        result = self.run(*commands, subs=subs, then=then)
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def json(self, *commands: str, subs: Sequence[tuple[str, str]] = ()) -> Any:
        return json.loads(self.ok(*commands, subs=subs) or "{}")

    def aws(self, *arguments: str) -> Any:
        """A plain AWS CLI call that is not RB-001's (shipping logs, answering a challenge)."""
        result = subprocess.run(
            [str(AWS), *arguments, "--region", REGION, "--endpoint-url", self.endpoint],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout or "{}")


@dataclass(frozen=True)
class Provisioned:
    runbook: Runbook
    env: dict[str, str]  # for `tenancy`: AWS_ENDPOINT_URL and the bootstrapped TENANCY_* settings
    pool_id: str
    client_id: str
    dlq_url: str
    tenant_id: str
    temporary_password: str
    log_lines: list[str]  # what `tenancy provision` logged for TRANSACTION_ID

    def pool(self) -> list[tuple[str, str]]:
        return [("eu-west-1_XXXXX", self.pool_id)]


def runbook_shell_env(home: Path) -> dict[str, str]:
    """An operator's shell with the AWS CLI "configured" (RB-001 2.2): fake keys, the region,
    JSON output, and no profile or config file that could name a real account."""
    assert AWS.exists(), f"the AWS CLI is not installed next to {sys.executable} (pip install awscli)"
    assert JQ, "jq is not on PATH: RB-001 pipes the AWS CLI into jq (install it: apt-get install jq)"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "TENANCY_"))}
    env.update(
        {
            "PATH": os.pathsep.join([str(AWS.parent), str(Path(JQ).parent), env.get("PATH", "")]),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_DEFAULT_OUTPUT": "json",
            "AWS_CONFIG_FILE": str(home / "aws-config-absent"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials-absent"),
        }
    )
    return env


def project_log_lines(stderr: str, transaction_id: str) -> list[str]:
    """The JSON lines `tenancy` printed to stderr about a transaction."""
    lines = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("transaction_id") == transaction_id:
            lines.append(line)
    return lines


def ship_to_cloudwatch(runbook: Runbook, log_group: str, lines: list[str]) -> None:
    """Stands in for the Lambda runtime, which sends a function's stdout/stderr to its log group:
    `tenancy --verbose` running here prints the same JSON lines to stderr and they go nowhere, so they are
    put into the group with `aws logs put-log-events`, stamped with their own timestamps."""
    stream = f"{datetime.now().strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
    events = [
        {"timestamp": int(datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp() * 1000), "message": line}
        for line in lines
    ]
    events_file = runbook.cwd.parent / f"events-{uuid.uuid4().hex}.json"
    events_file.write_text(json.dumps(events))
    runbook.aws("logs", "create-log-stream", "--log-group-name", log_group, "--log-stream-name", stream)
    runbook.aws(
        "logs", "put-log-events", "--log-group-name", log_group, "--log-stream-name", stream,
        "--log-events", f"file://{events_file}",
    )  # fmt: skip


def emailed_password(env: dict[str, str], email: str) -> str:
    """The newest welcome email's temporary password (`tenancy mail list --json`, newest first)."""
    mail = tenancy(env, "mail", "list", "--to", email, "--json")
    assert mail.returncode == 0, mail.stderr
    welcome = json.loads(mail.stdout)[0]
    assert welcome["subject"] == "Welcome to Site Builder"
    match = re.search(r"^Temporary password: (\S+)\r?$", welcome["text"], re.MULTILINE)
    assert match, welcome["text"]
    return match.group(1)


def shorthand_reads(password: str) -> bool:
    """Whether the AWS CLI's shorthand reads RB-001 5's `USERNAME=...,PASSWORD=<password>` back."""
    try:
        parsed = ShorthandParser().parse(f"USERNAME={EMAIL},PASSWORD={password}")
    except ShorthandParseError:
        return False
    return bool(parsed == {"USERNAME": EMAIL, "PASSWORD": password})


def in_place_of_temp_pass(password: str) -> str:
    """What replaces RB-001 5's `TempPass123!`: the emailed password, bare, as an operator pastes
    it (the project's password alphabet keeps it readable by the AWS CLI's shorthand: see
    test_every_temporary_password_fits_rb001_5s_auth_parameters)."""
    assert shorthand_reads(password), password
    return password


def attributes_of(user: dict[str, Any]) -> dict[str, str]:
    return {attribute["Name"]: attribute["Value"] for attribute in user["UserAttributes"]}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def diagnose(env: dict[str, str], email: str) -> tuple[int, dict[str, Any]]:
    result = tenancy(env, "diagnose", "--email", email, "--json")
    assert result.stdout, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, document


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    """moto, `tenancy aws bootstrap`, and RB-001 4.1's payload provisioned by the project."""
    home = tmp_path_factory.mktemp("rb001-home")
    shell_env = runbook_shell_env(home)  # first: without the AWS CLI or jq, fail before anything starts
    shell_dir = tmp_path_factory.mktemp("rb001-shell") / "cwd"
    shell_dir.mkdir()
    with running_moto() as endpoint:
        base = aws_env(home, endpoint)
        bootstrapped = tenancy(base, "aws", "bootstrap", "--format", "json")
        assert bootstrapped.returncode == 0, bootstrapped.stderr
        settings = json.loads(bootstrapped.stdout)
        env = {**base, **settings}

        # --verbose: the log lines on stderr too, as a Lambda function writes them.
        provisioning = tenancy(env, "--verbose", "provision", "--payload", PAYLOAD, "--json")
        assert provisioning.returncode == 0, provisioning.stderr
        outcome = json.loads(provisioning.stdout)
        assert outcome["status"] == "succeeded", outcome
        log_lines = project_log_lines(provisioning.stderr, TRANSACTION_ID)
        assert log_lines, provisioning.stderr

        runbook = Runbook(endpoint, shell_env, shell_dir)
        ship_to_cloudwatch(runbook, PROVISIONING_LOG_GROUP, log_lines)
        yield Provisioned(
            runbook=runbook,
            env=env,
            pool_id=settings["TENANCY_USER_POOL_ID"],
            client_id=settings["TENANCY_USER_POOL_CLIENT_ID"],
            dlq_url=settings["TENANCY_DLQ_URL"],
            tenant_id=outcome["tenant_id"],
            temporary_password=emailed_password(env, EMAIL),
            log_lines=log_lines,
        )


# --- One way: RB-001 reads what the project wrote --------------------------------------------


def test_3_2_quick_diagnosis_finds_the_tenant_the_user_and_the_logs(provisioned: Provisioned) -> None:
    runbook, tenant = provisioned.runbook, [("ten_XXXXX", provisioned.tenant_id)]

    item = runbook.json(CHECK_TENANT, subs=tenant)["Item"]
    user = runbook.json(CHECK_USER, subs=provisioned.pool())
    errors = runbook.json(PROVISIONING_ERRORS)

    assert item["tenant_id"] == {"S": provisioned.tenant_id}
    assert user["Username"] == EMAIL
    assert user["Enabled"] is True
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"  # data contract: until the first sign-in
    attributes = attributes_of(user)
    assert attributes["custom:tenant_id"] == provisioned.tenant_id
    assert attributes["custom:roles"] == "tenant_admin"
    assert (attributes["email"], attributes["email_verified"]) == (EMAIL, "true")
    # A clean provisioning logged no error; what matters here is that the command answers.
    assert isinstance(errors["events"], list)
    assert all("ERROR" in event["message"] for event in errors["events"])


def test_4_1_finds_the_transaction_in_the_logs_and_an_empty_dlq(provisioned: Provisioned) -> None:
    runbook = provisioned.runbook

    itn_handler = runbook.json(ITN_HANDLER_LOGS)
    provisioning = runbook.json(PROVISIONING_LOGS)
    dlq = runbook.json(DLQ, subs=[(DLQ_PLACEHOLDER, provisioned.dlq_url)])

    # RB-001 4.1's manual trigger (`tenancy provision --payload`) bypasses the ITN handler.
    assert itn_handler["events"] == []
    messages = [event["message"] for event in provisioning["events"]]
    assert messages == provisioned.log_lines
    assert {json.loads(message)["event"] for message in messages} >= {"job_started", "step_done", "job_finished"}
    # An empty receive prints nothing at all (so `{}` here): nothing was dead-lettered.
    assert dlq.get("Messages", []) == []


def test_4_2_step_1_shows_the_tenant_item_with_the_contracts_types(provisioned: Provisioned) -> None:
    runbook, tenant = provisioned.runbook, [("ten_XXXXX", provisioned.tenant_id)]

    item = runbook.json(TENANT_ITEM, subs=tenant)
    user = runbook.json(CHECK_USER, subs=provisioned.pool())

    assert {name: next(iter(value)) for name, value in item.items()} == TENANT_ITEM_TYPES
    assert item["status"] == {"S": "active"}
    assert item["plan"] == {"S": "professional"}
    assert item["limits"]["M"] == {
        "max_sites": {"N": "5"},
        "max_generations_per_month": {"N": "100"},
        "max_storage_mb": {"N": "500"},
        "custom_domain_allowed": {"BOOL": True},
    }
    assert item["usage"]["M"] == {
        "sites_count": {"N": "0"},
        "generations_this_month": {"N": "0"},
        "storage_used_mb": {"N": "0"},
    }
    assert item["storage_prefix"] == {"S": f"tenants/{provisioned.tenant_id}"}
    assert item["billing"]["M"] == {"transaction_id": {"S": TRANSACTION_ID}, "invoice_number": {"S": "INV-123456"}}
    assert UTC_TIMESTAMP.match(item["created_at"]["S"])
    assert UTC_TIMESTAMP.match(item["updated_at"]["S"])
    assert item["owner_user_id"] == {"S": attributes_of(user)["sub"]}


def test_4_3_reads_the_throttling_metric_and_the_owners_sub(provisioned: Provisioned) -> None:
    runbook = provisioned.runbook

    throttling = runbook.json(THROTTLING)
    sub = runbook.ok(COGNITO_SUB, subs=provisioned.pool(), then='printf "%s\\n" "$COGNITO_SUB"')
    item = runbook.json(TENANT_ITEM, subs=[("ten_XXXXX", provisioned.tenant_id)])

    assert throttling["Label"] == "ThrottledRequests"
    assert isinstance(throttling["Datapoints"], list)
    assert re.fullmatch(r"[0-9a-f-]{36}\n", sub), sub
    assert sub.strip() == item["owner_user_id"]["S"]


def test_5_verification_with_the_temporary_password_then_a_chosen_one(provisioned: Provisioned) -> None:
    runbook, subs = provisioned.runbook, [*provisioned.pool(), ("XXXXXXX", provisioned.client_id)]
    chosen = "Chosen-Passw0rd!"

    status = runbook.ok(TENANT_STATUS, subs=[("ten_XXXXX", provisioned.tenant_id)])
    challenge = runbook.json(
        SIGN_IN, subs=[*subs, ("TempPass123!", in_place_of_temp_pass(provisioned.temporary_password))]
    )
    # The owner's first sign-in answers the challenge (what /auth/challenge does); RB-001 has no
    # command for it, and admin-set-user-password is deliberately not used.
    answered = runbook.aws(
        "cognito-idp", "admin-respond-to-auth-challenge",
        "--user-pool-id", provisioned.pool_id, "--client-id", provisioned.client_id,
        "--challenge-name", "NEW_PASSWORD_REQUIRED", "--session", challenge["Session"],
        "--challenge-responses", f"USERNAME={EMAIL},NEW_PASSWORD={chosen}",
    )  # fmt: skip
    # moto takes ADMIN_NO_SRP_AUTH like ADMIN_USER_PASSWORD_AUTH and never looks at the client's
    # ExplicitAuthFlows, so this cannot show that Cognito accepts RB-001's legacy flow name on a
    # client that allows ALLOW_ADMIN_USER_PASSWORD_AUTH (which AWS documents as its replacement).
    signed_in = runbook.json(SIGN_IN, subs=[*subs, ("TempPass123!", chosen)])
    verified = tenancy(provisioned.env, "verify", "--email", EMAIL, "--password", chosen)
    code, diagnosis = diagnose(provisioned.env, EMAIL)

    assert status == '"active"\n'
    assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    assert "IdToken" in answered["AuthenticationResult"]
    tokens = signed_in["AuthenticationResult"]
    assert {"IdToken", "AccessToken", "RefreshToken"} <= set(tokens)
    # Step 3: the tenant is in the ID token's claims.
    claims = jwt_claims(tokens["IdToken"])
    assert claims["custom:tenant_id"] == provisioned.tenant_id
    assert claims["custom:roles"] == "tenant_admin"
    assert claims["email"] == EMAIL
    assert claims["token_use"] == "id"
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (code, diagnosis["finding"]) == (0, "healthy"), diagnosis


# --- The other way: records made by hand with RB-001's commands are accepted -----------------


def test_a_tenant_and_user_made_with_rb001_4_2_and_4_3_are_healthy_after_the_welcome_email(
    provisioned: Provisioned,
) -> None:
    runbook, env = provisioned.runbook, provisioned.env
    suffix = uuid.uuid4().hex[:8]
    email, tenant_id = f"hand-{suffix}@example.com", f"ten_NEWID{suffix.upper()}"
    transaction_id, user_id = f"TXN-{suffix.upper()}", f"user_{suffix}"
    person = [*provisioned.pool(), ("user@example.com", email)]

    # 4.2's admin-create-user, with its own temporary password and SUPPRESS (which leaves RB-001
    # 4.3's "Cognito user exists but tenant record missing").
    runbook.ok(CREATE_USER, subs=[*person, ("ten_XXXXX", tenant_id)])
    # 4.3's resolution, as one script: the sub, the tenant item, the link. Only the transaction id
    # is substituted in the billing map: INV-123456 stays as an operator would paste it.
    runbook.ok(
        COGNITO_SUB, CREATE_TENANT, LINK_TENANT,
        subs=[*person, ("ten_NEWID", tenant_id), ("TXN-123456", transaction_id)],
    )  # fmt: skip
    # 4.2's users record.
    runbook.ok(
        CREATE_USERS_RECORD, subs=[("user@example.com", email), ("user_XXXXX", user_id), ("ten_XXXXX", tenant_id)]
    )
    # 4.2's "Send password reset email". Cognito refuses AdminResetUserPassword for a user in
    # FORCE_CHANGE_PASSWORD (who has no password of their own yet), and moto does the same, so
    # the runbook's own command fails right after the runbook's own admin-create-user.
    reset = runbook.run(RESET_PASSWORD, subs=person)
    user = runbook.json(CHECK_USER, subs=person)

    by_tenant = tenancy(env, "verify", "--tenant-id", tenant_id, "--json")
    by_email = tenancy(env, "verify", "--email", email, "--json")
    code, found = diagnose(env, email)
    repaired = tenancy(env, "repair", "--email", email, "--yes", "--json")
    verified = tenancy(env, "verify", "--email", email)
    healthy_code, healthy = diagnose(env, email)
    status = runbook.ok(TENANT_STATUS, subs=[("ten_XXXXX", tenant_id)])
    password = emailed_password(env, email)
    challenge = runbook.json(
        SIGN_IN, subs=[*person, ("XXXXXXX", provisioned.client_id), ("TempPass123!", in_place_of_temp_pass(password))]
    )
    item = runbook.json(TENANT_ITEM, subs=[("ten_XXXXX", tenant_id)])
    users = runbook.aws(
        "dynamodb", "query", "--table-name", "users", "--index-name", "email-index",
        "--key-condition-expression", "email = :email",
        "--expression-attribute-values", json.dumps({":email": {"S": email}}),
    )  # fmt: skip

    assert reset.returncode != 0
    assert "NotAuthorizedException" in reset.stderr, reset.stderr
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert attributes_of(user)["custom:tenant_id"] == tenant_id

    # Nothing flagged as corrupt: the only thing missing is the project's own welcome email.
    assert code == 1
    assert (found["finding"], found["runbook_section"]) == ("welcome_email_missing", "4.4"), found
    assert found["tenant_id"] == tenant_id
    assert found["transaction_id"] == transaction_id
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    repair = json.loads(repaired.stdout)
    assert (repair["outcome"], repair["after"]["finding"], repair["verify"]["passed"]) == ("repaired", "healthy", True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # Before the repair, no payment or job named the owner: `--tenant-id` found it by the tenant
    # record's owner_user_id (the sub), and only the welcome email failed, as by `--email`.
    assert by_tenant.returncode == 1, by_tenant.stdout + by_tenant.stderr
    assert json.loads(by_tenant.stdout) == json.loads(by_email.stdout)
    failing = [check["check"] for check in json.loads(by_tenant.stdout)["checks"] if check["status"] == "fail"]
    assert failing == ["welcome email sent to the owner (RB-001 4.4)"]
    assert (healthy_code, healthy["finding"]) == (0, "healthy"), healthy
    assert status == '"active"\n'
    assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    # The hand-written records are kept as written: no second users record, no rewritten tenant.
    assert [record["user_id"] for record in users["Items"]] == [{"S": user_id}]
    assert item["name"] == {"S": "User Tenant"}
    assert item["owner_user_id"] == {"S": attributes_of(user)["sub"]}
    assert item["billing"]["M"] == {"transaction_id": {"S": transaction_id}, "invoice_number": {"S": "INV-123456"}}
    assert item["created_at"] == {"S": "2026-01-18T00:00:00Z"}


def test_after_rb001_admin_create_user_alone_diagnose_names_4_3s_missing_tenant(provisioned: Provisioned) -> None:
    suffix = uuid.uuid4().hex[:8]
    email, tenant_id = f"no-tenant-{suffix}@example.com", f"ten_NEWID{suffix.upper()}"
    provisioned.runbook.ok(
        CREATE_USER, subs=[*provisioned.pool(), ("user@example.com", email), ("ten_XXXXX", tenant_id)]
    )

    result = tenancy(provisioned.env, "diagnose", "--email", email, "--json")

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert (document["finding"], document["runbook_section"]) == ("tenant_record_missing", "4.3"), document
    assert document["tenant_id"] == tenant_id


# --- A failed provisioning, as RB-001 3.2 and 4.1 look for it --------------------------------


@dataclass(frozen=True)
class DeadLettered:
    transaction_id: str
    log_lines: list[str]


@pytest.fixture(scope="module")
def dead_lettered(provisioned: Provisioned) -> DeadLettered:
    """A job that fails for good: its tenant id (derived from the transaction id) is already
    taken by a tenant written by hand, with RB-001 4.3's put-item, for another transaction
    (COGNITO_SUB is not set here, so its owner_user_id is empty: it is only in the way)."""
    suffix = uuid.uuid4().hex[:8].upper()
    transaction_id = f"TXN-{suffix}"
    provisioned.runbook.ok(
        CREATE_TENANT, subs=[("ten_NEWID", tenant_id_for(transaction_id)), ("TXN-123456", f"TXN-OTHER{suffix}")]
    )
    payload = json.dumps({"transactionId": transaction_id, "email": f"failed-{suffix.lower()}@example.com",
                          "plan": "professional"})  # fmt: skip
    result = tenancy(provisioned.env, "--verbose", "provision", "--payload", payload, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "dead_lettered"
    lines = project_log_lines(result.stderr, transaction_id)
    assert any(json.loads(line)["event"] == "job_dead_lettered" for line in lines), result.stderr
    ship_to_cloudwatch(provisioned.runbook, PROVISIONING_LOG_GROUP, lines)
    return DeadLettered(transaction_id, lines)


def test_4_1_dlq_and_logs_show_a_dead_lettered_job(provisioned: Provisioned, dead_lettered: DeadLettered) -> None:
    runbook = provisioned.runbook

    logs = runbook.json(PROVISIONING_LOGS, subs=[("TXN-123456", dead_lettered.transaction_id)])
    dlq = runbook.json(DLQ, subs=[(DLQ_PLACEHOLDER, provisioned.dlq_url)])

    assert [event["message"] for event in logs["events"]] == dead_lettered.log_lines
    bodies = [json.loads(message["Body"]) for message in dlq["Messages"]]
    assert {"transaction_id": dead_lettered.transaction_id} in bodies


def test_3_2_error_filter_finds_the_dead_lettered_job(provisioned: Provisioned, dead_lettered: DeadLettered) -> None:
    errors = provisioned.runbook.json(PROVISIONING_ERRORS)

    found = [json.loads(event["message"]) for event in errors["events"]]
    assert any(
        event.get("event") == "job_dead_lettered" and event.get("transaction_id") == dead_lettered.transaction_id
        for event in found
    ), errors


def test_every_temporary_password_fits_rb001_5s_auth_parameters() -> None:
    # About 2% of the project's passwords start with `=`: 5000 draws all miss it with odds of e^-100.
    unreadable = sorted({password for password in (temporary_password() for _ in range(5000))
                         if not shorthand_reads(password)})  # fmt: skip
    assert unreadable == [], unreadable[:5]
