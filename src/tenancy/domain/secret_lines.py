"""Where our own emails (welcome, operator invitation, password reset) carry a secret, and that
secret hidden: a stored copy (the embedded outbox keeps it whole for its reader, with no SMTP) is
shown elsewhere (the console, a data export) without it."""

from __future__ import annotations

import re

__all__ = ["hide_secret_lines"]

_SECRET_LINES = re.compile(r"^(Temporary password|Your reset code): \S+", re.MULTILINE)


def hide_secret_lines(text: str, shown: str) -> str:
    """`text` with the secret of each such line replaced by `shown`."""
    return _SECRET_LINES.sub(lambda match: f"{match.group(1)}: {shown}", text)
