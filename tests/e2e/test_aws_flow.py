"""The AWS backend end to end, on moto's server: `tenancy aws bootstrap` creates the resources and
prints the settings, `tenancy serve` and `tenancy worker` run on them as real processes, and a
signed ITN becomes a tenant whose owner logs in through Cognito's new-password challenge."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.ids import tenant_id_for
from tenancy.payments.simulator import build_itn, encode_form

from moto_server import aws_env, running_moto
from purchases import keyed, status_key_for
from servers import cli_env, free_port, start_server, stop_server, tenancy

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's server on loopback: the whole AWS backend, reached through AWS_ENDPOINT_URL."""
    with running_moto() as endpoint:
        yield endpoint


def exported(text: str) -> dict[str, str]:
    """The variables of `export NAME=value` lines, as a shell would read them."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        (assignment,) = shlex.split(line.removeprefix("export "))
        name, _, value = assignment.partition("=")
        values[name] = value
    return values


def wait_for_status(base_url: str, transaction_id: str, wanted: str = "succeeded") -> dict[str, object]:
    deadline = time.monotonic() + 60
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        params = {"key": status_key_for(transaction_id)}
        response = httpx.get(f"{base_url}/provisioning/{transaction_id}", params=params, timeout=5)
        if response.status_code == 200:
            last = response.json()
            if last["status"] == wanted:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{transaction_id} did not reach {wanted}: {last}")


def aws_cli(env: dict[str, str], *arguments: str) -> dict[str, object]:
    """RB-001's own `aws` commands, against the same endpoint."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("aws")), *arguments, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_bootstrap_then_serve_and_worker_on_aws_turn_a_paid_itn_into_a_tenant_the_owner_logs_into(
    tmp_path: Path, moto_endpoint: str
) -> None:
    home = tmp_path / "home"
    base = aws_env(home, moto_endpoint)

    bootstrapped = tenancy(base, "aws", "bootstrap", "--format", "json")
    assert bootstrapped.returncode == 0, bootstrapped.stderr
    settings = json.loads(bootstrapped.stdout)
    again = tenancy(base, "aws", "bootstrap", "--format", "env")
    assert again.returncode == 0, again.stderr
    assert exported(again.stdout) == settings
    assert settings["TENANCY_BACKEND"] == "aws"
    assert settings["TENANCY_COGNITO_JWKS_URL"].startswith(moto_endpoint)

    env = {
        **base,
        **settings,
        "TENANCY_PAYFAST_MODE": "offline",
        "TENANCY_PORT": str(free_port()),
        "TENANCY_WORKERS": "0",
        "TENANCY_WORKER_POLL_SECONDS": "0.1",
    }
    server = start_server(home, env)
    worker_log = (home / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tenancy", "worker"], env=env, stdout=worker_log, stderr=subprocess.STDOUT
    )
    try:
        transaction_id = f"TXN-{uuid.uuid4().hex[:10].upper()}"
        email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        fields = build_itn(
            transaction_id=transaction_id,
            email=email,
            plan="professional",
            amount=Decimal("299.00"),
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            custom=keyed(transaction_id),
        )

        posted = httpx.post(
            f"{server.base_url}/payments/payfast/itn", content=encode_form(fields), headers=FORM, timeout=30
        )
        assert posted.status_code == 200, posted.text
        wait_for_status(server.base_url, transaction_id)

        mail = tenancy(env, "mail", "list", "--to", email, "--json")
        assert mail.returncode == 0, mail.stderr
        (welcome,) = json.loads(mail.stdout)
        assert welcome["subject"] == "Welcome to Site Builder"
        match = re.search(r"^Temporary password: (\S+)\r?$", welcome["text"], re.MULTILINE)
        assert match, welcome["text"]

        login = httpx.post(f"{server.base_url}/auth/login", json={"email": email, "password": match.group(1)})
        assert login.status_code == 200, login.text
        assert login.json()["challenge"] == "NEW_PASSWORD_REQUIRED"
        tokens = httpx.post(
            f"{server.base_url}/auth/challenge",
            json={"email": email, "session": login.json()["session"], "new_password": "Brand-new-Passw0rd!"},
        )
        assert tokens.status_code == 200, tokens.text
        me = httpx.get(
            f"{server.base_url}/tenants/me", headers={"Authorization": f"Bearer {tokens.json()['id_token']}"}
        )
        assert me.status_code == 200, me.text
        tenant_id = tenant_id_for(transaction_id)
        assert me.json()["tenant_id"] == tenant_id
        assert me.json()["status"] == "active"

        diagnosed = tenancy(env, "diagnose", "--email", email, "--json")
        assert diagnosed.returncode == 0, diagnosed.stdout + diagnosed.stderr
        assert json.loads(diagnosed.stdout)["finding"] == "healthy"

        # RB-001 3.2 and 5, with the AWS CLI itself: the records are where the runbook looks.
        item = aws_cli(
            env, "dynamodb", "get-item", "--table-name", "tenants", "--key", json.dumps({"tenant_id": {"S": tenant_id}})
        )
        assert item["Item"]["status"] == {"S": "active"}
        user = aws_cli(
            env,
            "cognito-idp",
            "admin-get-user",
            "--user-pool-id",
            settings["TENANCY_USER_POOL_ID"],
            "--username",
            email,
        )
        attributes = {attribute["Name"]: attribute["Value"] for attribute in user["UserAttributes"]}
        assert attributes["custom:tenant_id"] == tenant_id
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker_log.close()
        stop_server(server)
    assert worker.returncode == 0, (home / "worker.log").read_text(errors="replace")
    assert "Traceback" not in server.log_text()
    assert "Traceback" not in (home / "worker.log").read_text(errors="replace")


def test_the_aws_backend_without_bootstrapped_settings_says_what_to_run(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home", TENANCY_BACKEND="aws")

    result = tenancy(env, "mail", "list")

    assert result.returncode != 0
    assert "TENANCY_QUEUE_URL" in result.stderr
    assert "tenancy aws bootstrap" in result.stderr
    assert "Traceback" not in result.stderr
