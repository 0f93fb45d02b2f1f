"""usage_record: usage records/s accepted by POST /service/tenants/{id}/usage (issue 16), vs the same
server's GET /healthz, both driven by wrk with the same script (bench/wrk_requests.lua), threads,
connections and duration, as itn_throughput does.

Every request is the Site Builder application's commonest record, one generation (`"delta": 1`)
with its own idempotency key, authenticated by a real service key (HMAC checked on every request):
the real path, with the quota's conditional write and the idempotency answer stored. Enterprise
tenants allow 1000 generations a month; the requests go round the tenants, PER_TENANT each at most,
so none is refused for quota (a 409 would be a cheaper answer than a record, and is an error here).
Crossing 80% of the limit queues each tenant's warning email once, as it would in service. The
tenants are seeded by bulk SQL (bench/seed.py); the bodies are written before the clock starts, one
per line, each with its tenant's path. Afterwards the database must hold exactly one answer per
request answered or in flight, and the tenants' counts must add up to them.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import httpx
from common import BenchError, Result, open_services, running_server, say
from itn_throughput import WRK_THREADS, ok_rate, wrk, wrk_binary
from seed import seed, transaction_id

from tenancy.domain.ids import tenant_id_for

PLAN = "enterprise"
PER_TENANT = 900  # of enterprise's 1000 generations a month: past the 80% warning, short of the limit
WARM_UP_RECORDS = 50
JSON_TYPE = "application/json"


def usage_path(tenant_id: str) -> str:
    return f"/service/tenants/{tenant_id}/usage"


def record_body(run: str, number: int) -> str:
    """One generation, under an idempotency key no other request of the run uses."""
    document = {"metric": "generations", "delta": 1, "idempotency_key": f"{run}-{number:08d}"}
    return json.dumps(document, separators=(",", ":"))


def write_requests(path: Path, tenants: list[str], count: int, run: str) -> None:
    """`count` records, tenant by tenant in turn, as "PATH<TAB>BODY" lines (wrk_requests.lua)."""
    lines = [f"{usage_path(tenants[number % len(tenants)])}\t{record_body(run, number)}" for number in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def check_records(home: Path, answered: int, sent: int) -> dict[str, int]:
    """Each record was applied once: one stored answer per idempotency key, all applied, and the
    tenants' generation counts add up to them (those in flight at the end may be there too)."""
    connection = sqlite3.connect(f"file:{home / 'tenancy.db'}?mode=ro", uri=True)
    try:
        answers, applied = connection.execute("SELECT COUNT(*), SUM(applied) FROM usage_answers").fetchone()
        counted = connection.execute(
            "SELECT COALESCE(SUM(json_extract(usage, '$.generations_this_month')), 0) FROM tenants"
        ).fetchone()[0]
    finally:
        connection.close()
    recorded = int(answers) - WARM_UP_RECORDS
    if int(applied or 0) != int(answers) or int(counted) != int(answers):
        raise BenchError(f"{answers} answers, {applied} applied, but the tenants count {counted} generations")
    if not answered <= recorded <= sent:
        raise BenchError(f"{recorded} records stored, but wrk saw {answered} answered of {sent} sent")
    return {"records_stored": recorded}


def run(work: Path, seconds: float, bodies_count: int, concurrency: int) -> Result:
    wrk_binary()  # before any work: no wrk, no benchmark
    home = work / "usage"
    records = bodies_count + WARM_UP_RECORDS
    tenants_needed = math.ceil(records / PER_TENANT)
    seed(home, tenants_needed, label=" (usage)", plan=PLAN)
    tenants = [tenant_id_for(transaction_id(number)) for number in range(tenants_needed)]
    services = open_services(home)
    try:
        key = services.service_keys.create("bench")  # the server reads the same pepper under TENANCY_HOME
    finally:
        services.close()
    authorization = f"Bearer {key}"
    bodies = home / "usage-bodies.txt"
    write_requests(bodies, tenants, bodies_count, "bench")
    # No workers: the service API's throughput, not provisioning's or the notices' delivery.
    with running_server(home, "--workers", "0") as base_url:
        with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": authorization}) as client:
            for number in range(WARM_UP_RECORDS):
                tenant = tenants[(bodies_count + number) % len(tenants)]
                answer = client.post(
                    usage_path(tenant), content=record_body("warm", number), headers={"Content-Type": JSON_TYPE}
                )
                if answer.status_code != 200:
                    raise BenchError(f"a warm-up record answered {answer.status_code}: {answer.text[:300]}")
        wrk(base_url, 1, concurrency, "GET", "/healthz")  # warm-up
        # The floor before and after the records; the higher of the two counts (the stricter ratio).
        healthz_runs = [wrk(base_url, seconds, concurrency, "GET", "/healthz")]
        usage = wrk(
            base_url,
            seconds,
            concurrency,
            "POST",
            "/service/tenants/none/usage",  # every line names its tenant's path
            bodies,
            headers=(JSON_TYPE, authorization),
            bodies_size="usage_bodies",
        )
        healthz_runs.append(wrk(base_url, seconds, concurrency, "GET", "/healthz"))
    for healthz in healthz_runs:
        if set(healthz["statuses"]) != {"200"}:
            raise BenchError(f"GET /healthz answered {healthz['statuses']}")
    statuses = usage["statuses"]
    if set(statuses) != {"200"}:
        raise BenchError(f"not every usage record was accepted: {statuses}")
    stored = check_records(home, statuses["200"], usage["sent"])
    recorded = ok_rate(usage)
    floor_run = max(healthz_runs, key=ok_rate)
    floor = ok_rate(floor_run)
    ratio = recorded / floor
    say(
        "usage_record: /healthz "
        + ", ".join(f"{ok_rate(run):.0f} req/s" for run in healthz_runs)
        + f"; usage {recorded:.0f}/s (wrk CPU {100 * usage['cpu_s'] / usage['seconds']:.0f}%)"
    )
    return Result(
        id="usage_record",
        figures={
            "records_per_s": round(recorded, 1),
            "records": statuses["200"],
            "tenants": len(tenants),
            "seconds": round(usage["seconds"], 2),
            "concurrency": concurrency,
            "record_p50_ms": round(usage["latency_p50_ms"], 2),
            "record_p99_ms": round(usage["latency_p99_ms"], 2),
            "healthz_low_per_s": round(min(ok_rate(run) for run in healthz_runs), 1),
            "generator_cpu_pct": round(100 * floor_run["cpu_s"] / floor_run["seconds"], 1),
        },
        floor={
            "what": f"GET /healthz by wrk, same script, {WRK_THREADS} thread and connections "
            "(the higher of the runs before and after)",
            "value": round(floor, 1),
            "unit": "req/s",
        },
        ratio=ratio,
        target="usage/healthz >= 0.5",
        met=ratio >= 0.5,
        notes=f"wrk with unique generation records (delta 1) over {PLAN} tenants, a service key on each; "
        "generator_cpu_pct: wrk's CPU during the floor run, as a share of one core",
        extra={
            "usage_statuses": statuses,
            "healthz_statuses": [run["statuses"] for run in healthz_runs],
            "healthz_per_s": [round(ok_rate(run), 1) for run in healthz_runs],
            "wrk_threads": WRK_THREADS,
            "bodies": bodies_count,
            "per_tenant_at_most": PER_TENANT,
            **stored,
        },
    )
