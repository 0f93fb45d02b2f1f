"""Test-only fault injection (`TENANCY_FAULTS`): crash or slow a real worker process at a chosen
point, or make its dependencies fail at a rate.

Off unless `TENANCY_FAULTS` is set. The reliability suite sets it on real `tenancy worker`
and `tenancy serve` processes to prove that a crash at any step recovers. Rules, comma separated:

- `crash_after:<step>[:once]`: `os._exit(137)` right after `<step>` is recorded in the journal.
- `crash_after_send[:once]`: `os._exit(137)` right after an email is handed to the mailer, before
  the welcome step is recorded (the at-least-once window of the welcome email).
- `slow_step:<step>:<seconds>`: sleep that long at the end of `<step>` (once it is recorded), so
  that a job is held in flight, e.g. for a SIGTERM to arrive.
- `rate:<fault>:<fraction>` (0 < fraction <= 1): that fraction of the calls that could meet
  `<fault>` meet it, as the error the real component raises, before anything is sent or written,
  so the product's own handling of it runs. Faults, and where each is injected:
  - `mail_refused`: SES SendEmail/SendRawEmail answers `Throttling`; embedded, SMTP answers 451.
  - `mail_timeout`: SES times out (`ReadTimeoutError`); embedded, SMTP times out (`TimeoutError`).
  - `identity_throttled`: every Cognito call answers `TooManyRequestsException` (AWS only).
  - `store_throttled`: every DynamoDB call answers `ProvisionedThroughputExceededException`;
    embedded, `BEGIN IMMEDIATE` fails with SQLite's `database is locked`.
  - `queue_send_failed`: SQS SendMessage answers `ServiceUnavailable`, after the ledger has
    committed the payment and its job (AWS only: the stalled-job sweep heals it).
  The embedded backend has no identity service to throttle, and its queue send shares the
  ledger's transaction, so `identity_throttled` and `queue_send_failed` are accepted there but
  inject nothing. The embedded mail faults need TENANCY_SMTP_URL (without it nothing is sent).
  Each injection logs one `fault_injected` line (`fault`, `at`); `count_injected` counts them in
  the log files.

`once` leaves a marker file `TENANCY_HOME/faults/<kind>-<step>.done` before crashing, so that a
process restarted with the same environment does not crash again.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import structlog

from tenancy.domain.model import OutboxMessage, OutgoingEmail, ProvisioningJob, Step
from tenancy.ports import Mailer
from tenancy.private_files import PRIVATE_FILE_MODE, private_directory

__all__ = [
    "CRASH_EXIT_CODE",
    "FaultKind",
    "FaultRates",
    "FaultRule",
    "Faults",
    "FaultyMailer",
    "InjectedFault",
    "count_injected",
]

log = structlog.get_logger(__name__)

# What a SIGKILLed process reports to its parent shell (128 + 9): the crash looks like a kill.
CRASH_EXIT_CODE = 137


class FaultKind(StrEnum):
    CRASH_AFTER = "crash_after"
    CRASH_AFTER_SEND = "crash_after_send"
    SLOW_STEP = "slow_step"
    RATE = "rate"


class InjectedFault(StrEnum):
    """What a `rate:` rule makes fail (see the module docstring for where and how)."""

    MAIL_REFUSED = "mail_refused"
    MAIL_TIMEOUT = "mail_timeout"
    IDENTITY_THROTTLED = "identity_throttled"
    STORE_THROTTLED = "store_throttled"
    QUEUE_SEND_FAILED = "queue_send_failed"


@dataclass(frozen=True, slots=True)
class FaultRule:
    kind: FaultKind
    step: Step | None = None
    once: bool = False
    seconds: float = 0.0
    fault: InjectedFault | None = None
    fraction: float = 0.0

    @property
    def marker_name(self) -> str:
        return f"{self.kind.value}-{self.step.value if self.step else 'mail'}.done"

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        parts = [part.strip() for part in text.split(":")]
        kind_name, arguments = parts[0], parts[1:]
        try:
            kind = FaultKind(kind_name)
        except ValueError:
            raise ValueError(f"unknown fault {kind_name[:40]!r} (known: {', '.join(FaultKind)})") from None
        if kind is FaultKind.CRASH_AFTER_SEND:
            if arguments not in ([], ["once"]):
                raise ValueError("crash_after_send takes only an optional ':once'")
            return cls(kind, once=bool(arguments))
        if kind is FaultKind.RATE:
            return cls._rate(arguments)
        if not arguments:
            raise ValueError(f"{kind.value} needs a step ({', '.join(Step)})")
        step = _step(arguments[0])
        if kind is FaultKind.CRASH_AFTER:
            if arguments[1:] not in ([], ["once"]):
                raise ValueError("crash_after:<step> takes only an optional ':once'")
            return cls(kind, step, once=len(arguments) == 2)
        try:
            (seconds,) = (float(argument) for argument in arguments[1:])
        except ValueError:
            raise ValueError("slow_step needs seconds: slow_step:<step>:<seconds>") from None
        if not 0 <= seconds <= 600:
            raise ValueError("slow_step seconds must be between 0 and 600")
        return cls(kind, step, seconds=seconds)

    @classmethod
    def _rate(cls, arguments: list[str]) -> FaultRule:
        if len(arguments) != 2:
            raise ValueError("rate needs a fault and a fraction: rate:<fault>:<fraction>")
        try:
            fault = InjectedFault(arguments[0])
        except ValueError:
            known = ", ".join(InjectedFault)
            raise ValueError(f"unknown rate fault {arguments[0][:40]!r} (known: {known})") from None
        try:
            fraction = float(arguments[1])
        except ValueError:
            raise ValueError("rate needs a fraction: rate:<fault>:<fraction>, e.g. rate:mail_refused:0.05") from None
        if not 0 < fraction <= 1:  # also refuses nan
            raise ValueError("a rate's fraction must be more than 0 and at most 1")
        return cls(FaultKind.RATE, fault=fault, fraction=fraction)


def _step(name: str) -> Step:
    try:
        return Step(name)
    except ValueError:
        raise ValueError(f"unknown step {name[:40]!r} (known: {', '.join(Step)})") from None


@dataclass(frozen=True, slots=True)
class Faults:
    """The parsed `TENANCY_FAULTS`; empty (falsy) in every real deployment."""

    rules: tuple[FaultRule, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Faults:
        return cls(tuple(FaultRule.parse(part) for part in (piece.strip() for piece in text.split(",")) if part))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def after_step(self, home: Path) -> Callable[[Step, ProvisioningJob], None] | None:
        """The saga's `after_step` hook for the step rules, or None when there are none."""
        rules = [rule for rule in self.rules if rule.kind in {FaultKind.CRASH_AFTER, FaultKind.SLOW_STEP}]
        if not rules:
            return None

        def inject(step: Step, job: ProvisioningJob) -> None:
            for rule in rules:
                if rule.step is not step:
                    continue
                if rule.kind is FaultKind.SLOW_STEP:
                    log.warning(
                        "fault_slow_step", step=step.value, seconds=rule.seconds, transaction_id=job.transaction_id
                    )
                    time.sleep(rule.seconds)
                else:
                    _crash(rule, home, transaction_id=job.transaction_id)

        return inject

    def rates(self) -> FaultRates:
        """The `rate:` rules, as dice the adapters' hooks roll (a later rule for a fault wins)."""
        return FaultRates(
            {rule.fault: rule.fraction for rule in self.rules if rule.kind is FaultKind.RATE and rule.fault}
        )

    def mailer(self, mailer: Mailer, home: Path) -> Mailer:
        """`mailer`, wrapped to crash after a send when a `crash_after_send` rule asks for it."""
        rules = tuple(rule for rule in self.rules if rule.kind is FaultKind.CRASH_AFTER_SEND)
        return FaultyMailer(mailer, rules, home) if rules else mailer


# One per process, seeded from os.urandom: two soak runs inject at different calls.
_DICE = random.Random()


class FaultRates:
    """Each `rate:` fault and its fraction; `roll` says whether this call meets it (and logs it)."""

    def __init__(self, rates: Mapping[InjectedFault, float]) -> None:
        self._rates = dict(rates)

    def __bool__(self) -> bool:
        return bool(self._rates)

    def __contains__(self, fault: InjectedFault) -> bool:
        return fault in self._rates

    def roll(self, fault: InjectedFault, at: str) -> bool:
        """True (and one `fault_injected` line logged) for `fault`'s fraction of the calls."""
        fraction = self._rates.get(fault)
        if fraction is None or _DICE.random() >= fraction:
            return False
        # Logged before the fault is raised, so the count never misses one; the log files take
        # each line with its own write (logging_setup), so a SIGKILL after it loses nothing.
        log.warning("fault_injected", fault=fault.value, at=at)
        return True


def count_injected(log_dir: Path) -> Counter[str]:
    """How many times each fault was injected, from the `fault_injected` lines of every log file
    in `log_dir` (TENANCY_HOME/logs), whichever process wrote them."""
    counts: Counter[str] = Counter()
    for path in sorted(log_dir.glob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if '"fault_injected"' not in line:  # most lines: skip the JSON parse
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill mid-write
                if isinstance(event, dict) and event.get("event") == "fault_injected":
                    counts[str(event.get("fault"))] += 1
    return counts


class FaultyMailer:
    """Delegates to the real mailer, then crashes the process once the email is handed over."""

    def __init__(self, real: Mailer, rules: tuple[FaultRule, ...], home: Path) -> None:
        self._real = real
        self._rules = rules
        self._home = home

    def send(self, email: OutgoingEmail) -> str:
        message_id = self._real.send(email)
        for rule in self._rules:
            _crash(rule, self._home, transaction_id=None)
        return message_id

    def outbox(self, to: str | None = None, limit: int = 100) -> Sequence[OutboxMessage]:
        return self._real.outbox(to, limit)

    def outboxes(self, recipients: Sequence[str], limit: int = 100) -> dict[str, list[OutboxMessage]]:
        return self._real.outboxes(recipients, limit)

    def scan(self, batch_size: int = 1000) -> Iterator[list[OutboxMessage]]:
        return self._real.scan(batch_size)

    def delivery_statistics(self) -> dict[str, int]:
        return self._real.delivery_statistics()


def _crash(rule: FaultRule, home: Path, *, transaction_id: str | None) -> None:
    if rule.once:
        marker = home / "faults" / rule.marker_name
        if marker.exists():
            return
        private_directory(marker.parent)  # TENANCY_HOME/faults, 0700 like the rest of the home
        # Written before dying: the restarted process must find it and carry on.
        descriptor = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{transaction_id or ''}\n")
    log.warning(
        "fault_crash", fault=rule.kind.value, step=rule.step.value if rule.step else None, transaction_id=transaction_id
    )
    # No cleanup, no finally blocks, no flushing of open transactions: as close to a kill as Python gets.
    os._exit(CRASH_EXIT_CODE)
