"""The operations console (operators only): dashboard, jobs, tenant case files with repair, DLQ,
lifecycle notices, mail outbox and the weekly audit. Every page goes through the runbook's own use cases, the same
ones `tenancy diagnose/repair/verify/dlq/audit/alerts` run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tenancy.advice import next_action
from tenancy.bootstrap import Services
from tenancy.config import Backend
from tenancy.domain.billing import SubscriptionStatus
from tenancy.domain.clock import parse_timestamp
from tenancy.domain.lifecycle import NoticeStatus
from tenancy.domain.members import Invitation
from tenancy.domain.model import JobStatus, TenantStatus, UserRecord
from tenancy.domain.plurals import plural
from tenancy.domain.secret_lines import hide_secret_lines
from tenancy.domain.usage import Entitlements, Metric
from tenancy.errors import InvalidInputError, NotFoundError, TenancyError, UnknownPlanError
from tenancy.runbook.audit import AuditReport, parse_duration, window_start
from tenancy.runbook.audit_export import attempts_headline, human_age, render_csv, verdict_line
from tenancy.runbook.dashboard import HourlySeries, read_dashboard
from tenancy.runbook.dead_letters import DeadLetterDecision, dead_letter_row
from tenancy.runbook.evidence import Selector, mail_status_words
from tenancy.runbook.findings import Finding
from tenancy.runbook.findings_index import AuditTrigger
from tenancy.runbook.job_search import MAX_ROWS, PAGE_ROWS, JobFilters, job_rows, rows_for_query
from tenancy.runbook.passive import DeadLettersOnly
from tenancy.runbook.runbook_doc import RunbookLinks, load_runbook
from tenancy.web.deps import ServicesDep
from tenancy.web.pages.rendering import redirect, render
from tenancy.web.pages.security import read_form, security_headers
from tenancy.web.pages.viewer import Viewer, require_operator

__all__ = ["router"]

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)


def console_services(services: ServicesDep) -> Services:
    """The services as the console uses them: its pages are reloaded again and again, so they
    never receive from the work queue to look at it (see runbook.passive)."""
    if services.queue.listing_counts_as_delivery:
        return dataclasses.replace(services, queue=DeadLettersOnly(services.queue))
    return services


ConsoleServices = Annotated[Services, Depends(console_services)]
_Filter = TypeVar("_Filter", JobStatus, Finding)

# The findings that are failures, in RB-001's order: the dashboard lists each, even at zero.
FAILURES = tuple(finding for finding in Finding if finding.is_failure)
AUDIT_WINDOW = "7d"

# Notices after a form post: the query names one of these; no other text reaches the page.
_NOTICES = {
    "repaired": ("success", "Repaired. The checks below ran again after the repair."),
    "nothing_to_do": ("success", "Nothing to repair: this purchase is healthy."),
    "not_repairable": ("error", "This finding cannot be repaired automatically: follow the next action below."),
    "retrying": ("error", "The repair hit a temporary failure; the job is back on the queue to retry."),
    "failed": ("error", "The repair failed and the job went to the dead-letter queue. See the evidence below."),
    "unfinished": ("error", "The repair stopped before the purchase was healthy. See the diagnosis below."),
    "redriven": ("success", "The message is back on the work queue with a fresh set of attempts."),
    "not_found": ("error", "That message is no longer in the dead-letter queue; nothing was redriven."),
    "redriven_all": ("success", "Redrove {messages} back to the work queue."),
    "removed": ("success", "The message is removed from the dead-letter queue; its purchase stays healthy."),
    "not_removed": ("error", "That message is no longer in the dead-letter queue; nothing was removed."),
    "not_healed": (
        "error",
        "Not removed: that message's purchase is not healthy, so the message still says something is wrong. "
        "Open its case and repair it first.",
    ),
    "removed_healed": ("success", "Removed {messages} of healed purchases from the dead-letter queue."),
    "notice_delivered": ("success", "Delivered."),
    "notice_failed": (
        "error",
        "Delivering it failed again: it is pending, retried with backoff. The error is in the list below.",
    ),
    "notice_not_found": ("error", "No such notice: nothing was delivered."),
}
# Notices of each kind a page lists (dead ones are few: each raised an alert).
NOTICES_SHOWN = 200


# --- Dashboard ---------------------------------------------------------------------------------


@router.get("/ops")
def dashboard(request: Request, services: ConsoleServices) -> Response:
    viewer = require_operator(request)
    numbers = read_dashboard(
        monitor=services.alert_monitor,
        journal=services.journal,
        ledger=services.ledger,
        index=services.findings_index,
        now=services.clock.now(),
        subscriptions=services.subscriptions,
        tenants=services.tenants,
        lifecycle=services.lifecycle,
    )
    context = {
        "numbers": numbers,
        "findings": [(finding, numbers.findings.get(finding, 0)) for finding in FAILURES],
        "chart": line_chart(numbers.series),
        "window_minutes": services.alert_monitor.thresholds.window_minutes,
        "human_age": human_age,
        "cancelling_status": SubscriptionStatus.CANCELLING,
        "tenant_states": [status for status in TenantStatus if status is not TenantStatus.PROVISIONING],
        "last_audit_age": _age_of(numbers.last_audit.finished_at, services) if numbers.last_audit else None,
    }
    return _page(request, viewer, "ops/dashboard.html", "dashboard", context)


def _age_of(timestamp: str, services: Services) -> int:
    return max(0, int((services.clock.now() - parse_timestamp(timestamp)).total_seconds()))


@dataclass(frozen=True, slots=True)
class LineChart:
    """The SVG geometry of the dashboard's chart, in the SVG's own units."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    payments: str  # polyline points
    provisioned: str
    y_ticks: tuple[tuple[float, int], ...]  # (y, value)
    x_ticks: tuple[tuple[float, str], ...]  # (x, label): each midnight, UTC


def line_chart(series: HourlySeries, *, width: int = 720, height: int = 260) -> LineChart:
    left, right, top, bottom = 48, width - 16, 16, height - 44
    half = max(1, -(-series.peak // 2))  # the y axis runs to an even number at or above the peak
    ceiling = 2 * half
    step = (right - left) / max(len(series.payments) - 1, 1)

    def y(value: int) -> float:
        return round(bottom - (bottom - top) * value / ceiling, 1)

    def points(values: tuple[int, ...]) -> str:
        return " ".join(f"{round(left + index * step, 1)},{y(value)}" for index, value in enumerate(values))

    x_ticks = tuple(
        (round(left + index * step, 1), hour.strftime("%d %b"))
        for index, hour in enumerate(series.hours)
        if hour.hour == 0
    )
    return LineChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        payments=points(series.payments),
        provisioned=points(series.provisioned),
        y_ticks=tuple((y(value), value) for value in (0, half, ceiling)),
        x_ticks=x_ticks,
    )


# --- Jobs --------------------------------------------------------------------------------------


@router.get("/ops/jobs")
def jobs(
    request: Request, services: ConsoleServices, q: str = "", status: str = "", finding: str = "", limit: str = ""
) -> Response:
    viewer = require_operator(request)
    rows_wanted = min(int(limit), MAX_ROWS) if limit.isdigit() and int(limit) > 0 else PAGE_ROWS
    filters = JobFilters(
        query=q.strip()[:254], status=_enum(JobStatus, status), finding=_enum(Finding, finding), limit=rows_wanted
    )
    if filters.query:
        runbook = services.runbook
        rows = rows_for_query(
            services.journal,
            services.ledger,
            lambda txn: runbook.diagnose(Selector(transaction_id=txn)),
            filters,
            diagnose_tenant=lambda tenant_id: runbook.diagnose(Selector(tenant_id=tenant_id)),
        )
    else:
        rows = job_rows(services.journal, services.findings_index, filters, judge=_judged(services))
    more = None
    if len(rows) >= filters.limit and filters.limit < MAX_ROWS:
        wanted = {
            "q": filters.query,
            "status": filters.status.value if filters.status else "",
            "finding": filters.finding.value if filters.finding else "",
            "limit": min(filters.limit * 4, MAX_ROWS),
        }
        more = "/ops/jobs?" + urlencode({name: value for name, value in wanted.items() if value})
    context = {
        "rows": rows,
        "filters": filters,
        "more_url": more,
        "statuses": list(JobStatus),
        "all_findings": list(Finding),
    }
    return _page(request, viewer, "ops/jobs.html", "jobs", context)


def _judged(services: Services) -> Callable[[str], Finding]:
    """A purchase's finding judged now, and kept in the findings index (the console's fallback for
    a job the index has not seen)."""

    def judge(transaction_id: str) -> Finding:
        entry = services.findings_recorder.record(transaction_id)
        return Finding(entry.finding) if entry is not None else Finding.PAYMENT_NOT_FOUND

    return judge


def _enum(kind: type[_Filter], value: str) -> _Filter | None:
    """The member named by a filter's value; none for an empty or unknown value (no filter)."""
    try:
        return kind(value) if value else None
    except ValueError:
        return None


# --- Cases and repair --------------------------------------------------------------------------


@router.get("/ops/cases")
def find_case(request: Request, q: str = "") -> Response:
    require_operator(request)
    key = q.strip()
    return redirect(_case_path(key)) if key else redirect("/ops/jobs")


@router.get("/ops/cases/{key}")
def case(request: Request, services: ConsoleServices, key: str, done: str = "") -> Response:
    viewer = require_operator(request)
    selector = _selector(key)
    if selector is None:
        return _bad_key(request, viewer)
    runbook = services.runbook
    diagnosis = runbook.diagnose(selector)
    subjects = (
        {"transaction_id": diagnosis.transaction_id}
        if diagnosis.transaction_id
        else {"tenant_id": diagnosis.tenant_id, "email": diagnosis.email}
    )
    # Without subjects the trail would answer with every entry it holds.
    trail = services.trail.entries(**subjects) if any(subjects.values()) else []
    context = {
        "key": key,
        "diagnosis": diagnosis,
        "next_action": next_action,
        "verification": runbook.verify(selector),
        "trail": list(reversed(trail)),
        "history": services.lifecycle.history(diagnosis.tenant_id) if diagnosis.tenant_id else [],
        "entitlements": _entitlements(services, diagnosis.tenant_id),
        "metrics": list(Metric),
        "notice": _notice(done),
        "team": _team(services, diagnosis.tenant_id),
    }
    return _page(request, viewer, "ops/case.html", "jobs", context)


@dataclass(frozen=True, slots=True)
class CaseTeam:
    """The case's tenant's people: its members (users records, removed ones too), its pending
    invitations, its owner's user id, and the seats held of its plan's (None: plan unknown)."""

    members: list[UserRecord]
    invitations: list[Invitation]
    owner_user_id: str
    seats_used: int
    seats_limit: int | None


def _team(services: Services, tenant_id: str | None) -> CaseTeam | None:
    tenant = services.tenants.get(tenant_id) if tenant_id else None
    if tenant is None or tenant.status is TenantStatus.DELETED:
        return None
    team = services.team
    try:
        used, limit = team.seats(tenant)
        seats_limit: int | None = limit
    except UnknownPlanError:  # a plan since taken out of the catalogue
        used, seats_limit = services.team_store.seats_used(tenant.tenant_id), None
    members, invitations = team.members(tenant.tenant_id), team.invitations(tenant.tenant_id, pending_only=True)
    return CaseTeam(members, invitations, tenant.owner_user_id, used, seats_limit)


def _entitlements(services: Services, tenant_id: str | None) -> Entitlements | None:
    """The tenant's usage against its plan's limits in its current period, as the service API
    reads it; none without a tenant record, or for a deleted tenant's tombstone."""
    tenant = services.tenants.get(tenant_id) if tenant_id else None
    if tenant is None or tenant.status is TenantStatus.DELETED:
        return None
    return services.usage.of_tenant(tenant)


@router.get("/ops/cases/{key}/repair")
def repair_plan(request: Request, services: ConsoleServices, key: str) -> Response:
    viewer = require_operator(request)
    selector = _selector(key)
    if selector is None:
        return _bad_key(request, viewer)
    plan = services.runbook.plan(selector)
    return _page(request, viewer, "ops/repair.html", "jobs", {"key": key, "plan": plan, "next_action": next_action})


@router.post("/ops/cases/{key}/repair")
async def repair(request: Request, services: ConsoleServices, key: str) -> Response:
    viewer = require_operator(request)
    await read_form(request)
    selector = _selector(key)
    if selector is None:
        return _bad_key(request, viewer)
    try:
        result = await run_in_threadpool(services.runbook.repair, selector, operator=viewer.email)
    except InvalidInputError as error:
        return _error(request, viewer, "Repair refused", f"The repair did not run: {error}.", 400)
    except TenancyError as error:
        message = f"The repair stopped: a store or provider failed ({error}). Diagnose again before retrying."
        return _error(request, viewer, "Repair stopped", message, 503)
    # The transaction id is the steadiest way back to the same purchase after a repair.
    back = result.plan.diagnosis.transaction_id or key
    done = result.outcome if result.outcome in _NOTICES else "unfinished"
    return redirect(f"{_case_path(back)}?done={done}")


def _selector(key: str) -> Selector | None:
    """The key as `Selector.parse` reads it; None for an empty one."""
    try:
        return Selector.parse(key)
    except InvalidInputError:
        return None


def _case_path(key: str) -> str:
    return "/ops/cases/" + quote(key, safe="@")


def _bad_key(request: Request, viewer: Viewer) -> Response:
    message = "Look a purchase up by its transaction id, tenant id (ten_...) or the owner's email."
    return _error(request, viewer, "Unknown case", message, 400)


# --- Dead-letter queue -------------------------------------------------------------------------


@router.get("/ops/dlq")
def dead_letters(request: Request, services: ConsoleServices, done: str = "", count: str = "") -> Response:
    viewer = require_operator(request)
    rows = [_dead_letter_view(services, decision) for decision in services.runbook.judge_dead_letters()]
    context = {"rows": rows, "healed_count": sum(1 for row in rows if row["healed"]), "notice": _notice(done, count)}
    return _page(request, viewer, "ops/dlq.html", "dlq", context)


def _dead_letter_view(services: Services, decision: DeadLetterDecision) -> dict[str, object]:
    """The message as `tenancy dlq list` shows it, with where its purchase stands now."""
    message = decision.message
    job = services.journal.get(message.transaction_id) if message.transaction_id else None
    finding = decision.diagnosis.finding if decision.diagnosis else None
    return {**dead_letter_row(job, message), "finding": finding, "healed": decision.healed, "reason": decision.reason}


@router.post("/ops/dlq/redrive-all")
async def redrive_all(request: Request, services: ConsoleServices) -> Response:
    viewer = require_operator(request)
    await read_form(request)
    moved = await run_in_threadpool(services.runbook.redrive_all, operator=viewer.email)
    return redirect(f"/ops/dlq?done=redriven_all&count={len(moved)}")


@router.post("/ops/dlq/remove-healed")
async def remove_healed(request: Request, services: ConsoleServices) -> Response:
    """`tenancy dlq remove --healed`: every message whose purchase is healthy now, judged again here."""
    viewer = require_operator(request)
    await read_form(request)
    decisions = await run_in_threadpool(services.runbook.remove_healed_dead_letters, operator=viewer.email)
    return redirect(f"/ops/dlq?done=removed_healed&count={sum(1 for decision in decisions if decision.removed)}")


@router.post("/ops/dlq/{message_id}/redrive")
async def redrive(request: Request, services: ConsoleServices, message_id: str) -> Response:
    viewer = require_operator(request)
    await read_form(request)
    moved = await run_in_threadpool(services.runbook.redrive, message_id, operator=viewer.email)
    return redirect("/ops/dlq?done=" + ("redriven" if moved else "not_found"))


@router.post("/ops/dlq/{message_id}/remove")
async def remove(request: Request, services: ConsoleServices, message_id: str) -> Response:
    """Removes a stale message: only while its purchase is healthy (the page offers it only then,
    and the purchase is judged again here, since it may have changed since the page was drawn)."""
    viewer = require_operator(request)
    await read_form(request)
    decision = await run_in_threadpool(
        services.runbook.remove_dead_letter, message_id, operator=viewer.email, only_if_healed=True
    )
    done = "not_removed" if decision is None else "removed" if decision.removed else "not_healed"
    return redirect(f"/ops/dlq?done={done}")


# --- Lifecycle notices -------------------------------------------------------------------------


@router.get("/ops/notices")
def notices(request: Request, services: ConsoleServices, done: str = "") -> Response:
    """What the tenants' moves owe the outside world (lifecycle events, owner emails): the ones
    that died undelivered, with Deliver again, and the ones still being retried."""
    viewer = require_operator(request)
    context = {
        "dead": services.lifecycle.notices(NoticeStatus.DEAD, limit=NOTICES_SHOWN),
        "pending": services.lifecycle.notices(NoticeStatus.PENDING, limit=NOTICES_SHOWN),
        "counts": services.lifecycle.notice_counts(),
        "dead_status": NoticeStatus.DEAD,
        "pending_status": NoticeStatus.PENDING,
        "delivered_status": NoticeStatus.DELIVERED,
        "limit": NOTICES_SHOWN,
        "notice": _notice(done),
    }
    return _page(request, viewer, "ops/notices.html", "notices", context)


@router.post("/ops/notices/{notice_id}/redeliver")
async def redeliver_notice(request: Request, services: ConsoleServices, notice_id: str) -> Response:
    viewer = require_operator(request)
    await read_form(request)
    try:
        delivered = await run_in_threadpool(services.notices.redeliver, notice_id)
    except NotFoundError:
        return redirect("/ops/notices?done=notice_not_found")
    log.info("notice_redelivered", notice_id=notice_id, operator=viewer.email, status=delivered.status.value)
    outcome = "notice_delivered" if delivered.status is NoticeStatus.DELIVERED else "notice_failed"
    return redirect(f"/ops/notices?done={outcome}")


# --- Mail --------------------------------------------------------------------------------------


@router.get("/ops/mail")
def mail(request: Request, services: ConsoleServices) -> Response:
    viewer = require_operator(request)
    emails = [
        dataclasses.replace(email, text=hide_secret_lines(email.text, "[hidden in the console]"))
        for email in services.mailer.outbox(limit=100)
    ]
    return _page(request, viewer, "ops/mail.html", "mail", {"emails": emails, "status_words": mail_status_words})


# --- Audit -------------------------------------------------------------------------------------


@router.get("/ops/audit")
def audit(request: Request, services: ConsoleServices, since: str = AUDIT_WINDOW) -> Response:
    viewer = require_operator(request)
    try:
        report = _audit(services, since)
    except InvalidInputError as error:
        return _error(request, viewer, "Bad audit window", str(error), 400)
    context = {
        "report": report,
        "since": since,
        "human_age": human_age,
        "verdict": verdict_line(report),
        "attempts_headline": attempts_headline(report) if report.attempts else "",
    }
    return _page(request, viewer, "ops/audit.html", "audit", context)


@router.get("/ops/audit.csv")
def audit_csv(request: Request, services: ConsoleServices, since: str = AUDIT_WINDOW) -> Response:
    viewer = require_operator(request)
    try:
        report = _audit(services, since)
    except InvalidInputError as error:
        return _error(request, viewer, "Bad audit window", str(error), 400)
    filename = f"provisioning-audit-{report.now.strftime('%Y%m%dT%H%M%SZ')}.csv"
    response = Response(
        render_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    return security_headers(response)


def _audit(services: Services, since: str) -> AuditReport:
    """`tenancy audit --since ...`: the same window and classification, refreshing the findings
    index as it goes; InvalidInputError for a bad window."""
    start = window_start(services.clock.now(), parse_duration(since))
    return services.auditor.run(since=start, trigger=AuditTrigger.CONSOLE)


# --- Shared ------------------------------------------------------------------------------------


def _page(request: Request, viewer: Viewer, template: str, section: str, context: dict[str, Any]) -> Response:
    # Every finding and alert shown links to its section of the runbook page, titled as the document has it.
    runbook = RunbookLinks(load_runbook())
    context = {**context, "section": section, "mail_only_stored": _mail_only_stored(request), "runbook": runbook}
    return render(request, template, context, viewer=viewer)


def _error(request: Request, viewer: Viewer, title: str, message: str, status_code: int) -> Response:
    context = {"title": title, "message": message, "section": "", "mail_only_stored": _mail_only_stored(request)}
    return render(request, "ops/error.html", context, status_code=status_code, viewer=viewer)


def _mail_only_stored(request: Request) -> bool:
    """Whether this server keeps its mail without delivering it: the embedded backend with no SMTP
    server configured. Every page of the console says so (on AWS, SES delivers)."""
    settings = request.app.state.services.settings
    return bool(settings.backend is Backend.LOCAL and not settings.smtp_url)


def _notice(done: str, count: str = "") -> tuple[str, str] | None:
    notice = _NOTICES.get(done)
    if notice is None:
        return None
    kind, text = notice
    # Only digits reach the text: the count is a number or it is nothing.
    number = int(count) if count.isascii() and count.isdigit() and len(count) < 7 else 0
    return kind, text.format(count=number, messages=plural(number, "message"))
