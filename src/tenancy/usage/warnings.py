"""The owner's email when a limit is near (80%) or reached (100%): one per metric, threshold and
usage period, queued as a notice whose id is derived from the three, so however many records
cross the line, the owner hears once."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from tenancy.domain.lifecycle import Notice, email_notice
from tenancy.domain.model import OutgoingEmail
from tenancy.domain.usage import Metric, UsageOutcome, crossed_thresholds

__all__ = ["UsageMail", "warning_notices"]

_WHAT = {
    Metric.GENERATIONS: "page generations this period",
    Metric.SITES: "sites",
    Metric.STORAGE_MB: "MB of storage",
}
# A limit of one, in the singular: "a limit of 1 site".
_ONE = {Metric.GENERATIONS: "page generation this period", Metric.SITES: "site"}
# What a reached limit refuses, and what else frees room (a generation count frees itself at the period's end).
_REFUSED = {
    Metric.GENERATIONS: ("New page generations are refused", ""),
    Metric.SITES: ("New sites are refused", " (or delete a site you no longer need)"),
    Metric.STORAGE_MB: ("Storing more is refused", " (or delete files you no longer need)"),
}


def _counted(metric: Metric, limit: int) -> str:
    return _ONE.get(metric, _WHAT[metric]) if limit == 1 else _WHAT[metric]


@dataclass(frozen=True, slots=True)
class UsageMail:
    sender: str
    account_url: str
    support_email: str

    def warning(self, to: str, metric: Metric, threshold: int, used: int, limit: int, period_end: str) -> OutgoingEmail:
        what = _counted(metric, limit)
        refused, freed = _REFUSED[metric]
        if metric is Metric.GENERATIONS:
            until = f"until the count starts again on {period_end}, or until you upgrade to a bigger plan"
        else:
            until = f"until you upgrade to a bigger plan{freed}"
        if threshold >= 100:
            subject = f"You have reached your plan's limit of {limit} {what}"
            first = f"Your Site Builder plan allows {limit} {what}, and you have used {used}."
            then = f"{refused} {until}."
        else:
            subject = f"You have used {threshold}% of your plan's {_WHAT[metric]}"
            first = f"Your Site Builder plan allows {limit} {what}; you have used {used}."
            then = f"When the limit is reached, {refused[0].lower()}{refused[1:]} {until}."
        paragraphs = [first, then, f"To upgrade, or to see your usage: {self.account_url}"]
        paragraphs.append(f"Questions? Write to {self.support_email}.")
        return OutgoingEmail(
            to=to,
            subject=subject,
            text="\n\n".join(paragraphs) + "\n",
            html="".join(f"<p>{escape(paragraph)}</p>" for paragraph in paragraphs),
            sender=self.sender,
            tags={"kind": "usage_warning"},
        )


def warning_notices(
    outcome: UsageOutcome, owner_email: str, mail: UsageMail, *, period_start: str, period_end: str
) -> list[Notice]:
    """The warning an applied record's usage calls for: the highest threshold it has reached
    (a record that jumps past both is told once, that the limit is reached), queued once a period
    by its id."""
    metric = outcome.change.metric
    used, limit = outcome.used, outcome.limit
    return [
        email_notice(
            mail.warning(owner_email, metric, threshold, used, limit, period_end),
            outcome.tenant_id,
            f"usage:{period_start}:{metric.value}:{threshold}",
            outcome.at,
        )
        for threshold in crossed_thresholds(used, limit)[-1:]
    ]
