"""After a whole end-to-end run, no log line and no error body carries a secret: temporary or
chosen passwords, the PayFast passphrase or merchant key, session or bearer tokens."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tenancy.domain.model import JobStatus

from purchases import wait_for_job
from servers import RunningServer, cli_env, free_port, start_server, stop_server, tenancy

PASSPHRASE = "a-Very-Private-passphrase-42"
MERCHANT_KEY = "merchantkey0xdeadbeef"
CHOSEN_PASSWORD = "Chosen-Secret-Passw0rd!"


@pytest.fixture(scope="module")
def secretive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("secret-home")
    env = cli_env(
        home,
        TENANCY_PORT=str(free_port()),
        TENANCY_PAYFAST_MODE="offline",
        TENANCY_PAYFAST_PASSPHRASE=PASSPHRASE,
        TENANCY_PAYFAST_MERCHANT_KEY=MERCHANT_KEY,
        TENANCY_LOG_LEVEL="debug",
    )
    running = start_server(home, env)
    yield running
    stop_server(running)


def everything_logged(server: RunningServer) -> str:
    files = sorted((server.home / "logs").glob("*.log"))
    return server.log_text() + "".join(path.read_text(errors="replace") for path in files)


def test_a_full_run_leaves_no_secret_in_any_log_or_error(secretive_server: RunningServer, tmp_path: Path) -> None:
    server, base = secretive_server, secretive_server.base_url
    email = "secretive@example.com"
    sent = tenancy(server.env, "itn", "send", "--plan", "professional", "--email", email, "--json")
    wait_for_job(server, json.loads(sent.stdout)["transaction_id"], JobStatus.SUCCEEDED)
    outbox = json.loads(tenancy(server.env, "mail", "list", "--to", email, "--json").stdout)
    match = re.search(r"Temporary password: (\S+)", outbox[0]["text"])
    assert match
    temporary = match.group(1)

    errors = [
        httpx.post(f"{base}/auth/login", json={"email": email, "password": temporary + "x"}),
        httpx.post(f"{base}/auth/login", json={"email": email, "password": ""}),  # 422: must not echo input
        httpx.post(
            f"{base}/auth/challenge", json={"email": email, "session": "forged-session", "new_password": "weak"}
        ),
    ]
    challenge = httpx.post(f"{base}/auth/login", json={"email": email, "password": temporary}).json()
    errors.append(
        httpx.post(
            f"{base}/auth/challenge", json={"email": email, "session": challenge["session"], "new_password": "weak"}
        )
    )
    tokens = httpx.post(
        f"{base}/auth/challenge",
        json={"email": email, "session": challenge["session"], "new_password": CHOSEN_PASSWORD},
    ).json()
    errors.append(httpx.get(f"{base}/tenants/me", headers={"Authorization": f"Bearer {tokens['id_token']}x"}))
    errors.append(httpx.post(f"{base}/auth/refresh", json={"refresh_token": tokens["refresh_token"] + "x"}))
    forged = tenancy({**server.env, "TENANCY_PAYFAST_PASSPHRASE": "wrong"}, "itn", "send", "--plan", "starter",
                     "--email", "forger@example.com")  # fmt: skip
    assert forged.returncode == 1
    assert [response.status_code for response in errors] == [401, 422, 401, 400, 401, 401]

    secrets = {
        "temporary password": temporary,
        "chosen password": CHOSEN_PASSWORD,
        "passphrase": PASSPHRASE,
        "merchant key": MERCHANT_KEY,
        "challenge session": challenge["session"],
        "id token": tokens["id_token"],
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
    }
    logged = everything_logged(server)
    bodies = "".join(response.text for response in errors) + forged.stderr + forged.stdout
    assert "itn_received" in logged  # the logs are really there
    for name, secret in secrets.items():
        assert secret not in logged, f"{name} leaked into a log"
        assert secret not in bodies, f"{name} leaked into an error"
