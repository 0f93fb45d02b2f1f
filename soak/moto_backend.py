"""The soak's AWS backend: moto's server in a process of its own on loopback, bootstrapped with
`tenancy aws bootstrap` as an operator would, and the environment that points every process of
the soak (and the soak's own reads) at it.

moto runs in its own process (soak/moto_serve.py: moto's server with DynamoDB's atomicity) so that
it does not share the soak's interpreter (and its GIL) with the threads sending ITNs; it is never
killed: it stands for AWS, which the soak does not test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

__all__ = ["AWS_ENV", "bootstrapped", "moto_server"]

REGION = "eu-west-1"
# Fake credentials and the region; AWS_ENDPOINT_URL is added once the server is up. Anything that
# could point a call at a real account is dropped from the children's environment (the soak's
# `child_env` starts from a copy without these).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "soak",
    "AWS_SECRET_ACCESS_KEY": "soak",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
REAL_ACCOUNT_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@contextmanager
def moto_server(home: Path, port: int, timeout: float = 60) -> Iterator[str]:
    """moto's server on 127.0.0.1:`port`, logging to `home`/moto.log; yields its endpoint URL."""
    endpoint = f"http://127.0.0.1:{port}"
    with (home / "moto.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("moto_serve.py")), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"moto's server exited with {process.returncode}; see {home / 'moto.log'}")
                with suppress(httpx.TransportError):
                    if httpx.get(f"{endpoint}/moto-api/data.json", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not answer within {timeout:.0f} s")
                time.sleep(0.2)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def bootstrapped(env: dict[str, str]) -> dict[str, str]:
    """`tenancy aws bootstrap --format json` in `env` (moto's endpoint, TENANCY_BACKEND=aws): the
    settings it prints, which every process of the soak then runs with."""
    result = subprocess.run(
        [sys.executable, "-m", "tenancy", "aws", "bootstrap", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"tenancy aws bootstrap exited with {result.returncode}: {result.stderr.strip()[-2000:]}")
    settings: dict[str, str] = {name: str(value) for name, value in json.loads(result.stdout).items()}
    return settings
