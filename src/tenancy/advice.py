"""The runbook's next steps in an operator's words, with the `tenancy` commands that carry them
out. The runbook answers data (runbook.findings.NextStep); the CLI and the operations console,
the two places a diagnosis is shown, word it here, so that both say the same."""

from __future__ import annotations

from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Diagnosis

__all__ = ["next_action", "selector_options"]


def next_action(diagnosis: Diagnosis) -> str:
    """What to do next, in one paragraph: for a repairable finding the `tenancy repair` command
    line for the purchase, with what the repair does beside it."""
    step = diagnosis.next_step
    if diagnosis.repairable:
        return f"tenancy repair {selector_options(diagnosis.steadiest_selector)} --yes  ({step.advice})"
    text = step.advice
    if step.operator_accounts:
        text += " Operator accounts are listed by `tenancy ops list-operators`."
    if step.stale_dead_letters:
        commands = ", ".join(f"`tenancy dlq remove {message_id}`" for message_id in step.stale_dead_letters)
        text += f" A stale dead-letter message is left from before it healed: remove it with {commands}."
    if step.mail_kept_for:
        text += (
            " Mail is delivered once TENANCY_SMTP_URL names an SMTP server; "
            f"until then `tenancy mail list --to {step.mail_kept_for}` shows the email."
        )
    if step.usage_over_limit_of:
        tenant_id = step.usage_over_limit_of
        text += (
            f" `tenancy usage show {tenant_id}` shows its usage against the limits; a count that is wrong is "
            f'corrected with `tenancy usage set {tenant_id} METRIC N --reason "..." --yes`.'
        )
    return text


def selector_options(selector: Selector) -> str:
    """The command-line options that name what the selector names."""
    if selector.transaction_id:
        return f"--transaction-id {selector.transaction_id}"
    if selector.tenant_id:
        return f"--tenant-id {selector.tenant_id}"
    return f"--email {selector.email}"
