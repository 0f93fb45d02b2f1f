"""The embedded backend's background work, in threads of `tenancy serve` or `tenancy worker`: the
provisioning workers (the first also sweeps for stalled jobs), the weekly audit's schedule, the
lifecycle sweep, the delivery of lifecycle notices, and the alert watcher. One place builds them,
so both commands run the same loops."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from tenancy.bootstrap import Services
from tenancy.errors import TenancyError
from tenancy.runbook.alert_watcher import AlertWatcher

__all__ = ["background_threads", "run_every"]

log = structlog.get_logger(__name__)


def run_every(stop: threading.Event, seconds: float, action: Callable[[], object], name: str) -> None:
    """Runs `action` now and then every `seconds` until `stop` is set. A failure is logged and
    the loop goes on: the next round tries again (each round's work is idempotent)."""
    while not stop.is_set():
        try:
            action()
        except TenancyError as error:
            log.warning("background_round_failed", loop=name, error=str(error))
        stop.wait(seconds)


def background_threads(
    services: Services, stop: threading.Event, *, workers: int, alert_watch_seconds: float = 0
) -> list[threading.Thread]:
    """The threads (not started) that run until `stop` is set: `workers` provisioning workers,
    the weekly audit's schedule when there are workers and TENANCY_AUDIT_INTERVAL_HOURS is not 0,
    and the alert watcher when `alert_watch_seconds` > 0."""
    settings = services.settings
    threads = [
        threading.Thread(
            target=services.worker.run_until,
            # One thread of the process sweeps for stalled jobs; more would only repeat it.
            args=(stop, settings.worker_poll_seconds, services.sweep if number == 0 else None),
            name=f"worker-{number}",
            daemon=True,
        )
        for number in range(workers)
    ]
    if workers > 0 and settings.audit_interval_hours > 0:
        threads.append(
            threading.Thread(
                target=services.scheduled_audit.run_until,
                args=(stop, settings.audit_check_seconds),
                name="audit-schedule",
                daemon=True,
            )
        )
    if workers > 0:
        # The clock the services read, so a test's clock drives the sweep as it drives the rest.
        sweep = services.lifecycle_sweep

        def sweep_now() -> object:
            report = sweep.run(services.clock.now())
            # Usage records' idempotency keys are remembered for a week (on AWS, DynamoDB's TTL forgets them).
            services.usage.forget_old_answers()
            # Invitations past their seven days give their seats back.
            services.team.expire_due()
            return report

        for name, seconds, action in (
            ("lifecycle-sweep", settings.lifecycle_sweep_seconds, sweep_now),
            ("notices", settings.notice_poll_seconds, services.notices.deliver_due),
        ):
            threads.append(
                threading.Thread(target=run_every, args=(stop, seconds, action, name), name=name, daemon=True)
            )
    if alert_watch_seconds > 0:
        watcher = AlertWatcher(services.alert_monitor, services.alert_dispatcher)
        threads.append(
            threading.Thread(
                target=watcher.run_until, args=(stop, alert_watch_seconds), name="alert-watcher", daemon=True
            )
        )
    return threads
