"""TEST-ONLY: the embedded backend's side of TENANCY_FAULTS' `rate:` rules (tenancy.faults).

Each hook raises what SQLite or the SMTP client would, before anything is written or sent, so
the adapters' own error mapping turns it into the transient error the product retries. The
embedded backend has nothing for `identity_throttled` or `queue_send_failed` to hit.
"""

from __future__ import annotations

import smtplib
import sqlite3

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.mail import SmtpTarget
from tenancy.faults import FaultRates, InjectedFault

__all__ = ["install_fault_hooks"]


def install_fault_hooks(rates: FaultRates, database: Database, smtp: SmtpTarget | None) -> None:
    """Hooks `database` and `smtp` for the faults `rates` names; the rest are left untouched."""
    if InjectedFault.STORE_THROTTLED in rates:

        def lock() -> None:
            if rates.roll(InjectedFault.STORE_THROTTLED, "sqlite.begin"):
                raise sqlite3.OperationalError("database is locked")

        database.before_write = lock
    if smtp is not None and (InjectedFault.MAIL_REFUSED in rates or InjectedFault.MAIL_TIMEOUT in rates):

        def refuse_or_time_out() -> None:
            # 451 is "try again later": a refusal the mail server means as passing, so every
            # purchase must still end healthy once a retry gets through.
            if rates.roll(InjectedFault.MAIL_REFUSED, "smtp.deliver"):
                raise smtplib.SMTPResponseException(451, b"4.3.0 try again later (injected)")
            if rates.roll(InjectedFault.MAIL_TIMEOUT, "smtp.deliver"):
                raise TimeoutError("timed out")

        smtp.before_deliver = refuse_or_time_out
