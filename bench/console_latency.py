"""console_latency: p95 of the operations console's list pages and of /metrics at the large size
(100k purchases in a full run) vs the same at the small size (1k), and vs GET /healthz's p95 under
the same load.

Both homes are 1% broken (RB-001 4.2: the identity user is deleted), so the findings filter has
something to find; the weekly audit runs after the breakage (a deletion by hand reaches the
findings index only through it), before the server starts. Each home gets an operator (an identity
user with the operator role and a permanent password), who signs in once through the sign-in form
(CSRF token and Origin, as a browser would); every page is then loaded with that session cookie by
a real `tenancy serve` on plain HTTP (TENANCY_COOKIE_SECURE=false, so the client keeps the cookie).
/metrics is scraped with its bearer token and computed afresh each time
(TENANCY_METRICS_CACHE_SECONDS=0, as in metrics_scrape). The pages are loaded in turn, round after
round, each followed by one GET /healthz on the same connection: the floor meets the same server,
machine and moment as the pages.

A round stops loading a page once its time at that home exceeds `budget_s` (with at least
MIN_SAMPLES loads), so a page that runs a full audit on each load cannot stretch a full run for
long; `samples_*` say how many loads each p95 stands on.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import BenchError, Result, open_services, percentile, running_server, say
from seed import email, transaction_id

from tenancy.accounts.roles import OPERATOR_ROLE, ROLES_CLAIM
from tenancy.domain.ids import temporary_password

OPERATOR = "bench-operator@example.com"
PASSWORD = "Bench-Operat0r-Passw0rd!"  # noqa: S105 - a benchmark account's password
TOKEN = "bench-console-metrics-token-0123456789"  # noqa: S105 - a throwaway server's
FINDING = "identity_user_missing"  # what seed.break_identity_users leaves behind
# (figure name, path): the console's list pages without a search, the jobs filtered by finding, /metrics.
PAGES = (
    ("ops", "/ops"),
    ("jobs", "/ops/jobs"),
    ("jobs_finding", f"/ops/jobs?finding={FINDING}"),
    ("metrics", "/metrics"),
)
MIN_SAMPLES = 3
SCALE_TARGET = 1.5
HEALTHZ_TARGET = 20


@dataclass
class Timings:
    pages: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name, _ in PAGES})
    healthz: list[float] = field(default_factory=list)

    def p95_ms(self, name: str) -> float:
        return percentile(self.pages[name], 0.95) * 1000

    def healthz_p95_ms(self) -> float:
        return percentile(self.healthz, 0.95) * 1000


def add_operator(home: Path) -> None:
    """An operator account with a known permanent password, made in the home's own stores (as
    `tenancy ops add` would, without the invitation email)."""
    services = open_services(home)
    try:
        if services.identity.get_user(OPERATOR) is None:
            attributes = {"email": OPERATOR, "email_verified": "true", ROLES_CLAIM: OPERATOR_ROLE}
            services.identity.create_user(OPERATOR, attributes, temporary_password())
        services.identity.set_password(OPERATOR, PASSWORD, permanent=True)
    finally:
        services.close()


def still_broken(home: Path, broken: list[int]) -> str:
    """The transaction id of a purchase seeded broken that still is (repair_mttr repairs the first)."""
    connection = sqlite3.connect(f"file:{home / 'tenancy.db'}?mode=ro", uri=True)
    try:
        for number in broken:
            if (
                connection.execute("SELECT 1 FROM identity_users WHERE username = ?", (email(number),)).fetchone()
                is None
            ):
                return transaction_id(number)
    finally:
        connection.close()
    raise BenchError(f"no purchase of {home} is {FINDING} any more: nothing for the findings filter to list")


def csrf_token_in(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if match is None:
        raise BenchError("the sign-in page has no CSRF token")
    return match.group(1)


def browser(base_url: str) -> httpx.Client:
    # A browser names the page's site in Origin on every form post.
    return httpx.Client(base_url=base_url, headers={"Origin": base_url}, timeout=900)


def sign_in(client: httpx.Client) -> None:
    token = csrf_token_in(client.get("/auth/login").text)
    form = {"csrf_token": token, "email": OPERATOR, "password": PASSWORD}
    response = client.post("/auth/login/form", data=form, follow_redirects=False)
    if response.status_code != 303:
        raise BenchError(f"the operator's sign-in answered {response.status_code}: {response.text[:300]}")
    check = client.get("/ops", follow_redirects=False)
    if check.status_code != 200:
        raise BenchError(
            f"/ops answered {check.status_code} after signing in (location {check.headers.get('location')})"
        )


def timed_get(client: httpx.Client, path: str, broken_transaction: str = "") -> float:
    headers = {"Authorization": f"Bearer {TOKEN}"} if path == "/metrics" else {}
    started = time.perf_counter()
    response = client.get(path, headers=headers, follow_redirects=False)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchError(f"{path} answered {response.status_code}: {response.text[:300]}")
    if path.startswith("/ops/jobs?finding=") and broken_transaction not in response.text:
        raise BenchError(f"{path} does not list {broken_transaction}, one of the purchases seeded broken")
    return seconds


def audit(home: Path) -> None:
    """The weekly audit, as the schedule runs it: the identity users deleted by hand (the seeded
    breakage) reach the findings index the console and /metrics read."""
    services = open_services(home)
    try:
        services.scheduled_audit.run()
    finally:
        services.close()


def measure(home: Path, tenants: int, broken: list[int], requests: int, budget_s: float) -> Timings:
    add_operator(home)
    audit(home)
    timings = Timings()
    spent = {name: 0.0 for name, _ in PAGES}
    server_env = {
        "TENANCY_COOKIE_SECURE": "false",
        "TENANCY_METRICS_TOKEN": TOKEN,
        "TENANCY_METRICS_CACHE_SECONDS": "0",
    }
    with running_server(home, "--workers", "0", **server_env) as base_url, browser(base_url) as client:
        sign_in(client)
        broken_transaction = still_broken(home, broken)
        for _, path in PAGES:  # warm-up: imports, templates, the page cache
            timed_get(client, path, broken_transaction)
        for _ in range(requests):
            for name, path in PAGES:
                enough = len(timings.pages[name]) >= min(MIN_SAMPLES, requests)
                if enough and spent[name] > budget_s:
                    continue
                seconds = timed_get(client, path, broken_transaction)
                spent[name] += seconds
                timings.pages[name].append(seconds)
                timings.healthz.append(timed_get(client, "/healthz"))
    say(
        f"console_latency at {tenants} tenants: "
        + ", ".join(f"{name} p95 {timings.p95_ms(name):.1f} ms ({len(timings.pages[name])})" for name, _ in PAGES)
        + f", /healthz p95 {timings.healthz_p95_ms():.2f} ms"
    )
    return timings


def run(
    small_home: Path,
    small: int,
    small_broken: list[int],
    large_home: Path,
    large: int,
    large_broken: list[int],
    requests: int,
    budget_s: float,
) -> Result:
    at_small = measure(small_home, small, small_broken, requests, budget_s)
    at_large = measure(large_home, large, large_broken, requests, budget_s)
    healthz = at_large.healthz_p95_ms()
    figures: dict[str, float] = {"large_tenants": large, "small_tenants": small}
    scale_ratios, healthz_ratios = [], []
    for name, _ in PAGES:
        large_p95, small_p95 = at_large.p95_ms(name), at_small.p95_ms(name)
        scale_ratios.append(large_p95 / small_p95)
        healthz_ratios.append(large_p95 / healthz)
        figures[f"{name}_p95_ms"] = round(large_p95, 2)
        figures[f"{name}_small_p95_ms"] = round(small_p95, 2)
        figures[f"{name}_scale"] = round(large_p95 / small_p95, 3)
        figures[f"{name}_vs_healthz"] = round(large_p95 / healthz, 1)
        figures[f"samples_{name}"] = len(at_large.pages[name])
    figures["healthz_p95_ms"] = round(healthz, 3)
    figures["healthz_small_p95_ms"] = round(at_small.healthz_p95_ms(), 3)
    scale, against_healthz = max(scale_ratios), max(healthz_ratios)
    figures["worst_vs_healthz"] = round(against_healthz, 1)
    return Result(
        id="console_latency",
        figures=figures,
        floor={
            "what": f"each page's p95 at {small} tenants (worst page's ratio shown); GET /healthz p95 at {large}, "
            "interleaved with the pages",
            "value": round(at_small.p95_ms(PAGES[max(range(len(PAGES)), key=scale_ratios.__getitem__)][0]), 2),
            "unit": "ms",
        },
        ratio=scale,
        target=f"every page's p95 <= {SCALE_TARGET}x its small-size p95 and <= {HEALTHZ_TARGET}x /healthz p95",
        met=scale <= SCALE_TARGET and against_healthz <= HEALTHZ_TARGET,
        notes="pages: /ops, /ops/jobs, /ops/jobs?finding=identity_user_missing, /metrics (afresh); one signed-in "
        "operator session; samples_* = loads per page at the large size (capped by a time budget)",
        extra={
            "large": {name: [round(s * 1000, 2) for s in values] for name, values in at_large.pages.items()},
            "small": {name: [round(s * 1000, 2) for s in values] for name, values in at_small.pages.items()},
        },
    )
