"""`GET /metrics`: queue depths, jobs by status, payments by verdict and the alert rules, in
Prometheus' text format.

Who may scrape: with TENANCY_METRICS_TOKEN set, a request carrying `Authorization: Bearer <token>`
(401 otherwise); without it, loopback clients only (403 otherwise), judged by `client_ip`, which
believes X-Forwarded-For only from TENANCY_TRUSTED_PROXIES.

What a scrape costs: counts the stores keep (jobs by status, ITNs by verdict, purchases by finding
in the findings index) plus the few unfinished jobs and recent rejections (AlertMonitor.inputs),
never a pass over the journal or the ledger and never an audit; and one computation
serves every scrape within TENANCY_METRICS_CACHE_SECONDS, concurrent scrapes waiting for the one
in progress instead of starting their own.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tenancy.bootstrap import Services
from tenancy.config import Settings
from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import AuditRun, JobStatus, PaymentVerdict
from tenancy.runbook.alerts import AlertReport
from tenancy.runbook.findings import Finding
from tenancy.web.deps import client_ip

__all__ = ["SingleFlight", "StoreCollector", "build_router"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """`compute()`'s last value while it is younger than `ttl_seconds`; otherwise one caller
    computes it again while the others wait for that value (never a computation each)."""

    def __init__(
        self, compute: Callable[[], T], ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._compute = compute
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._computed_at = 0.0

    def get(self) -> T:
        with self._lock:
            if self._value is not None and self._clock() - self._computed_at < self._ttl:
                return self._value
            value = self._compute()  # an error reaches this caller; the next one tries again
            self._value, self._computed_at = value, self._clock()
            return value


class StoreCollector:
    """Reads the stores when Prometheus scrapes: the alert monitor's counts and indexed reads
    (no pass over a whole store, no per-tenant diagnosis), shared by scrapes close together."""

    def __init__(self, services: Services) -> None:
        self._reports = SingleFlight(lambda: _read(services), services.settings.metrics_cache_seconds)
        # No `describe`: the registry then never calls `collect` at registration, so building
        # the app reads no store.

    def collect(self) -> Iterable[Metric]:
        report, findings, last_audit = self._reports.get()
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
        purchases = GaugeMetricFamily(
            "tenancy_purchases", "Purchases by their finding now (the findings index).", labels=["finding"]
        )
        for finding in Finding:
            purchases.add_metric([finding.value], findings.get(finding.value, 0))
        yield purchases
        if last_audit is not None:
            yield GaugeMetricFamily(
                "tenancy_last_audit_timestamp_seconds",
                "When the last full audit (the findings index's reconciliation) finished, in Unix time.",
                value=parse_timestamp(last_audit.finished_at).timestamp(),
            )
        yield GaugeMetricFamily(
            "tenancy_provisioning_error_rate",
            "Share of jobs updated within TENANCY_ALERT_WINDOW_MINUTES that failed at least one attempt.",
            value=report.result("error_rate").value,
        )


_Reading = tuple[AlertReport, dict[str, int], AuditRun | None]


def _read(services: Services) -> _Reading:
    """What a scrape reports: the alert monitor's counts and rules, and the findings index's counts."""
    index = services.findings_index
    return services.alert_monitor.check(count_all_payments=True), index.count_by_finding(), index.last_audit()


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def authorize_scrape(request: Request, settings: Settings) -> None:
    """Returns if the request may read /metrics; raises the 401 or 403 that says why not."""
    if settings.metrics_token is None:
        source = client_ip(request)
        if not _is_loopback(source):
            log.warning("metrics_refused", reason="not loopback", source=source)
            raise HTTPException(
                status_code=403,
                detail="/metrics answers only loopback clients while TENANCY_METRICS_TOKEN is unset",
            )
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        log.warning("metrics_refused", reason="no bearer token", source=client_ip(request))
        raise HTTPException(
            status_code=401,
            detail="/metrics needs an Authorization: Bearer header with the metrics token",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    expected = settings.metrics_token.get_secret_value().strip()
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        log.warning("metrics_refused", reason="wrong token", source=client_ip(request))
        raise HTTPException(
            status_code=401,
            detail="the metrics token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="metrics", error="invalid_token"'},
        )


_REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"description": "TENANCY_METRICS_TOKEN is set and the request lacks `Authorization: Bearer <it>`"},
    403: {"description": "TENANCY_METRICS_TOKEN is unset and the client is not on loopback"},
}


def build_router(services: Services) -> APIRouter:
    """The /metrics route with a registry of its own (never prometheus_client's global one, so
    two apps in one process, as in tests, do not share or clash)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(services))
    router = APIRouter(tags=["system"])

    # The token is read from the header here, not declared as an HTTPBearer dependency: the
    # OpenAPI document marks HTTPBearer routes as tenant-scoped, and this one is not.
    @router.get("/metrics", response_class=Response, responses=_REFUSALS)
    def metrics(request: Request) -> Response:
        authorize_scrape(request, services.settings)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
