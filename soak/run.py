"""The soak test: the real server and workers, N signed ITNs, workers killed with SIGKILL, then the audit.

    .venv/bin/python soak/run.py --n 2000 --seed 1 --workers 2 [--home DIR] [--keep]

What it does, in order:

1. Creates a fresh TENANCY_HOME (a temporary directory unless --home) and starts
   `tenancy serve --workers 0` on a free 127.0.0.1 port in PayFast's offline mode, with cheap
   argon2 settings (the soak tests exactly-once, not hashing speed), a 2 s visibility timeout
   and a short retry base, plus W `tenancy worker` processes.
2. Sends N ITNs from a bounded pool of threads. The mix is decided by --seed and kept as ground
   truth: about 10% invalid (forged signature, amount tampered after signing, wrong amount,
   unknown plan, wrong merchant, and cases of the hostile corpus in tests/reliability), about
   30% exact duplicates of valid ITNs (half fired concurrently with the original, half later),
   and some FAILED, PENDING and PENDING-then-COMPLETE purchases; the rest are COMPLETE.
3. Meanwhile a killer thread SIGKILLs a random worker every few seconds (a bounded number of
   times, at least once) and starts a new one in its place.
4. Waits (with a deadline) until the work queue is empty and every job has ended, runs
   `tenancy audit --since 3650d --format json`, and checks the audit and every store against
   the ground truth.

Between the two waits of step 4, once the first wave has drained, soak/billing.py sends the
second wave: renewals and cancellations of the ~30% of COMPLETE purchases bought as
subscriptions (their first ITN carries a token and billing_date), with replays of both; its
checks (one subscription per tenant, every renewal and cancellation applied once) join the
judge's, and `soak: subscriptions=S renewals=R cancellations=C replays=P` is printed before the
summary. Then soak/usage.py sends usage records with repeated idempotency keys to ~30% of the
tenants (`--usage`) and checks usage never passed a limit and each key applied once
(`soak: usage records=… replays=… accepted=… over_quota=…`).

Once the subscription wave has drained, soak/members.py makes ~20% of the provisioned tenants
invite more people than their plan has free seats, accepts the links (some twice) through the
server concurrently, and checks that no tenant ever holds more seats than its plan has; it prints
`soak: members: tenants=T invitations=I invited=V accepted=A refused_for_seats=R replays=P ...`.

The last line printed is always the summary:

    soak: payments=N tenants=T healthy=H findings=F rejected=R duplicates=D lost=L

`findings` counts the audit's failures that are not the expected outcome (a rejected, FAILED or
PENDING payment's `payment_not_complete` is expected; anything else is a finding), plus purchases
still in progress; `duplicates` counts purchases that produced more than one tenant, identity
user, users record or welcome email; `lost` counts valid COMPLETE purchases without a healthy
tenant. Exit 0 only when duplicates, lost and findings are 0, every valid COMPLETE purchase is
healthy, and every invalid ITN was rejected with nothing provisioned; otherwise exit 1 with the
reasons printed (2 when the soak could not run at all). Every process started is stopped, also
on failure and Ctrl-C. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import billing  # soak/billing.py: the subscription traffic and its checks (issue 20)
import httpx
import lifecycle  # soak/lifecycle.py: lifecycle sweeps at advancing times, and their checks (issue 20)
import members  # soak/members.py: invitations racing for seats and their checks (issue 20)
import moto_backend
import usage  # soak/usage.py: usage records with repeated idempotency keys, and their checks (issue 20)

from tenancy.bootstrap import Services, build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE, Settings
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import JobStatus, PaymentVerdict, TenantStatus
from tenancy.domain.plans import PlanCatalogue, load_catalogue
from tenancy.faults import count_injected
from tenancy.payments.simulator import build_itn, encode_form

ROOT = Path(__file__).resolve().parent.parent
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SETTINGS_ENV = {
    "TENANCY_PAYFAST_MODE": "offline",
    # Cheap argon2id: the soak tests exactly-once under crashes, not password hashing speed.
    "TENANCY_PASSWORD_HASH_TIME_COST": "1",
    "TENANCY_PASSWORD_HASH_MEMORY_KIB": "8",
    # A killed worker's job reappears after 2 s instead of a minute.
    "TENANCY_VISIBILITY_TIMEOUT_SECONDS": "2",
    "TENANCY_RETRY_BASE_SECONDS": "0.2",
    "TENANCY_RETRY_CAP_SECONDS": "2",
    # Every SIGKILL mid-job and every injected fault costs a job an attempt: a budget that a job
    # meeting several of them in a row does not exhaust, so that each still ends without an
    # operator; below SQS's maxReceiveCount (10), which would otherwise park a message that is
    # still being retried (the sweep would heal the job, but leave its copy in the DLQ).
    "TENANCY_RETRY_MAX_ATTEMPTS": "9",
    "TENANCY_WORKER_POLL_SECONDS": "0.05",
    "TENANCY_LOG_LEVEL": "info",
    # Every ITN comes from 127.0.0.1 (offline mode checks no source): the per-source ITN throttle
    # would refuse most of them, and the soak is about exactly-once, not about flood control.
    "TENANCY_ITN_MAX_PER_MINUTE_PER_SOURCE": "1000000",
    # The invalid ITNs would fire payment_failures and security_rejections, and the server's alert
    # watcher would email Finance and Security: mail the exactly-once count would call stray.
    "TENANCY_ALERT_WATCH": "false",
}
INVALID_KINDS = ("forged-signature", "tampered-amount", "wrong-amount", "unknown-plan", "wrong-merchant", "corpus")
DELIVERED = frozenset({"stored", "delivered"})  # the outbox's and SES mail log's statuses of a mail sent
MAX_BURST = 4  # copies of one ITN sent at the same moment
# A send not answered finally (a killed server, a throttled store) is sent again, as PayFast does.
MAX_ATTEMPTS = 40
RETRY_PAUSE_SECONDS = 0.2
EVER = "0001-01-01T00:00:00Z"  # a time before every job, for counts by status since then
FIRST_NAMES = ("Thandi", "Zoë", "Seán", "Pieter", "Ama", "Lindiwe", "José")
LAST_NAMES = ("Nkosi", "van der Merwe", "O'Neil", "Müller", "Ng", "Dlamini")


class SoakError(Exception):
    """The soak could not run (a process would not start, a deadline passed): exit 2."""


# --- The plan: what is sent, and what each purchase should end as ------------------------------


@dataclass
class Itn:
    body: bytes
    label: str  # for messages: transaction id and status, or the corpus case
    valid: bool
    pf_payment_id: str | None = None
    status: str | None = None
    sends: int = 0  # how many times it is sent, copies included


@dataclass
class Purchase:
    transaction_id: str
    email: str
    kind: str  # complete, pending-then-complete, failed, pending, or invalid:<how>
    # subscriptions (soak/billing.py): a subscription purchase's token, renewals sent and whether it was cancelled
    token: str | None = None
    renewals: int = 0
    cancelled: bool = False

    @property
    def expects_tenant(self) -> bool:
        return self.kind in {"complete", "pending-then-complete"}

    @property
    def invalid(self) -> bool:
        return self.kind.startswith("invalid:")


@dataclass
class Step:
    itn: Itn
    copies: int = 1  # sent this many times at once


@dataclass
class Unit:
    """Steps sent one after the other (a PENDING before its COMPLETE); each step's copies at once."""

    steps: list[Step]


@dataclass
class Plan:
    purchases: list[Purchase]
    itns: list[Itn]
    first: list[Unit]  # every ITN once (some with concurrent copies), in random order
    later: list[Unit]  # duplicates sent after the first wave

    @property
    def sends(self) -> int:
        return sum(step.copies for unit in (*self.first, *self.later) for step in unit.steps)

    @property
    def invalid_sends(self) -> int:
        return sum(itn.sends for itn in self.itns if not itn.valid)


def corpus_builder() -> ModuleType:
    """tests/reliability/corpus_builder.py: the hostile ITNs of the reliability suite."""
    folder = str(ROOT / "tests" / "reliability")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import corpus_builder as module  # type: ignore[import-not-found]

    return module  # type: ignore[no-any-return]


def make_plan(n: int, seed: int, catalogue: PlanCatalogue) -> Plan:
    """N sends: ~10% invalid, ~30% duplicates of valid ITNs, the rest distinct valid ITNs."""
    rng = random.Random(seed)
    corpus = corpus_builder()
    hostile = sorted(corpus.cases().items())
    invalid_count = round(n * 0.10)
    duplicate_count = round(n * 0.30)
    originals = n - invalid_count - duplicate_count
    if originals < 1:
        raise SoakError(f"--n {n} is too small")
    minimum = 1 if originals >= 20 else 0
    chains = max(minimum, round(originals * 0.03))
    failed = max(minimum, round(originals * 0.03))
    pending = max(minimum, round(originals * 0.02))
    complete = originals - 2 * chains - failed - pending
    if complete < 1:
        raise SoakError(f"--n {n} is too small")
    kinds = ["complete"] * complete + ["pending-then-complete"] * chains + ["failed"] * failed + ["pending"] * pending
    rng.shuffle(kinds)
    kinds += [f"invalid:{rng.choice(INVALID_KINDS)}" for _ in range(invalid_count)]
    run = f"S{seed}"
    purchases: list[Purchase] = []
    itns: list[Itn] = []
    units: list[Unit] = []
    duplicable: list[tuple[Itn, Unit | None]] = []  # None: only later, never at the same time
    for number, kind in enumerate(kinds, start=1):
        transaction_id = f"TXN-{run}-{number:06d}"
        purchase = Purchase(transaction_id, f"soak-{run.lower()}-{number:06d}@example.com", kind)
        purchases.append(purchase)
        plan = catalogue.get(rng.choice(catalogue.names()))
        common: dict[str, Any] = {
            "transaction_id": transaction_id,
            "email": purchase.email,
            "plan": plan.name,
            "amount": plan.price_zar,
            "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
            "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
            "pf_payment_id": str(1_000_000_000 + seed * 100_000 + number),
            "name_first": rng.choice(FIRST_NAMES),
            "name_last": rng.choice(LAST_NAMES),
        }

        def valid(status: str, common: dict[str, Any] = common) -> Itn:
            itn = Itn(
                encode_form(build_itn(**common, status=status)),
                f"{common['transaction_id']}/{status}",
                valid=True,
                pf_payment_id=common["pf_payment_id"],
                status=status,
            )
            itns.append(itn)
            return itn

        if kind == "pending-then-complete":
            pending_itn, complete_itn = valid("PENDING"), valid("COMPLETE")
            units.append(Unit([Step(pending_itn), Step(complete_itn)]))
            # A PENDING replayed after its COMPLETE is (rightly) rejected as stale: not duplicated here.
            duplicable.append((complete_itn, None))
        elif not purchase.invalid:
            itn = valid({"complete": "COMPLETE", "failed": "FAILED", "pending": "PENDING"}[kind])
            unit = Unit([Step(itn)])
            units.append(unit)
            duplicable.append((itn, unit))
        else:
            how = kind.partition(":")[2]
            body = invalid_body(how, common, rng, corpus, hostile, catalogue)
            label = f"{transaction_id}/{how}" if how != "corpus" else f"corpus {body[0]}"
            itn = Itn(body[1], label, valid=False)
            itns.append(itn)
            units.append(Unit([Step(itn)]))
    rng.shuffle(units)
    later: list[Unit] = []
    for _ in range(duplicate_count):
        itn, burst = rng.choice(duplicable)
        if burst is not None and burst.steps[0].copies < MAX_BURST and rng.random() < 0.5:
            burst.steps[0].copies += 1
        else:
            later.append(Unit([Step(itn)]))
    rng.shuffle(later)
    for unit in (*units, *later):
        for step in unit.steps:
            step.itn.sends += step.copies
    result = Plan(purchases, itns, units, later)
    assert result.sends == n, (result.sends, n)
    return result


def invalid_body(
    how: str,
    common: dict[str, Any],
    rng: random.Random,
    corpus: ModuleType,
    hostile: list[tuple[str, bytes]],
    catalogue: PlanCatalogue,
) -> tuple[str, bytes]:
    """An ITN our checks must refuse: built with the corpus builder's own helpers, or a corpus case."""
    if how == "corpus":
        return rng.choice(hostile)
    values = {key: str(value) for key, value in common.items()}
    if how == "forged-signature":
        fields = corpus.signed(**{**values, "passphrase": "guessed-passphrase"})
    elif how == "tampered-amount":
        fields = [(key, "1.00" if key == "amount_gross" else value) for key, value in corpus.signed(**values)]
    elif how == "wrong-amount":
        fields = corpus.signed(**{**values, "amount": str(Decimal(values["amount"]) + Decimal("0.02"))})
    elif how == "unknown-plan":
        fields = corpus.signed(**{**values, "plan": "platinum"})
    elif how == "wrong-merchant":
        fields = corpus.signed(**{**values, "merchant_id": "10000999"})
    else:
        raise ValueError(how)
    return how, encode_form(fields)


# --- The processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(
    home: Path, port: int, backend: dict[str, str], faults: str, sweep_seconds: float, stalled_after: float
) -> dict[str, str]:
    """What the server and the workers run with: SETTINGS_ENV, the backend's settings (`backend`:
    moto's endpoint and what `tenancy aws bootstrap` printed, or an SMTP server's URL), the faults
    to inject, and the stalled-job sweep on a short period (it heals a queue send that failed
    after its payment was committed)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TENANCY_", "AWS_")) or key in {"AWS_EC2_METADATA_DISABLED"}
    }
    env.update(
        SETTINGS_ENV,
        TENANCY_HOME=str(home),
        TENANCY_HOST="127.0.0.1",
        TENANCY_PORT=str(port),
        TENANCY_FAULTS=faults,
        TENANCY_STALLED_SWEEP_SECONDS=f"{sweep_seconds:g}",
        TENANCY_STALLED_AFTER_SECONDS=f"{stalled_after:g}",
    )
    env.update(backend)
    return env


def without_faults(env: dict[str, str]) -> dict[str, str]:
    """`env` for the soak's own reads and the final audit: the faults are the run's, not the judge's."""
    return {key: value for key, value in env.items() if key != "TENANCY_FAULTS"}


def tenancy_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "tenancy", *arguments]


class Processes:
    """The server and the workers; `kill_worker` SIGKILLs one and starts a new one in its place."""

    def __init__(self, home: Path, env: dict[str, str], workers: int) -> None:
        self.home = home
        self.env = env
        self.worker_count = workers
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.kills = 0
        self.server_kills = 0
        self.base_url = ""
        self.unexpected_exits: list[str] = []
        self._logs: list[IO[bytes]] = []
        self._lock = threading.Lock()
        self._closing = False

    def _start(self, name: str, *arguments: str) -> subprocess.Popen[bytes]:
        log = (self.home / f"{name}.log").open("ab")
        self._logs.append(log)
        return subprocess.Popen(tenancy_command(*arguments), env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start(self, base_url: str, timeout: float = 60) -> None:
        self.base_url = base_url
        self._start_server(timeout)
        with self._lock:
            self.workers = [self._start(f"worker-{slot}", "worker") for slot in range(self.worker_count)]

    def _start_server(self, timeout: float = 60) -> None:
        server = self.server = self._start("server", "serve", "--workers", "0")
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise SoakError(f"tenancy serve exited with {server.returncode}; see {self.home / 'server.log'}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise SoakError(f"tenancy serve did not answer /healthz within {timeout:.0f} s")
            time.sleep(0.1)

    def kill_server(self) -> bool:
        """SIGKILLs the ITN server mid-run (requests in flight die with it) and starts a new one on
        the same port; the senders retry meanwhile, as PayFast does."""
        with self._lock:
            if self._closing or self.server is None:
                return False
            if self.server.poll() is not None:
                exited = f"server (pid {self.server.pid}) exited by itself: {self.server.returncode}"
                self.unexpected_exits.append(exited)
            else:
                os.kill(self.server.pid, signal.SIGKILL)
                self.server.wait()
                self.server_kills += 1
            self._start_server()
            return True

    def _last_words(self, slot: int) -> str:
        """What a worker that exited by itself said last on its terminal (its log lines are JSON)."""
        said = [line for line in (self.home / f"worker-{slot}.log").read_text(errors="replace").splitlines()
                if line and not line.startswith("{")]  # fmt: skip
        return " / ".join(said[-3:]) or "nothing"

    def kill_worker(self, slot: int) -> bool:
        with self._lock:
            if self._closing:
                return False
            victim = self.workers[slot]
            if victim.poll() is not None:
                self.unexpected_exits.append(
                    f"worker {slot} (pid {victim.pid}) exited by itself: {victim.returncode}: {self._last_words(slot)}"
                )
            else:
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                self.kills += 1
            self.workers[slot] = self._start(f"worker-{slot}", "worker")
            return True

    def check_workers(self) -> None:
        """A worker that died without being killed is a finding; it is replaced so the run goes on."""
        with self._lock:
            if self._closing:
                return
            for slot, process in enumerate(self.workers):
                if process.poll() is not None:
                    self.unexpected_exits.append(
                        f"worker {slot} (pid {process.pid}) exited: {process.returncode}: {self._last_words(slot)}"
                    )
                    self.workers[slot] = self._start(f"worker-{slot}", "worker")
            if self.server is not None and self.server.poll() is not None:
                self.unexpected_exits.append(f"server (pid {self.server.pid}) exited: {self.server.returncode}")
                self._start_server()

    def stop(self) -> None:
        """SIGTERM to everything, SIGKILL to what is still running after 20 s."""
        with self._lock:
            self._closing = True
            everything = [*self.workers, *([self.server] if self.server else [])]
        for process in everything:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    process.terminate()
        deadline = time.monotonic() + 20
        for process in everything:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()


class Killer(threading.Thread):
    """SIGKILLs a random worker every `every` seconds on average (0.5x to 1.5x), at most `limit`
    times, and, every `server_every`-th kill while fewer than `server_limit` were, the server instead."""

    def __init__(
        self, processes: Processes, every: float, limit: int, seed: int, server_limit: int = 0, server_every: int = 4
    ) -> None:
        super().__init__(name="killer", daemon=True)
        self.processes = processes
        self.every = every
        self.limit = limit
        self.server_limit = server_limit
        self.server_every = server_every
        self.rng = random.Random(seed + 1)
        self.stop = threading.Event()

    def run(self) -> None:
        rounds = 0
        while self.processes.kills < self.limit and not self.stop.wait(self.every * self.rng.uniform(0.5, 1.5)):
            rounds += 1
            if rounds % self.server_every == 0 and self.processes.server_kills < self.server_limit:
                self.processes.kill_server()
            else:
                self.kill_one()

    def kill_one(self) -> None:
        self.processes.kill_worker(self.rng.randrange(self.processes.worker_count))


# --- Sending -----------------------------------------------------------------------------------


@dataclass
class Sent:
    answers: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    attempts: Counter[str] = field(default_factory=Counter)  # posts per ITN label, retries included
    retries: Counter[str] = field(default_factory=Counter)  # why a post was sent again
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempted(self, itn: Itn) -> None:
        with self.lock:
            self.attempts[itn.label] += 1

    def retried(self, why: str) -> None:
        with self.lock:
            self.retries[why] += 1

    def record(self, itn: Itn, status: int | None, problem: str | None = None) -> None:
        with self.lock:
            if status is not None:
                self.answers[itn.label][status] += 1
            if problem:
                self.failures.append(f"{itn.label}: {problem}")

    @property
    def count(self) -> int:
        """Sends answered finally (200, or 400 for an invalid ITN): one per send of the plan."""
        return sum(sum(counter.values()) for counter in self.answers.values())

    @property
    def posts(self) -> int:
        return sum(self.attempts.values())


def post(client: httpx.Client, url: str, itn: Itn, sent: Sent) -> None:
    """Sends `itn` as PayFast does: again, after a pause, until it is answered 200 (or, for an
    invalid one, 400), whatever comes between: a refused connection while the killed server
    restarts, a 503 while a store is throttled, a 429."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        sent.attempted(itn)
        try:
            response = client.post(url, content=itn.body, headers=FORM)
        except httpx.HTTPError as error:
            problem, why = f"no answer: {type(error).__name__}: {error}", "no answer"
        else:
            final = response.status_code == 200 if itn.valid else response.status_code == 400
            if final:
                sent.record(itn, response.status_code)
                return
            problem, why = f"HTTP {response.status_code} {response.text[:200]}", f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                sent.record(itn, response.status_code, problem)  # a wrong answer: no retry makes it right
                return
        sent.retried(why)
        time.sleep(min(RETRY_PAUSE_SECONDS * attempt, 5.0))
    sent.record(itn, None, f"no final answer after {MAX_ATTEMPTS} attempts; the last: {problem}")


def send_unit(client: httpx.Client, url: str, unit: Unit, sent: Sent) -> None:
    for step in unit.steps:
        if step.copies == 1:
            post(client, url, step.itn, sent)
            continue
        # The copies leave together: a barrier holds each thread until all are ready.
        barrier = threading.Barrier(step.copies, timeout=30)

        def fire(step: Step = step, barrier: threading.Barrier = barrier) -> None:
            with suppress(threading.BrokenBarrierError):
                barrier.wait()
            post(client, url, step.itn, sent)

        threads = [threading.Thread(target=fire, daemon=True) for _ in range(step.copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)


def send_all(base_url: str, units: list[Unit], sent: Sent, concurrency: int) -> None:
    url = f"{base_url}/payments/payfast/itn"
    limits = httpx.Limits(max_connections=concurrency + MAX_BURST * concurrency)
    with httpx.Client(timeout=60, limits=limits) as client, ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(send_unit, client, url, unit, sent) for unit in units]
        try:
            done, _pending = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C: what has not started never will
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        for future in done:
            future.result()


# --- Waiting and reading -----------------------------------------------------------------------


def wait_for_drain(services: Services, processes: Processes, deadline_seconds: float) -> float:
    """Until the work queue is empty and no job is queued, running or retrying; returns the wait."""
    started = time.monotonic()
    while True:
        processes.check_workers()
        waiting, _dead = services.queue.depth()
        # Counted by the status index, the unfinished statuses only: the soak's reads must not grow with N.
        unfinished = sum(
            services.journal.count_updated_since(status.value, EVER) for status in JobStatus if not status.is_final
        )
        if waiting == 0 and unfinished == 0:
            return time.monotonic() - started
        if time.monotonic() - started > deadline_seconds:
            raise SoakError(
                f"not drained after {deadline_seconds:.0f} s: {waiting} messages queued, {unfinished} jobs unfinished"
            )
        time.sleep(1.0)  # moto counts a queue's messages one by one: a look costs it the queue


def run_audit(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        tenancy_command("audit", "--since", "3650d", "--format", "json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode not in {0, 1}:  # 1: the window has failures, which is expected here
        raise SoakError(f"tenancy audit exited with {result.returncode}: {result.stderr.strip()[:2000]}")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@dataclass
class Stores:
    """Every store read once, indexed the way the checks look things up."""

    payments: list[Any]
    jobs: dict[str, Any]
    tenants: list[Any]
    identity_users: list[Any]
    users: list[Any]
    emails: list[Any]
    dead_letters: int
    subscriptions: list[Any] = field(default_factory=list)  # soak/billing.py's checks
    histories: dict[str, list[Any]] = field(default_factory=dict)  # subscribed tenants' transitions
    team: Any = None  # soak/members.py's checks: every tenant's seats and invitations

    @classmethod
    def read(cls, services: Services) -> Stores:
        def everything(batches: Iterator[list[Any]]) -> list[Any]:
            return [item for batch in batches for item in batch]

        subscriptions = everything(services.subscriptions.scan())
        tenants = everything(services.tenants.scan())
        return cls(
            team=members.read(services, tenants),
            subscriptions=subscriptions,
            histories=billing.read_histories(services, subscriptions),
            payments=everything(services.ledger.scan()),
            jobs={job.transaction_id: job for job in everything(services.journal.scan())},
            tenants=tenants,
            identity_users=everything(services.identity.scan_users()),
            users=everything(services.users.scan()),
            emails=everything(services.mailer.scan()),
            dead_letters=services.queue.depth()[1],
        )


# --- The verdict -------------------------------------------------------------------------------


@dataclass
class Summary:
    payments: int
    tenants: int
    healthy: int
    findings: int
    rejected: int
    duplicates: int
    lost: int
    problems: list[str]

    def line(self) -> str:
        return (
            f"soak: payments={self.payments} tenants={self.tenants} healthy={self.healthy} findings={self.findings}"
            f" rejected={self.rejected} duplicates={self.duplicates} lost={self.lost}"
        )


def judge(plan: Plan, sent: Sent, audit: dict[str, Any], stores: Stores, n: int) -> Summary:
    problems: list[str] = [f"send: {failure}" for failure in sent.failures[:20]]
    if len(sent.failures) > 20:
        problems.append(f"send: ... and {len(sent.failures) - 20} more")
    totals = audit["totals"]
    expected = {p.transaction_id: p for p in plan.purchases if p.expects_tenant}
    by_transaction = {p.transaction_id: p for p in plan.purchases}

    # findings: the audit's failures other than the expected payment_not_complete, and anything unfinished.
    unexpected_cases = [
        case
        for case in audit["cases"]
        if case["finding"] != "payment_not_complete" or case.get("transaction_id") in expected
    ]
    for case in unexpected_cases[:20]:
        problems.append(f"audit: {case.get('transaction_id')}: {case['finding']}: {case['summary']}")
    findings = len(unexpected_cases) + len(audit["in_progress"])
    if audit["in_progress"]:
        problems.append(f"audit: still in progress: {', '.join(audit['in_progress'][:10])}")
    not_healthy = {case.get("transaction_id") for case in audit["cases"]} | set(audit["in_progress"])

    # What each purchase produced, per store.
    tenants_of: dict[str, list[Any]] = defaultdict(list)
    for tenant in stores.tenants:
        tenants_of[tenant.billing.transaction_id].append(tenant)
    identities_of: dict[str, list[Any]] = defaultdict(list)
    for user in stores.identity_users:
        identities_of[user.tenant_id or ""].append(user)
    users_of: dict[str, list[Any]] = defaultdict(list)
    for record in stores.users:
        users_of[record.tenant_id].append(record)
    welcomes_of: dict[str, list[Any]] = defaultdict(list)
    for email in stores.emails:
        # A send that failed (a refused or timed-out SMTP or SES call) reached no one: not a copy.
        if email.tags.get("kind") == "welcome" and email.status in DELIVERED:
            welcomes_of[email.tags.get("transaction_id", "")].append(email)

    duplicates = 0
    lost = 0
    for transaction_id, purchase in expected.items():
        tenant_id = tenant_id_for(transaction_id)
        counts = {
            "tenants": len(tenants_of[transaction_id]),
            "identity users": len(identities_of[tenant_id]),
            "users records": len(users_of[tenant_id]),
            "welcome emails": len(welcomes_of[transaction_id]),
        }
        extra = {what: count for what, count in counts.items() if count > 1}
        if extra:
            duplicates += 1
            problems.append(f"duplicate: {transaction_id}: {extra}")
        why = unhealthy(purchase, tenants_of[transaction_id], identities_of[tenant_id], users_of[tenant_id],
                        welcomes_of[transaction_id], stores)  # fmt: skip
        if transaction_id in not_healthy or why:
            lost += 1
            problems.append(f"lost: {transaction_id} ({purchase.kind}): {why or 'not healthy in the audit'}")

    # Nothing provisioned for anything but a valid COMPLETE purchase.
    expected_tenant_ids = {tenant_id_for(t) for t in expected}
    expected_emails = {p.email for p in expected.values()}
    strays = [
        *(f"tenant {t.tenant_id} for {t.billing.transaction_id}" for t in stores.tenants
          if t.billing.transaction_id not in expected),
        *(f"job {job_id}" for job_id in stores.jobs if job_id not in expected),
        *(f"identity user {u.username}" for u in stores.identity_users if u.username not in expected_emails),
        *(f"users record {r.user_id} of {r.tenant_id}" for r in stores.users if r.tenant_id not in expected_tenant_ids),
        *(f"email to {e.to}" for e in stores.emails if e.to not in expected_emails),
    ]  # fmt: skip
    problems += [f"provisioned without a valid COMPLETE payment: {stray}" for stray in strays[:20]]

    # The ledger against the ground truth.
    entries: dict[tuple[str | None, str | None], list[Any]] = defaultdict(list)
    by_ledger_transaction: dict[str | None, list[Any]] = defaultdict(list)
    for payment in stores.payments:
        entries[(payment.pf_payment_id, payment.payment_status)].append(payment)
        by_ledger_transaction[payment.transaction_id].append(payment)
    # Every post that reached the ledger left one entry there: at least one per send answered, at
    # most one per post (a post cut off by a killed server may or may not have; one whose checks a
    # throttled store or PayFast could not finish is kept as unconfirmed, answered 503, and sent again).
    for itn in plan.itns:
        if not itn.valid:
            continue
        verdicts = Counter(entry.verdict for entry in entries[(itn.pf_payment_id, itn.status)])
        posts = sent.attempts[itn.label]
        later = verdicts[PaymentVerdict.DUPLICATE] + verdicts[PaymentVerdict.UNCONFIRMED]
        if (
            verdicts[PaymentVerdict.ACCEPTED] != 1
            or not itn.sends - 1 <= verdicts[PaymentVerdict.DUPLICATE] <= later <= posts - 1
            or set(verdicts) - {PaymentVerdict.ACCEPTED, PaymentVerdict.DUPLICATE, PaymentVerdict.UNCONFIRMED}
        ):
            problems.append(
                f"ledger: {itn.label} sent {itn.sends}x in {posts} posts: {dict(verdicts)}, expected 1 accepted"
                f" and {itn.sends - 1} to {posts - 1} duplicates or unconfirmed"
            )
    posts_of = {itn.label: sent.attempts[itn.label] for itn in plan.itns}
    for purchase in plan.purchases:
        if purchase.invalid and purchase.kind != "invalid:corpus":
            kept = by_ledger_transaction[purchase.transaction_id]
            prefix = f"{purchase.transaction_id}/"
            posts = max((count for label, count in posts_of.items() if label.startswith(prefix)), default=1)
            if not 1 <= len(kept) <= posts or any(entry.verdict is not PaymentVerdict.REJECTED for entry in kept):
                verdicts_kept = [entry.verdict.value for entry in kept]
                problems.append(f"ledger: invalid {purchase.transaction_id} ({purchase.kind}) kept as "
                                f"{verdicts_kept}, expected 1 to {posts} rejected")  # fmt: skip
        elif not purchase.invalid and any(
            entry.verdict is PaymentVerdict.REJECTED for entry in by_ledger_transaction[purchase.transaction_id]
        ):
            problems.append(f"ledger: valid {purchase.transaction_id} ({purchase.kind}) has a rejected entry")
    unknown = [p for p in stores.payments if p.transaction_id not in by_transaction and p.verdict.value != "rejected"]
    problems += [f"ledger: unexpected {p.verdict.value} entry for {p.transaction_id}" for p in unknown[:10]]
    rejected_in_ledger = sum(1 for p in stores.payments if p.verdict is PaymentVerdict.REJECTED)
    invalid_posts = sum(sent.attempts[itn.label] for itn in plan.itns if not itn.valid)
    rejected_ok = plan.invalid_sends <= rejected_in_ledger <= invalid_posts
    if not rejected_ok or totals["rejected_payments"] != rejected_in_ledger:
        problems.append(
            f"rejected: ledger {rejected_in_ledger}, audit {totals['rejected_payments']}, sent {plan.invalid_sends}"
            f" in {invalid_posts} posts"
        )
    if not n <= len(stores.payments) <= sent.posts or totals["payments"] != len(stores.payments) or sent.count != n:
        problems.append(f"payments: sent {n} in {sent.posts} posts, answered {sent.count}, ledger"
                        f" {len(stores.payments)}, audit {totals['payments']}")  # fmt: skip
    if totals["healthy"] != len(expected) or totals["tenants"] != len(expected):
        problems.append(
            f"audit: {totals['healthy']} healthy and {totals['tenants']} tenants, expected {len(expected)} of each"
        )
    if stores.dead_letters:
        problems.append(f"queue: {stores.dead_letters} messages in the dead-letter queue")
    return Summary(
        payments=totals["payments"],
        tenants=totals["tenants"],
        healthy=totals["healthy"],
        findings=findings,
        rejected=totals["rejected_payments"],
        duplicates=duplicates,
        lost=lost,
        problems=problems,
    )


def unhealthy(
    purchase: Purchase, tenants: list[Any], identities: list[Any], users: list[Any], welcomes: list[Any], stores: Stores
) -> str | None:
    """RB-001 section 5 from the stores, independently of the audit: None when healthy."""
    job = stores.jobs.get(purchase.transaction_id)
    if job is None or job.status is not JobStatus.SUCCEEDED:
        return f"job {job.status.value if job else 'missing'}"
    # A cancelled subscription's tenant is cancelling until its paid-through date (tenant-lifecycle.md).
    live = {TenantStatus.ACTIVE, TenantStatus.CANCELLING} if purchase.cancelled else {TenantStatus.ACTIVE}
    if not tenants or tenants[0].status not in live:
        return f"tenant {tenants[0].status.value if tenants else 'missing'}"
    if not identities or identities[0].username != purchase.email:
        return "no identity user with this tenant id"
    if not users or tenants[0].owner_user_id != identities[0].sub:
        return "users record or owner link missing"
    if not any(email.status in DELIVERED for email in welcomes):
        return "no welcome email"
    return None


def compact(audit: dict[str, Any]) -> dict[str, Any]:
    """The audit's totals and findings, each finding with at most five of its transactions."""
    return {
        "window": audit["window"],
        "totals": audit["totals"],
        "findings": [
            {"finding": group["finding"], "count": group["count"], "transaction_ids": group["transaction_ids"][:5]}
            for group in audit["findings"]
        ],
        "in_progress": audit["in_progress"][:10],
    }


# --- The run -----------------------------------------------------------------------------------


@contextmanager
def soak_home(requested: Path | None, keep: bool) -> Iterator[tuple[Path, Callable[[bool], None]]]:
    """The TENANCY_HOME: --home (must be empty or new; always kept) or a temporary directory
    (removed after a passing run unless --keep; a failing run keeps it for inspection)."""
    if requested is not None:
        if requested.exists() and any(requested.iterdir()):
            raise SoakError(f"--home {requested} is not empty: the soak needs a fresh TENANCY_HOME")
        requested.mkdir(parents=True, exist_ok=True)
        yield requested, lambda _passed: None
        return
    home = Path(tempfile.mkdtemp(prefix="tenancy-soak-"))
    outcome = {"passed": False}

    def finished(passed: bool) -> None:
        outcome["passed"] = passed

    try:
        yield home, finished
    finally:
        if outcome["passed"] and not keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"soak: TENANCY_HOME kept at {home}", flush=True)


def say(message: str) -> None:
    print(f"soak: {message}", flush=True)


# The faults injected by default (tenancy.faults' `rate:` rules), per backend: a few percent of
# the calls each applies to, so that every kind is injected several times even in CI's few hundred
# purchases, while the retries (TENANCY_RETRY_MAX_ATTEMPTS above) still see every purchase through.
DEFAULT_FAULTS = {
    "local": "rate:store_throttled:0.01,rate:mail_refused:0.08,rate:mail_timeout:0.05",
    "aws": (
        "rate:store_throttled:0.003,rate:identity_throttled:0.03,rate:mail_refused:0.08,"
        "rate:mail_timeout:0.08,rate:queue_send_failed:0.1"
    ),
}
# What a rule injects nothing for on a backend (tenancy.faults): the embedded identity provider has
# no throttle, and the embedded queue send shares its payment's transaction.
NOT_ON = {"local": {"identity_throttled", "queue_send_failed"}, "aws": set()}


def fault_names(faults: str) -> list[str]:
    return [rule.split(":")[1] for rule in faults.split(",") if rule.startswith("rate:")]


@contextmanager
def backend_settings(backend: str, home: Path) -> Iterator[dict[str, str]]:
    """The settings that point the processes at their backend: on AWS, moto's server in its own
    process, bootstrapped with `tenancy aws bootstrap`; embedded, an SMTP server (aiosmtpd) in this
    process, so the welcome emails are delivered (and mail faults have a delivery to fail)."""
    if backend == "aws":
        with moto_backend.moto_server(home, free_port()) as endpoint:
            env = {**moto_backend.AWS_ENV, "AWS_ENDPOINT_URL": endpoint}
            bootstrap_env = {
                **{key: value for key, value in os.environ.items() if not key.startswith(("TENANCY_", "AWS_"))},
                **env,
                "TENANCY_HOME": str(home),
                "TENANCY_BACKEND": "aws",
            }
            yield {**env, **moto_backend.bootstrapped(bootstrap_env)}
        return
    from aiosmtpd.controller import Controller

    class Accept:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            return "250 OK"

    controller = Controller(Accept(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield {"TENANCY_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    finally:
        controller.stop()


def reading_services(env: dict[str, str]) -> Services:
    """The stores as the processes see them, for the soak's own reads: this process takes the
    children's environment (without their faults), so boto3 finds moto's endpoint too."""
    for key in [key for key in os.environ if key.startswith(("TENANCY_", "AWS_"))]:
        del os.environ[key]
    os.environ.update(without_faults(env))
    return build(Settings())


def soak(arguments: argparse.Namespace) -> int:
    begun = time.monotonic()
    catalogue = load_catalogue(None)
    plan = make_plan(arguments.n, arguments.seed, catalogue)
    # soak/billing.py: some purchases become subscriptions, with a second wave of renewals and cancellations.
    subscriptions = billing.add_subscriptions(
        plan, arguments.seed, catalogue, (Itn, Step, Unit), fraction=arguments.subscriptions
    )
    usage_traffic = usage.plan_usage(plan, arguments.seed, catalogue, fraction=arguments.usage)  # soak/usage.py
    team = members.plan_teams(plan, arguments.seed, catalogue, fraction=arguments.members)  # soak/members.py
    wanted = sum(1 for p in plan.purchases if p.expects_tenant)
    faults = DEFAULT_FAULTS[arguments.backend] if arguments.faults == "default" else arguments.faults
    faults = "" if faults == "none" else faults
    say(
        f"{arguments.n} ITNs (seed {arguments.seed}) on the {arguments.backend} backend: {len(plan.purchases)} "
        f"purchases, {wanted} to provision, {plan.invalid_sends} invalid, {len(plan.later)} sent again later, "
        f"{sum(step.copies - 1 for unit in plan.first for step in unit.steps)} concurrent copies; "
        f"{arguments.workers} workers; faults: {faults or 'none'}"
    )
    say(f"then, after the first wave drains, {subscriptions.sends} subscription ITNs: {subscriptions.line()}")
    say(f"then, after the subscriptions drain, {usage_traffic.planned()}")  # soak/usage.py
    say(f"then, after the subscription wave drains, {team.plan_line()}")  # soak/members.py
    with soak_home(arguments.home, arguments.keep) as (home, finished), backend_settings(
        arguments.backend, home
    ) as backend:
        port = free_port()
        env = child_env(home, port, backend, faults, arguments.sweep_seconds, arguments.stalled_after)
        base_url = f"http://127.0.0.1:{port}"
        (home / "ground-truth.json").write_text(
            json.dumps([p.__dict__ | {"expects_tenant": p.expects_tenant} for p in plan.purchases], indent=1)
        )
        processes = Processes(home, env, arguments.workers)
        killer = Killer(
            processes, arguments.kill_every, arguments.max_kills, arguments.seed, server_limit=arguments.server_kills
        )
        services = reading_services(env)
        try:
            started = time.monotonic()
            processes.start(base_url)
            say(f"server on {base_url} and {arguments.workers} workers up in {time.monotonic() - started:.1f} s")
            if arguments.kill_every > 0 and arguments.max_kills > 0:
                killer.start()
            sent = Sent()
            sending = time.monotonic()
            send_all(base_url, plan.first, sent, arguments.concurrency)
            send_all(base_url, plan.later, sent, arguments.concurrency)
            send_seconds = time.monotonic() - sending
            retried = ", ".join(f"{why} {count}" for why, count in sorted(sent.retries.items())) or "none"
            say(
                f"sent {sent.count} ITNs in {send_seconds:.1f} s ({sent.count / max(send_seconds, 1e-9):.0f}/s);"
                f" {sent.posts} posts, sent again after: {retried}"
            )
            if killer.is_alive() and processes.kills == 0:
                killer.kill_one()  # at least one kill, however short the run
            if killer.is_alive() and processes.server_kills < min(1, arguments.server_kills):
                processes.kill_server()  # likewise for the server
            drained = wait_for_drain(services, processes, arguments.drain_timeout)
            # soak/billing.py: the second wave (renewals, cancellations, replays), kills and faults still on.
            if subscriptions.chains:
                sending = time.monotonic()
                billing.send_wave(send_all, base_url, subscriptions, sent, arguments.concurrency)
                say(f"sent {subscriptions.sends} subscription ITNs in {time.monotonic() - sending:.1f} s")
            if usage_traffic.records:  # soak/usage.py: once the subscriptions drained, kills and faults still on
                wait_for_drain(services, processes, arguments.drain_timeout)
                spare = killer.is_alive() and processes.server_kills < arguments.server_kills  # a server kill left
                kill = processes.kill_server if spare else None
                say(usage.send(base_url, services, usage_traffic, arguments.concurrency, kill_server=kill))
            # soak/members.py: invitations racing for seats, accepted (some twice), kills and faults still on.
            if team.teams:
                wait_for_drain(services, processes, arguments.drain_timeout)  # the subscription wave first
                members.send_wave(team, env, base_url, arguments.concurrency, arguments.seed)
                say(team.sent_line())
            killer.stop.set()
            if killer.ident is not None:  # started
                killer.join(timeout=30)
            drained += wait_for_drain(services, processes, arguments.drain_timeout)  # after the last kill
            say(
                f"drained {drained:.1f} s after the last ITN; {processes.kills} workers and"
                f" {processes.server_kills} servers killed with SIGKILL"
            )
            processes.check_workers()
        finally:
            killer.stop.set()
            processes.stop()
        lifecycle_problems: list[str] = []
        try:
            auditing = time.monotonic()
            audit = run_audit(without_faults(env))
            (home / "audit.json").write_text(json.dumps(audit, indent=2))
            say(f"audit in {time.monotonic() - auditing:.1f} s; total {time.monotonic() - started:.1f} s")
            stores = Stores.read(services)
            rerun = sum(1 for job in stores.jobs.values() if job.attempts > 1)
            say(f"{rerun} jobs ran more than once (their worker was killed mid-job, or a step failed)")
            if arguments.lifecycle and stores.subscriptions:  # soak/lifecycle.py: time moves the tenants on
                moving = time.monotonic()
                phase = lifecycle.run(env, services, stores.subscriptions, arguments.backend, arguments.seed,
                                      tenancy_command, home / "logs")  # fmt: skip
                ended = {chain.tenant_id for chain in subscriptions.chains if chain.cancellation is not None}
                after = Stores.read(services)
                lifecycle_problems = lifecycle.check(phase, services, stores.subscriptions, ended, after)
                say(f"{phase.line()} in {time.monotonic() - moving:.1f} s")
        finally:
            services.close()
        injected = count_injected(home / "logs")
        say("faults injected: " + (", ".join(f"{name}={injected[name]}" for name in fault_names(faults)) or "none"))
        summary = judge(plan, sent, audit, members.owners_only(stores, team), arguments.n + subscriptions.sends)
        summary.problems += billing.check(subscriptions, stores)  # soak/billing.py
        summary.problems += usage.check(usage_traffic, stores)  # soak/usage.py
        summary.problems += lifecycle_problems  # soak/lifecycle.py
        summary.problems += members.check(team, stores, audit)  # soak/members.py
        if arguments.kill_every > 0 and arguments.max_kills > 0 and processes.kills == 0:
            summary.problems.append("killer: no worker was killed")
        if arguments.kill_every > 0 and arguments.server_kills > 0 and processes.server_kills == 0:
            summary.problems.append("killer: the server was never killed")
        summary.problems += [
            f"faults: {name} was never injected"
            for name in fault_names(faults)
            if name not in NOT_ON[arguments.backend] and injected[name] == 0
        ]
        summary.problems += [f"process: {what}" for what in processes.unexpected_exits]
        summary.problems += [f"log: a traceback in {path.name}" for path in sorted(home.glob("*.log"))
                             if "Traceback" in path.read_text(errors="replace")]  # fmt: skip
        print(json.dumps(compact(audit), indent=2))
        say(subscriptions.line())  # soak/billing.py
        say(usage_traffic.line())  # soak/usage.py
        say(team.line())  # soak/members.py
        passed = not summary.problems and summary.duplicates == summary.lost == summary.findings == 0
        for problem in summary.problems:
            print(f"FAIL {problem}")
        finished(passed)
    took = time.monotonic() - begun
    print(f"soak: {arguments.backend} backend, N={arguments.n}, seed {arguments.seed}: {took:.0f} s in all")
    print("soak: PASS" if passed else f"soak: FAIL ({len(summary.problems)} problems)")
    print(summary.line(), flush=True)
    return 0 if passed else 1


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="ITNs to send, duplicates and invalid ones included")
    parser.add_argument("--seed", type=int, default=1, help="decides the mix (and the ground truth)")
    parser.add_argument("--workers", type=int, default=2, help="`tenancy worker` processes")
    parser.add_argument("--home", type=Path, help="TENANCY_HOME to use (new or empty; kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary TENANCY_HOME after a pass")
    parser.add_argument("--concurrency", type=int, default=8, help="ITNs in flight at once")
    parser.add_argument("--kill-every", type=float, default=None,
                        help="mean seconds between kills (0: none; default 2, 15 on AWS where processes start slower)")
    parser.add_argument("--max-kills", type=int, default=100, help="at most this many kills")
    parser.add_argument("--backend", choices=("local", "aws"), default="local",
                        help="local: SQLite and SMTP; aws: moto's server, bootstrapped with `tenancy aws bootstrap`")
    parser.add_argument("--faults", default="default",
                        help="TENANCY_FAULTS of the server and workers: 'default' (the backend's), 'none', or rules")
    parser.add_argument("--server-kills", type=int, default=3, help="at most this many SIGKILLs of the server")
    parser.add_argument("--sweep-seconds", type=float, default=3.0, help="the stalled-job sweep's period")
    # On SQS the sweep cannot see a job's message (a look is a receive): a job waiting longer than
    # this in a backlog is sent a second message, harmless but more work for a slow backend.
    parser.add_argument("--stalled-after", type=float, default=60.0,
                        help="seconds untouched before the sweep calls a job stalled (and sends it again)")
    parser.add_argument(
        "--subscriptions",
        type=float,
        default=billing.SUBSCRIBED,
        help="fraction of COMPLETE purchases bought as subscriptions (0: none; soak/billing.py)",
    )
    parser.add_argument("--usage", type=float, default=usage.USAGE,
                        help="fraction of the provisioned tenants sent usage records (0: none; soak/usage.py)")
    parser.add_argument("--lifecycle", action=argparse.BooleanOptionalAction, default=True,
                        help="after the audit, sweep the lifecycle at advancing times (soak/lifecycle.py)")
    parser.add_argument(
        "--members",
        type=float,
        default=members.MEMBERS,
        help="fraction of provisioned tenants whose team invites more than its free seats (0: none; soak/members.py)",
    )
    parser.add_argument("--drain-timeout", type=float, default=None,
                        help="seconds to wait for the queue to empty (600; on AWS at least a second per ITN)")
    arguments = parser.parse_args(argv)
    if arguments.kill_every is None:
        arguments.kill_every = 15.0 if arguments.backend == "aws" else 2.0
    if arguments.drain_timeout is None:  # moto works through a backlog at about a job a second
        arguments.drain_timeout = max(600.0, float(arguments.n)) if arguments.backend == "aws" else 600.0
    if arguments.n < 10 or arguments.workers < 1 or arguments.concurrency < 1:
        parser.error("--n must be at least 10, --workers and --concurrency at least 1")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)

    def interrupted(_signal: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        return soak(arguments)
    except SoakError as error:
        print(f"soak: error: {error}", file=sys.stderr)
        print(f"soak: FAIL (the soak could not run: {error})", flush=True)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted; every process it started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
