"""The soak's usage traffic (issue 20, third bullet): usage records with repeated idempotency
keys, sent to the service API as the Site Builder application sends them, and the checks that
prove usage is never above a limit and each idempotency key is applied once.

How it fits soak/run.py:

1. `plan_usage(plan, seed, catalogue)`, after billing's `add_subscriptions`: for a seeded
   fraction (~30%) of the purchases that will be provisioned, a burst of usage records
   (`POST /service/tenants/{tenant_id}/usage` with a `delta`): two or three metrics, 2-6 records
   each, whose deltas together go past the plan's limit for about 30% of the metrics (the first
   tenant's first one always) and stay under it for the others, so some records are refused (409
   quota exceeded). Each record is sent 1-3 times with the same idempotency key: each extra copy
   either fired at the same moment as the original or later, after every record was sent. Half
   of the tenants have all their records (and copies) fired at once, racing for the quota; the
   others' records go one by one, mixed with every other tenant's. A few records also go to
   purchases that never get a tenant (FAILED, PENDING): 404, replays too, and nothing made.
2. `send(...)`, once the subscription wave has drained (periods and statuses final), with the
   kills and faults still on: a service key is made in-process (as `tenancy service-keys create`
   does), then every record is posted, and posted again with the same key after a refused
   connection, a 5xx or a 429, as run.py's ITN sender does. If the server-kill budget is not
   spent, the server is killed once half way.
3. `check(traffic, stores)`, on the stores read after the last drain: per tenant and metric,
   the stored usage equals the sum of the deltas whose answer was 200 (replays add nothing) and is
   not above the plan's limit; each 409 was right to refuse (the usage it reports plus the delta
   passes the limit) and changed nothing; every answer to one key agrees with the first (status
   and body; body only when no post of that key met a 5xx or lost its connection, after which a
   replay may report the usage as it is now); at most one answer per key says it was not a
   replay. A tenant whose subscription was cancelled is `cancelling`, which keeps full access until
   its paid-through date (docs' tenant-lifecycle.md, TenantStatus.has_access): its records are
   judged like any other, and a 403 is a finding for it as for an active tenant.

The random choices come from their own generator (seeded from --seed), so the ITN waves for a
given seed are what they were before usage was added.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

from tenancy.domain.ids import tenant_id_for
from tenancy.domain.usage import Metric
from tenancy.payments import payfast

__all__ = ["Record", "TenantUsage", "UsageTraffic", "check", "plan_usage", "send"]

USAGE = 0.30  # of the purchases that will be provisioned
OVER = 0.3  # of a tenant's metrics: deltas that together pass the limit
COPIES = (1, 1, 1, 2, 2, 3)  # sends of one record (the same idempotency key), drawn from these
TOGETHER = 0.5  # of the extra copies: fired at the same moment as the original (else later)
BURST = 0.5  # of the tenants: every record fired at once
UNKNOWN = 2  # records for purchases that never get a tenant (404)
MAX_ATTEMPTS = 40
RETRY_PAUSE_SECONDS = 0.2
FINAL = frozenset({200, 401, 403, 404, 409, 422})  # answers no retry changes; the rest are sent again
KEY_NAME = "soak-usage-{seed}"


@dataclass
class Answer:
    order: int  # when it arrived, across the wave
    status: int | None  # None: no answer (a refused or cut connection)
    body: Any = None
    replayed: bool = False  # the Idempotent-Replayed header

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def same(self) -> Any:
        """The body to compare between answers to one key: all but the `replayed` mark."""
        return {k: v for k, v in self.body.items() if k != "replayed"} if isinstance(self.body, dict) else self.body


@dataclass
class Record:
    tenant_id: str
    transaction_id: str
    metric: str
    delta: int
    key: str
    together: int = 1  # copies fired at once (the original included)
    later: int = 0  # copies sent after every record
    answers: list[Answer] = field(default_factory=list)

    @property
    def sends(self) -> int:
        return self.together + self.later

    @property
    def finals(self) -> list[Answer]:
        return sorted((answer for answer in self.answers if answer.final), key=lambda answer: answer.order)

    @property
    def outcome(self) -> int | None:
        """The status of the first final answer to its key (None: none came)."""
        finals = self.finals
        return finals[0].status if finals else None


@dataclass
class TenantUsage:
    purchase: Any  # run.Purchase (its `cancelled` is set by soak/billing.py)
    plan: str
    limits: dict[str, int]  # metric -> the plan's limit
    records: list[Record] = field(default_factory=list)

    @property
    def tenant_id(self) -> str:
        return tenant_id_for(self.purchase.transaction_id)


@dataclass
class UsageTraffic:
    seed: int
    tenants: list[TenantUsage] = field(default_factory=list)
    unknown: list[Record] = field(default_factory=list)  # for purchases without a tenant: 404
    wave: list[list[Record]] = field(default_factory=list)  # each unit's records (and copies) fired at once
    later: list[Record] = field(default_factory=list)  # one entry per later copy
    lock: threading.Lock = field(default_factory=threading.Lock)
    order: Any = field(default_factory=itertools.count)
    retries: Counter[str] = field(default_factory=Counter)

    @property
    def records(self) -> list[Record]:
        return [*(record for tenant in self.tenants for record in tenant.records), *self.unknown]

    @property
    def sends(self) -> int:
        return sum(record.sends for record in self.records)

    def planned(self) -> str:
        over = sum(1 for tenant in self.tenants if _goes_over(tenant))
        cancelled = sum(1 for tenant in self.tenants if tenant.purchase.cancelled)
        return (
            f"{self.sends} usage posts: {len(self.records)} records for {len(self.tenants)} tenants"
            f" ({over} asking past a limit, {cancelled} cancelling) and {len(self.unknown)} for no tenant,"
            f" {self.sends - len(self.records)} replays"
        )

    def line(self) -> str:
        outcomes = Counter(record.outcome for record in self.records)
        retried = sum(self.retries.values())
        return (
            f"usage records={len(self.records)} replays={self.sends - len(self.records)}"
            f" accepted={outcomes[200]} over_quota={outcomes[409]} refused={outcomes[403]}"
            f" unknown={outcomes[404]} unanswered={outcomes[None]} retried={retried}"
        )


def _goes_over(tenant: TenantUsage) -> bool:
    wanted: Counter[str] = Counter()
    for record in tenant.records:
        wanted[record.metric] += record.delta
    return any(total > tenant.limits[metric] for metric, total in wanted.items())


def _parts(total: int, count: int, rng: random.Random) -> list[int]:
    """`total` split into `count` positive parts (count <= total)."""
    cuts = sorted(rng.sample(range(1, total), count - 1)) if count > 1 else []
    return [b - a for a, b in itertools.pairwise([0, *cuts, total])]


def plan_usage(plan: Any, seed: int, catalogue: Any, fraction: float = USAGE) -> UsageTraffic:
    """The usage records for ~`fraction` of `plan`'s purchases that will be provisioned (run.Plan;
    call it after billing.add_subscriptions, whose cancellations it makes sure to include)."""
    rng = random.Random(f"soak-usage-{seed}")
    traffic = UsageTraffic(seed)
    if fraction <= 0:
        return traffic
    plan_of = {}
    for itn in plan.itns:
        if itn.valid and itn.status is not None:
            plan_of[itn.label.partition("/")[0]] = dict(payfast.parse_itn(itn.body))["custom_str1"]
    provisioned = [purchase for purchase in plan.purchases if purchase.expects_tenant]
    chosen = [purchase for purchase in provisioned if rng.random() < fraction]
    cancelled = [purchase for purchase in provisioned if purchase.cancelled]
    if cancelled and not any(purchase.cancelled for purchase in chosen):
        chosen.append(rng.choice(cancelled))  # at least one cancelling tenant, however small the run
    if not chosen and provisioned:
        chosen.append(rng.choice(provisioned))
    for number, purchase in enumerate(chosen):
        limits = catalogue.get(plan_of[purchase.transaction_id]).limits
        tenant = TenantUsage(purchase, plan_of[purchase.transaction_id],
                             {metric.value: metric.limit(limits) for metric in Metric})  # fmt: skip
        over = rng.random() < OVER or number == 0  # at least one tenant asks past a limit
        for metric in rng.sample(sorted(tenant.limits), rng.randint(2, 3)):
            limit = tenant.limits[metric]
            total = max(1, round(limit * (rng.uniform(1.2, 2.0) if over else rng.uniform(0.2, 0.9))))
            if over:
                total = max(total, limit + 1)
            for delta in _parts(total, min(total, rng.randint(2, 6)), rng):
                tenant.records.append(_record(tenant.tenant_id, purchase.transaction_id, metric, delta, rng))
            over = rng.random() < OVER
        traffic.tenants.append(tenant)
    never = [purchase for purchase in plan.purchases if purchase.kind in {"failed", "pending"}]
    for purchase in rng.sample(never, min(UNKNOWN, len(never))):
        record = _record(tenant_id_for(purchase.transaction_id), purchase.transaction_id, "generations", 1, rng)
        traffic.unknown.append(record)
    for tenant in traffic.tenants:
        if rng.random() < BURST:
            traffic.wave.append(list(tenant.records))
        else:
            traffic.wave.extend([record] for record in tenant.records)
    traffic.wave.extend([record] for record in traffic.unknown)
    for record in traffic.records:
        for _ in range(rng.choice(COPIES) - 1):
            if rng.random() < TOGETHER:
                record.together += 1
            else:
                record.later += 1
                traffic.later.append(record)
    if traffic.records and traffic.sends == len(traffic.records):
        traffic.records[0].together += 1  # at least one replay
    rng.shuffle(traffic.wave)
    rng.shuffle(traffic.later)
    return traffic


def _record(tenant_id: str, transaction_id: str, metric: str, delta: int, rng: random.Random) -> Record:
    key = f"soak-{uuid.UUID(int=rng.getrandbits(128), version=4)}"  # the application's own key: any printable ASCII
    return Record(tenant_id, transaction_id, metric, delta, key)


# --- Sending -----------------------------------------------------------------------------------


def _post(client: httpx.Client, base_url: str, key: str, record: Record, traffic: UsageTraffic) -> None:
    """Posts `record` until a final answer (200, 409, or a 4xx no retry changes), with the same
    idempotency key after a refused or cut connection, a 5xx or a 429; every answer is kept."""
    url = f"{base_url}/service/tenants/{record.tenant_id}/usage"
    body = {"metric": record.metric, "delta": record.delta, "idempotency_key": record.key}
    headers = {"Authorization": f"Bearer {key}"}
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx.HTTPError as error:
            answer, why = Answer(next(traffic.order), None, f"{type(error).__name__}: {error}"), "no answer"
        else:
            try:
                content: Any = response.json()
            except ValueError:
                content = response.text[:200]
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            answer, why = Answer(next(traffic.order), response.status_code, content, replayed), None
            if answer.final:
                with traffic.lock:
                    record.answers.append(answer)
                return
            why = f"HTTP {response.status_code}"
        with traffic.lock:
            record.answers.append(answer)
            traffic.retries[why] += 1
        time.sleep(min(RETRY_PAUSE_SECONDS * attempt, 5.0))


def _fire(client: httpx.Client, base_url: str, key: str, shots: list[Record], traffic: UsageTraffic) -> None:
    """Every shot (a record's copy) at the same moment: a barrier holds each thread until all are ready."""
    if len(shots) == 1:
        _post(client, base_url, key, shots[0], traffic)
        return
    barrier = threading.Barrier(len(shots), timeout=30)

    def one(record: Record) -> None:
        with suppress(threading.BrokenBarrierError):
            barrier.wait()
        _post(client, base_url, key, record, traffic)

    threads = [threading.Thread(target=one, args=(record,), daemon=True) for record in shots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)


def send(
    base_url: str,
    services: Any,
    traffic: UsageTraffic,
    concurrency: int,
    kill_server: Callable[[], object] | None = None,
) -> str:
    """Makes the service key (in-process, as `tenancy service-keys create`), sends the wave, then
    the later copies; `kill_server` is called once half way through the wave. Returns what to say."""
    started = time.monotonic()
    key: str = services.service_keys.create(KEY_NAME.format(seed=traffic.seed))
    units = [[record for record in unit for _ in range(record.together)] for unit in traffic.wave]
    later = [[record] for record in traffic.later]
    shots = max((len(unit) for unit in units), default=1)
    limits = httpx.Limits(max_connections=concurrency * shots + concurrency)
    killed = False
    with httpx.Client(timeout=60, limits=limits) as client:
        for batch, half_way in ((units, max(1, len(units) // 2)), (later, None)):
            with ThreadPoolExecutor(concurrency) as pool:
                futures = [pool.submit(_fire, client, base_url, key, unit, traffic) for unit in batch]
                for done, future in enumerate(as_completed(futures), start=1):
                    future.result()
                    if done == half_way and kill_server is not None:
                        killed = bool(kill_server())
    posts = sum(len(record.answers) for record in traffic.records)
    retried = ", ".join(f"{why} {count}" for why, count in sorted(traffic.retries.items())) or "none"
    return (
        f"sent {len(traffic.records)} usage records ({traffic.sends} with their replays) in"
        f" {time.monotonic() - started:.1f} s; {posts} posts, sent again"
        f" after: {retried}{'; the server killed half way' if killed else ''}"
    )


# --- The checks --------------------------------------------------------------------------------


def check(traffic: UsageTraffic, stores: Any) -> list[str]:
    """The stores' usage against the answers (see the module's docstring)."""
    problems: list[str] = []
    tenants = {tenant.tenant_id: tenant for tenant in stores.tenants}
    for record in traffic.unknown:
        problems += _answers(record, f"usage: {record.transaction_id} (no tenant)", {404})
        if record.tenant_id in tenants:
            problems.append(f"usage: {record.transaction_id}: a tenant exists, expected none")
    for planned in traffic.tenants:
        name = f"usage: {planned.purchase.transaction_id}"
        tenant = tenants.get(planned.tenant_id)
        if tenant is None:
            problems.append(f"{name}: no tenant {planned.tenant_id}")
            continue
        # Active or cancelling (a CANCELLED ITN), both with full access: 200 or 409, never 403.
        if not tenant.status.has_access:
            problems.append(f"{name}: tenant {tenant.status.value}, expected one with access")
        accepted: Counter[str] = Counter()
        unanswered = False
        for record in planned.records:
            limit = planned.limits[record.metric]
            problems += _answers(record, name, {200, 409})
            outcome = record.finals[0] if record.finals else None
            if outcome is None:
                unanswered = True
                continue
            body = outcome.body if isinstance(outcome.body, dict) else {}
            if outcome.status == 200:
                accepted[record.metric] += record.delta
                if body.get("limit") != limit or not record.delta <= body.get("used", -1) <= limit:
                    problems.append(f"{name}: {record.key} ({record.metric} +{record.delta}) accepted with {body},"
                                    f" the plan's limit {limit}")  # fmt: skip
            elif outcome.status == 409 and (
                # Right to refuse only if the usage it found plus the delta passes the limit.
                body.get("limit") != limit or body.get("usage", limit) + record.delta <= limit
            ):
                problems.append(f"{name}: {record.key} ({record.metric} +{record.delta}) refused with {body},"
                                f" the plan's limit {limit}")  # fmt: skip
        if unanswered:
            continue
        for metric in Metric:
            stored = metric.used(tenant.usage)
            limit = metric.limit(tenant.limits)
            if limit != planned.limits[metric.value]:
                problems.append(f"{name}: {metric.value} limit {limit}, the plan {planned.plan}'s is "
                                f"{planned.limits[metric.value]}")  # fmt: skip
            if stored > limit:
                problems.append(f"{name}: {metric.value} {stored}, above its limit {limit}")
            if stored != accepted[metric.value]:
                problems.append(f"{name}: {metric.value} {stored}, but the records answered 200 add up to"
                                f" {accepted[metric.value]}")  # fmt: skip
    return problems


def _answers(record: Record, name: str, expected: set[int]) -> list[str]:
    """One key's answers: a final one came, of an expected status; every final answer agrees with
    the first (the body too when no post of the key met an error); one at most not a replay."""
    what = f"{name}: {record.key} ({record.metric} +{record.delta}, sent {record.sends}x)"
    finals = record.finals
    if not finals:
        last = record.answers[-1] if record.answers else None
        return [f"{what}: no final answer after {len(record.answers)} posts; the last: {last}"]
    first = finals[0]
    problems = []
    if first.status not in expected:
        problems.append(f"{what}: answered {first.status} {first.body}, expected {sorted(expected)}")
    clean = len(finals) == len(record.answers)  # no 5xx, 429 or lost connection on the way
    differing = [answer for answer in finals[1:] if answer.status != first.status or
                 (clean and answer.same() != first.same())]  # fmt: skip
    if differing:
        problems.append(f"{what}: a replay answered {differing[0].status} {differing[0].body},"
                        f" the first {first.status} {first.body}")  # fmt: skip
    fresh = [answer for answer in finals if not answer.replayed]
    if first.status in {200, 409} and (len(fresh) > 1 or (clean and not fresh)):
        problems.append(f"{what}: {len(fresh)} of its {len(finals)} answers say they were not replays, expected 1")
    return problems
