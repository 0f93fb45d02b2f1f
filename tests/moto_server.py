"""moto's server on loopback as the whole AWS backend, and the environment that points Tenancy and
the AWS CLI at it: what the AWS end-to-end tests (test_aws_flow, test_rb001_aws_cli) share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from moto.server import ThreadedMotoServer

from servers import cli_env, free_port

REGION = "eu-west-1"
# Anything that could point a boto3 or AWS CLI call at a real account is dropped.
_REAL_ACCOUNT_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@contextmanager
def running_moto() -> Iterator[str]:
    """moto's server on a free loopback port; yields its endpoint URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # The threaded server keeps its accounts in this process's moto backends, which every moto
    # server of the session shares: each module starts from an empty account, not the last one's
    # tables, queues (a dead letter left in the DLQ) and pool.
    httpx.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
    try:
        yield endpoint
    finally:
        server.stop()


def aws_env(home: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """cli_env plus fake credentials, the region and AWS_ENDPOINT_URL (what boto3 and
    `tenancy aws bootstrap` read)."""
    env = cli_env(
        home,
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        # moto has no inbox to read the welcome email from: keep its password in the mail log.
        TENANCY_MAIL_LOG_KEEPS_SECRETS="true",
        **extra,
    )
    for name in _REAL_ACCOUNT_VARIABLES:
        env.pop(name, None)
    return env
