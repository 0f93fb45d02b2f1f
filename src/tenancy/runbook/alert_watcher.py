"""The alert watcher: the rules evaluated on a schedule, with a notification when a rule starts
firing and when it resolves. It is the loop of `tenancy alerts watch` and the thread `tenancy
serve` runs (TENANCY_ALERT_WATCH_SECONDS), so both notify by the same rules, the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from tenancy.runbook.alerts import AlertDispatcher, AlertMonitor, AlertReport, AlertTransition, AlertWatch, Delivery

__all__ = ["AlertWatcher", "FailureHook", "TransitionHook"]

log = structlog.get_logger(__name__)

TransitionHook = Callable[[AlertReport, AlertTransition, list[Delivery]], None]
FailureHook = Callable[[Exception], None]


class AlertWatcher:
    """Evaluates the rules each tick and notifies only on a change (AlertWatch remembers what
    fired), so a rule that keeps firing is told once, not every tick. Without a dispatcher it
    evaluates and reports transitions without notifying anyone (`alerts watch --no-notify`).

    A tick never raises: a failed read (a locked database, an unreachable queue) is logged and
    the next tick tries again, and a destination that fails is logged by the dispatcher. The
    watcher runs beside a server's request handling and must never be what stops it."""

    def __init__(
        self,
        monitor: AlertMonitor,
        dispatcher: AlertDispatcher | None,
        *,
        on_transition: TransitionHook | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        self._monitor = monitor
        self._dispatcher = dispatcher
        self._on_transition = on_transition
        self._on_failure = on_failure
        self._watch = AlertWatch()

    def tick(self) -> list[AlertTransition]:
        """Evaluates every rule once, notifies each rule that started or stopped firing, and
        returns those transitions (none when the rules could not be read)."""
        try:
            report = self._monitor.check()
        except Exception as error:  # noqa: BLE001 - a watcher outlives a failed read
            log.error("alert_check_failed", error_type=type(error).__name__, error=str(error))
            if self._on_failure is not None:
                self._on_failure(error)
            return []
        transitions = self._watch.observe(report.results)
        for transition in transitions:
            deliveries = self._notify(transition)
            if self._on_transition is not None:
                self._on_transition(report, transition, deliveries)
        return transitions

    def run_until(self, stop: threading.Event, interval_seconds: float, *, max_ticks: int | None = None) -> None:
        """Ticks now and then every `interval_seconds` until `stop` is set (or after `max_ticks`).
        The first tick is at once: a rule already firing when a server starts is told then."""
        log.info("alert_watch_started", interval_seconds=interval_seconds)
        ticks = 0
        while not stop.is_set():
            transitions = self.tick()
            ticks += 1
            # At debug only (one line a tick); it is how a test, or an operator, sees the watcher
            # is still evaluating when there is nothing new to tell.
            log.debug("alert_watch_tick", tick=ticks, transitions=len(transitions))
            if max_ticks is not None and ticks >= max_ticks:
                break
            stop.wait(interval_seconds)
        log.info("alert_watch_stopped", ticks=ticks)

    def _notify(self, transition: AlertTransition) -> list[Delivery]:
        if self._dispatcher is None:
            return []
        try:
            return self._dispatcher.dispatch(transition.result, resolved=transition.resolved)
        except Exception as error:  # noqa: BLE001 - the dispatcher reports its notifiers' failures;
            # anything else it raises is logged too, so the loop goes on to the next transition.
            log.error(
                "alert_dispatch_failed",
                rule=transition.result.rule,
                error_type=type(error).__name__,
                error=str(error),
            )
            return []
