"""The record of something that has already happened outside (an email the mail server or SES
took), written despite a busy store.

Once the email is out, failing its record costs more than a short wait: embedded, the caller would
send the email again; on AWS, the mail log would miss it and the runbook would call the welcome
email missing. A store that is only busy (SQLite locked, DynamoDB throttled) is tried again a few
times over a few hundred milliseconds; any other failure, or a busy store that stays busy, is
the caller's to handle as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenancy.errors import TransientError

__all__ = ["keep_record"]

_ATTEMPTS = 5
_FIRST_PAUSE_SECONDS = 0.02


def keep_record(write: Callable[[], None]) -> None:
    """Runs `write`, again after 20, 40, 80 and 160 ms while it fails with a TransientError."""
    for attempt in range(_ATTEMPTS):
        try:
            write()
            return
        except TransientError:
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(_FIRST_PAUSE_SECONDS * 2**attempt)
