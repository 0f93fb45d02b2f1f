"""The soak's lifecycle phase (issue 20): time moves every subscribed tenant on, as
shared/design/tenant-lifecycle.md says, with sweeps racing each other and killed mid-run, and
each move is applied once.

How it fits soak/run.py: after the final audit and the stores are read (the other checks judge
the system as the waves left it), `run(...)` takes over the same TENANCY_HOME:

1. PayFast is told of every subscription the soak made (the ITNs carried tokens it invented): each
   is registered with its next charge on its paid-through date, which no renewal ITN moved on, so
   PayFast's `fetch` confirms the payment was missed. Embedded, in the offline simulator's table;
   on AWS, in a stand-in of PayFast's subscription API (tests/payfast_api_standin.py) that the
   sweeps are pointed at.
2. For each step of a schedule built from the paid-through dates (the days past due, suspended,
   cancelled and deleted become due, and the day after a deletion, when one a killed run cut
   short is finished), `tenancy lifecycle run --as-of STEP` runs twice at once, with the run's
   faults; one of the two is SIGKILLed at a random moment in about a third of the steps. A step a
   kill, a fault or the race left unfinished is swept again at once, one run at a time, as the
   schedule's next tick would; at the last step, until a dry run finds nothing due, and once more.
3. `check(...)` on the stores read again: every subscribed tenant moved through its path once
   (active: past due, suspended, cancelled, deleted; cancelled by an ITN: cancelled, deleted), no
   move twice, no deleted tenant left with an identity user or a users record, every once-off
   tenant still active and never moved by time.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tenancy.domain.lifecycle import EventType
from tenancy.domain.model import TenantStatus
from tenancy.lifecycle.due import LifecyclePeriods

__all__ = ["LifecyclePhase", "check", "run"]

SWEEPERS = 2  # runs of one step at once
KILLED = 0.35  # of the steps: one of its runs is SIGKILLed mid-run
MAX_ROUNDS = 6  # sweeps of one step again, one at a time, at most
PERIODS = LifecyclePeriods()  # the soak runs with the default periods
# A subscription active until time moved it; one a CANCELLED ITN ended.
PATH_ACTIVE = [EventType.PAST_DUE, EventType.SUSPENDED, EventType.CANCELLED, EventType.DELETED]
PATH_CANCELLED = [EventType.CANCELLED, EventType.DELETED]
TIME_EVENTS = frozenset(PATH_ACTIVE)


@dataclass
class LifecyclePhase:
    steps: list[datetime] = field(default_factory=list)
    runs: int = 0
    killed: int = 0
    failed: int = 0  # runs that exited non-zero (a fault mid-run)
    rounds: int = 0  # sweeps of a step again, one at a time
    moved: int = 0  # moves the runs reported applied
    skipped: int = 0  # moves a run left for the next (a conflict with the other run, a fault)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"lifecycle steps={len(self.steps)} runs={self.runs} killed={self.killed} failed={self.failed}"
            f" moved={self.moved} skipped={self.skipped} rounds={self.rounds}"
        )


def schedule(paid_through: set[date]) -> list[datetime]:
    """Noon on each day a move becomes due (a move is due the day after its date)."""
    days: set[date] = set()
    grace, suspended, retention = PERIODS.grace_days, PERIODS.suspended_days, PERIODS.retention_days
    for through in paid_through:
        overdue = through + timedelta(days=1)  # past due only after this day of slack
        cancelled = overdue + timedelta(days=grace + suspended + 1)
        days |= {
            overdue,  # a cancelling tenant's access ends; nothing else moves yet
            overdue + timedelta(days=1),  # past due
            overdue + timedelta(days=grace + 1),  # suspended
            cancelled,  # cancelled
        }
        for deleted in (through + timedelta(days=retention + 2), cancelled + timedelta(days=retention + 1)):
            # Deleted (a cancelling tenant's, or a suspended one's), then the next day, when the
            # sweep finishes a deletion a killed run cut short.
            days |= {deleted, deleted + timedelta(days=1)}
    return [datetime(day.year, day.month, day.day, 12, tzinfo=UTC) for day in sorted(days)]


@contextmanager
def payfast_knows(services: Any, subscriptions: list[Any], backend: str) -> Iterator[dict[str, str]]:
    """Registers each subscription with PayFast (next charge on its paid-through date); yields the
    environment that points the sweeps at it."""
    if backend == "local":
        simulator = services.subscription_api  # offline with a database: the simulator's table
        for subscription in subscriptions:
            simulator.register(
                subscription.token,
                int(subscription.recurring_amount * 100),
                int(subscription.frequency),
                subscription.paid_through,
            )
        yield {}
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from payfast_api_standin import running_payfast_api  # a test support module, AWS only

    settings = services.settings
    with running_payfast_api(merchant_id=settings.payfast_merchant_id, passphrase=settings.passphrase) as api:
        for subscription in subscriptions:
            api.add(
                subscription.token,
                amount=int(subscription.recurring_amount * 100),
                frequency=int(subscription.frequency),
                run_date=subscription.paid_through.isoformat(),
            )
        yield {"TENANCY_PAYFAST_API_URL": api.url}


def run(
    env: dict[str, str],
    services: Any,
    subscriptions: list[Any],
    backend: str,
    seed: int,
    command: Callable[..., list[str]],
    logs: Path,
) -> LifecyclePhase:
    """Sweeps every step of the schedule as the module docstring says; `command` builds a
    `tenancy` command line (run.tenancy_command)."""
    phase = LifecyclePhase(steps=schedule({subscription.paid_through for subscription in subscriptions}))
    if not subscriptions:
        return phase
    rng = random.Random(f"soak-lifecycle-{seed}")
    with payfast_knows(services, subscriptions, backend) as pointed:
        sweep_env = {**env, **pointed}
        quiet = {key: value for key, value in sweep_env.items() if key != "TENANCY_FAULTS"}
        stamp = ""
        for number, step in enumerate(phase.steps):
            stamp = step.strftime("%Y-%m-%dT%H:%M:%SZ")
            victim = rng.randrange(SWEEPERS) if rng.random() < KILLED else None
            delay = rng.uniform(0.2, 2.0)
            racing = [_start(command, stamp, sweep_env, logs, f"{number}-{index}") for index in range(SWEEPERS)]
            if victim is not None:
                _kill_later(racing[victim], delay)
            clean = [_finish(process, phase) for process in racing]
            # As the schedule's next tick would (five minutes on), a step a killed run, a fault or
            # the race left unfinished is swept again: one run at a time, a few times at most.
            for again in range(MAX_ROUNDS if not all(clean) else 0):
                phase.rounds += 1
                if _finish(_start(command, stamp, sweep_env, logs, f"{number}-again-{again}"), phase):
                    break
        # What a killed or faulted run left at a step, a later step applies (a sweep applies every
        # move due in turn); at the last one, sweeps go on until nothing is due, and one more
        # finishes a deletion the last kill may have cut short.
        for _ in range(MAX_ROUNDS):
            phase.rounds += 1
            _finish(_start(command, stamp, sweep_env, logs, f"last-{phase.rounds}"), phase)
            if not _due(command, quiet, stamp):
                break
        else:
            phase.problems.append(f"lifecycle: moves still due at {stamp} after {MAX_ROUNDS} sweeps")
        _finish(_start(command, stamp, sweep_env, logs, "last-finish"), phase)
    return phase


def _start(command: Callable[..., list[str]], stamp: str, env: dict[str, str], logs: Path, name: str) -> Any:
    """`tenancy lifecycle run --as-of STAMP --json`, its log in `logs`."""
    with (logs / f"lifecycle-{name}.log").open("a") as log:
        arguments = command("lifecycle", "run", "--as-of", stamp, "--json")
        return subprocess.Popen(arguments, env=env, stdout=subprocess.PIPE, stderr=log, text=True)


def _kill_later(process: subprocess.Popen[str], delay: float) -> None:
    def kill() -> None:
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()


def _finish(process: subprocess.Popen[str], phase: LifecyclePhase) -> bool:
    """Waits for a run and counts what it did; whether it finished all it found (not killed, no
    fault, nothing left for the next run)."""
    output, _ = process.communicate(timeout=600)
    phase.runs += 1
    if process.returncode == -signal.SIGKILL:
        phase.killed += 1
        return False
    if process.returncode != 0:
        phase.failed += 1  # a fault mid-run: the step is swept again
        return False
    report = json.loads(output)
    phase.moved += len(report["applied"])
    phase.skipped += len(report["skipped"])
    return not report["skipped"]


def _due(command: Callable[..., list[str]], env: dict[str, str], stamp: str) -> bool:
    """Whether a dry run at `stamp` finds any move due (judged without faults)."""
    for _ in range(3):
        result = subprocess.run(
            command("lifecycle", "run", "--as-of", stamp, "--dry-run", "--json"),
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if result.returncode == 0:
            return bool(json.loads(result.stdout)["due"])
    raise RuntimeError(f"tenancy lifecycle run --dry-run kept failing: {result.stderr.strip()[-500:]}")


def check(
    phase: LifecyclePhase, services: Any, subscriptions: list[Any], cancelled: set[str], stores: Any
) -> list[str]:
    """The stores after the phase (module docstring, 3). `cancelled`: the tenants a CANCELLED ITN
    ended; `stores` as soak/run.py's Stores.read gives them, read after the phase."""
    problems = list(phase.problems)
    subscribed = {subscription.tenant_id for subscription in subscriptions}
    tenants = {tenant.tenant_id: tenant for tenant in stores.tenants}
    holders = Counter(user.tenant_id for user in stores.users)
    identities = Counter(getattr(user, "tenant_id", None) for user in stores.identity_users)
    for tenant_id in sorted(subscribed):
        history = services.lifecycle.history(tenant_id)
        moved = [move.event for move in history if move.event in TIME_EVENTS]
        path = PATH_CANCELLED if tenant_id in cancelled else PATH_ACTIVE
        if moved != path:
            problems.append(f"lifecycle: {tenant_id} moved {[event.value for event in moved]},"
                            f" expected {[event.value for event in path]} once each")  # fmt: skip
        tenant = tenants.get(tenant_id)
        if tenant is not None and tenant.status is not TenantStatus.DELETED:
            problems.append(f"lifecycle: {tenant_id} is {tenant.status.value} after the last step, not deleted")
        if services.lifecycle.tombstone(tenant_id) is None:
            problems.append(f"lifecycle: {tenant_id} left no tombstone")
        if holders[tenant_id] or identities[tenant_id]:
            problems.append(f"lifecycle: deleted {tenant_id} still has {holders[tenant_id]} users records"
                            f" and {identities[tenant_id]} identity users")  # fmt: skip
    for tenant_id, tenant in tenants.items():
        if tenant_id in subscribed:
            continue
        moved = [move.event.value for move in services.lifecycle.history(tenant_id) if move.event in TIME_EVENTS]
        if moved or tenant.status is not TenantStatus.ACTIVE:
            problems.append(f"lifecycle: once-off {tenant_id} is {tenant.status.value}, moved {moved}")
    return problems
