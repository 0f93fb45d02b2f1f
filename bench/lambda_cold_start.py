"""lambda_cold_start: what a new Lambda container pays before its first invocation does any work,
each run in a fresh interpreter: importing the entry module (tenancy.lambdas), building its services
from the environment as a function does (TENANCY_BACKEND=aws: the settings, the plans, a boto3
client per AWS service) and the HTTP app the web and ITN functions serve (FastAPI in Mangum); vs
importing boto3 alone in a fresh interpreter, the least any Python function on AWS imports. The two
kinds of run alternate, so both see the same machine; medians of `runs` each, after one unmeasured
run of each (which writes the bytecode caches a deployed package already has).

No network: the environment names made-up resources (a boto3 client connects on its first call) and
the secrets are plain settings (on AWS, reading them from SSM adds a round trip to the first
invocation). The schedule and queue functions never build the app: their cold start is reported too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from common import BenchError, Result, median

TARGET_RATIO = 3.0

# The cold start of a function, phase by phase, timed inside the interpreter (its own start-up is
# the same for both kinds of run, and no code of ours can shorten it).
FUNCTION = """
import json, time
started = time.perf_counter()
import tenancy.lambdas as lambdas
imported = time.perf_counter()
wired = lambdas.services()
built = time.perf_counter()
# As the web function builds its app on its first request (tenancy.lambdas.web_handler).
from mangum import Mangum
from tenancy.web.app import create_app
Mangum(create_app(wired), lifespan="off")
served = time.perf_counter()
# Deferred, not part of the cold start measured: the boto3 clients an ITN's first call builds
# (the AWS backend builds each client on its first use).
import boto3
from botocore.config import Config
session = boto3.Session()
for service in ("dynamodb", "sqs"):
    session.client(service, config=Config(connect_timeout=5))
clients = time.perf_counter()
print(json.dumps({"import": imported - started, "services": built - imported, "app": served - built,
                  "clients": clients - served}))
"""
# What the web function cannot do without, ours aside: its libraries alone, for scale.
FRAMEWORKS = """
import json, time
started = time.perf_counter()
import boto3, fastapi, mangum, pydantic_settings, structlog, aws_lambda_powertools
print(json.dumps({"import": time.perf_counter() - started}))
"""
FLOOR = """
import json, time
started = time.perf_counter()
import boto3
print(json.dumps({"import": time.perf_counter() - started}))
"""


def function_env(home: Path) -> dict[str, str]:
    """A function's environment as deploy/template.yaml sets it, naming resources that need not
    exist; nothing of the caller's TENANCY_* or AWS settings leaks in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TENANCY_", "AWS_"))}
    account, region = "123456789012", "eu-west-1"
    env.update(
        TENANCY_BACKEND="aws",
        TENANCY_ENV="bench",
        TENANCY_HOME=str(home),
        TENANCY_AWS_REGION=region,
        TENANCY_QUEUE_URL=f"https://sqs.{region}.amazonaws.com/{account}/provisioning",
        TENANCY_DLQ_URL=f"https://sqs.{region}.amazonaws.com/{account}/provisioning-dlq",
        TENANCY_USER_POOL_ID=f"{region}_bench",
        TENANCY_USER_POOL_CLIENT_ID="benchclient",
        TENANCY_SERVICE_KEY_PEPPER="bench-pepper-0123456789abcdef0123456789abcdef",
        TENANCY_LOG_LEVEL="warning",
        POWERTOOLS_SERVICE_NAME="tenancy",
        POWERTOOLS_METRICS_NAMESPACE="Tenancy",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - never used: nothing is called
        AWS_DEFAULT_REGION=region,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def fresh_interpreter(code: str, env: dict[str, str]) -> dict[str, float]:
    finished = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if finished.returncode != 0:
        raise BenchError(f"a fresh interpreter failed ({finished.returncode}): {finished.stderr[-2000:]}")
    timings: dict[str, float] = json.loads(finished.stdout.strip().splitlines()[-1])
    return timings


def run(work: Path, runs: int) -> Result:
    home = work / "lambda-home"
    home.mkdir(parents=True, exist_ok=True)
    env = function_env(home)
    fresh_interpreter(FUNCTION, env)
    fresh_interpreter(FLOOR, env)
    fresh_interpreter(FRAMEWORKS, env)
    functions: list[dict[str, float]] = []
    floors: list[float] = []
    frameworks: list[float] = []
    for _ in range(runs):
        functions.append(fresh_interpreter(FUNCTION, env))
        floors.append(fresh_interpreter(FLOOR, env)["import"])
        frameworks.append(fresh_interpreter(FRAMEWORKS, env)["import"])
    web = [each["import"] + each["services"] + each["app"] for each in functions]
    worker = [each["import"] + each["services"] for each in functions]
    floor = median(floors)
    ratio = median(web) / floor
    return Result(
        id="lambda_cold_start",
        figures={
            "web_cold_start_ms": round(median(web) * 1000, 1),
            "schedule_cold_start_ms": round(median(worker) * 1000, 1),
            "import_ms": round(median([each["import"] for each in functions]) * 1000, 1),
            "services_ms": round(median([each["services"] for each in functions]) * 1000, 1),
            "app_ms": round(median([each["app"] for each in functions]) * 1000, 1),
            "schedule_ratio": round(median(worker) / floor, 2),
            "first_call_clients_ms": round(median([each["clients"] for each in functions]) * 1000, 1),
            "frameworks_ratio": round(median(frameworks) / floor, 2),
            "runs": runs,
        },
        floor={"what": "import boto3 in a fresh interpreter (median)", "value": round(floor * 1000, 1), "unit": "ms"},
        ratio=ratio,
        target=f"<= {TARGET_RATIO:g}x",
        met=ratio <= TARGET_RATIO,
        notes=(
            "import tenancy.lambdas + build its services (TENANCY_BACKEND=aws, no network) + build the "
            "HTTP app (FastAPI in Mangum), each in a fresh interpreter; schedule_cold_start_ms leaves the "
            "app out (the schedule and queue functions never build it); first_call_clients_ms: the DynamoDB "
            "and SQS clients an ITN's first call builds (built on first use, so not in the cold start); "
            "frameworks_ratio: importing boto3, FastAPI, Mangum, pydantic-settings, structlog and "
            "powertools alone, the web function's libraries without a line of ours"
        ),
    )
