"""`GET /metrics`: queue depths, jobs by status, payments by verdict and the alert rules, in
Prometheus' text format, computed from the stores on each scrape."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tenancy.bootstrap import Services
from tenancy.domain.model import JobStatus, PaymentVerdict

__all__ = ["StoreCollector", "build_router"]


class StoreCollector:
    """Reads the stores when Prometheus scrapes: one journal pass, one ledger pass, one queue
    count, and the alert rules over that data (no per-tenant diagnosis)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        # No `describe`: the registry then never calls `collect` at registration, so building
        # the app reads no store.

    def collect(self) -> Iterable[Metric]:
        report = self._services.alert_monitor.check(count_all_payments=True)
        inputs = report.inputs
        yield GaugeMetricFamily("tenancy_queue_depth", "Provisioning messages waiting in the work queue.",
                                value=inputs.queue_depth)  # fmt: skip
        yield GaugeMetricFamily("tenancy_dlq_depth", "Provisioning messages in the dead-letter queue.",
                                value=inputs.dlq_depth)  # fmt: skip
        jobs = GaugeMetricFamily("tenancy_jobs", "Provisioning jobs in the journal, by status.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], inputs.jobs_by_status.get(status, 0))
        yield jobs
        payments = CounterMetricFamily("tenancy_payments", "ITNs kept in the ledger, by verdict.", labels=["verdict"])
        for verdict in PaymentVerdict:
            payments.add_metric([verdict.value], inputs.payments_by_verdict.get(verdict, 0))
        yield payments
        firing = GaugeMetricFamily("tenancy_alert_firing", "1 while the alert rule fires.", labels=["rule", "target"])
        for result in report.results:
            firing.add_metric([result.rule, result.target], 1 if result.firing else 0)
        yield firing
        yield GaugeMetricFamily(
            "tenancy_provisioning_error_rate",
            "Share of jobs updated within TENANCY_ALERT_WINDOW_MINUTES that failed at least one attempt.",
            value=report.result("error_rate").value,
        )


def build_router(services: Services) -> APIRouter:
    """The /metrics route with a registry of its own (never prometheus_client's global one, so
    two apps in one process, as in tests, do not share or clash)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(services))
    router = APIRouter(tags=["system"])

    @router.get("/metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
